// Package buildinfo reports what a provlog binary was built from: the
// module version and the VCS revision the Go toolchain recorded.
package buildinfo

import (
	"fmt"
	"runtime/debug"
)

// Info is what a binary was built from.
type Info struct {
	Version   string // module version, "(devel)" for a build in the work tree
	Revision  string // VCS revision, "" if unknown
	Time      string // VCS commit time (RFC 3339), "" if unknown
	Modified  bool   // the work tree had local changes
	GoVersion string
}

// Read returns the running binary's build information.
func Read() Info {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return Info{Version: "unknown"}
	}
	info := Info{Version: bi.Main.Version, GoVersion: bi.GoVersion}
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			info.Revision = s.Value
		case "vcs.time":
			info.Time = s.Value
		case "vcs.modified":
			info.Modified = s.Value == "true"
		}
	}
	return info
}

// String is the one line a binary prints for --version: name, version,
// revision (with "+dirty" for local changes) and Go version.
func (i Info) String() string {
	rev := i.Revision
	if rev == "" {
		rev = "unknown revision"
	} else if i.Modified {
		rev += "+dirty"
	}
	return fmt.Sprintf("%s (%s, %s)", i.Version, rev, i.GoVersion)
}
