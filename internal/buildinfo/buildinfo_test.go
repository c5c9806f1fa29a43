package buildinfo

import (
	"runtime"
	"strings"
	"testing"
)

func TestRead(t *testing.T) {
	i := Read()
	if i.GoVersion != runtime.Version() || i.Version == "" {
		t.Errorf("Read() = %+v, want Go %s and a version", i, runtime.Version())
	}
	if s := (Info{Version: "v1.2.3", Revision: "abc", Modified: true, GoVersion: "go1.26"}).String(); s != "v1.2.3 (abc+dirty, go1.26)" {
		t.Errorf("String() = %q", s)
	}
	if s := (Info{Version: "(devel)", GoVersion: "go1.26"}).String(); !strings.Contains(s, "unknown revision") {
		t.Errorf("String() = %q", s)
	}
}
