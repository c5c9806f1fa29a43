//go:build !unix

package main

import "os/exec"

// killGroupOnCancel leaves c's cancellation as it is (killing the process)
// where there are no process groups.
func killGroupOnCancel(*exec.Cmd) {}
