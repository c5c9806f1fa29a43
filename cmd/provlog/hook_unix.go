//go:build unix

package main

import (
	"os/exec"
	"syscall"
)

// killGroupOnCancel runs c in a process group of its own and makes its
// cancellation kill the whole group, so that a hook's children (sh -c runs
// the command as one) die with it.
func killGroupOnCancel(c *exec.Cmd) {
	c.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	c.Cancel = func() error { return syscall.Kill(-c.Process.Pid, syscall.SIGKILL) }
}
