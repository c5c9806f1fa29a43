package main

import (
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"time"
)

// Results is everything one run measured; it is written as results.json.
type Results struct {
	Machine Machine         `json:"machine"`
	Date    string          `json:"date"`
	Commit  string          `json:"commit"`
	Command string          `json:"command"`
	Config  Config          `json:"config"`
	Phases  []*Phase        `json:"phases"`
	Reads   []*ReadResult   `json:"reads"`
	Events  []*EventsResult `json:"events"`
	Mixed   []*MixedResult  `json:"mixed"`
	Scale   *ScaleResult    `json:"scale,omitempty"`
}

// Machine describes where the run ran.
type Machine struct {
	CPUs     int    `json:"cpus"`
	CPUModel string `json:"cpu_model"`
	MemBytes int64  `json:"mem_bytes"`
	Kernel   string `json:"kernel"`
	Go       string `json:"go"`
}

// Phase is one load on one target.
type Phase struct {
	Target    string  `json:"target"`
	Mode      string  `json:"mode"`
	Round     int     `json:"round"`
	Load      string  `json:"load"` // "peak" (as fast as acknowledged) or "half" (half the peak rate)
	Writers   int     `json:"writers"`
	PerCall   int     `json:"per_call"`
	Rate      float64 `json:"rate"`
	EntrySize int     `json:"entry_size"`
	Entries   int64   `json:"entries"`
	Seconds   float64 `json:"seconds"`
	PerSec    float64 `json:"entries_per_sec"`
	Pushbacks int64   `json:"pushbacks"`
	// Ack is the time from a call's start (or its due time under a rate)
	// to its acknowledgement: the index returned, durable.
	Ack Dist `json:"ack"`
	// Checkpoint is the time from a call's start to the first verified
	// signed checkpoint seen that covers it.
	Checkpoint Dist `json:"checkpoint"`
	// Uncovered counts calls no checkpoint seen covered.
	Uncovered int `json:"uncovered"`
	// TreeSize is the log's size after the phase.
	TreeSize uint64 `json:"tree_size"`
	// CPUSeconds is the CPU the target's process used during the phase
	// (for in-process Tessera: the bench process, load generator included).
	CPUSeconds float64 `json:"cpu_seconds"`
	CPUPer1000 float64 `json:"cpu_seconds_per_1000"`
	PeakRSS    int64   `json:"peak_rss_bytes"`
	// DiskBytes is the space allocated on disk to the log's data (du:
	// stat blocks, preallocated space included) after the phase;
	// ApparentBytes the sum of the file sizes. Per entry: over TreeSize.
	DiskBytes        int64   `json:"disk_bytes"`
	DiskPerEntry     float64 `json:"disk_bytes_per_entry"`
	ApparentBytes    int64   `json:"apparent_bytes"`
	ApparentPerEntry float64 `json:"apparent_bytes_per_entry"`
	// LoadAvg is the machine's 1-minute load average at the phase's end:
	// other work on the machine shows here.
	LoadAvg float64 `json:"load_avg"`

	ack, ttc []time.Duration // sorted, for aggregation and plots
}

// ReadResult is one read measurement.
type ReadResult struct {
	Target   string  `json:"target"`
	Kind     string  `json:"kind"` // "inclusion-proof" or "tile"
	Round    int     `json:"round"`
	TreeSize uint64  `json:"tree_size"`
	Reads    int64   `json:"reads"`
	PerSec   float64 `json:"reads_per_sec"`
	Latency  Dist    `json:"latency"`
}

// EventsResult is one signed-events load beside the verification bound.
type EventsResult struct {
	Round int `json:"round"`
	// VerifyPerSec is signature verification alone, on every core: the
	// bound.
	VerifyPerSec float64 `json:"verify_per_sec"`
	EventBytes   int     `json:"event_bytes"`
	Phase        *Phase  `json:"phase"`
	// Fraction is Phase.PerSec / VerifyPerSec.
	Fraction float64 `json:"fraction_of_bound"`
}

// ScaleResult is the growth of one log.
type ScaleResult struct {
	Target    int64        `json:"target_entries"`
	Entries   uint64       `json:"entries"`
	Truncated bool         `json:"truncated"` // stopped by the time budget
	Points    []ScalePoint `json:"points"`
	Seconds   float64      `json:"seconds"`
	// CPUPer1000 is the server's CPU per 1,000 entries over the growth.
	CPUPer1000 float64 `json:"cpu_seconds_per_1000"`
	PeakRSS    int64   `json:"peak_rss_bytes"`
	// DiskBytes is the space allocated on disk (du), ApparentBytes the sum
	// of the file sizes, at the end of the growth.
	DiskBytes     int64 `json:"disk_bytes"`
	ApparentBytes int64 `json:"apparent_bytes"`
	// RawBytes is the entries' bytes plus the tree's hashes (2n-1 nodes of
	// 32 bytes): what DiskBytes is compared with.
	RawBytes         int64   `json:"raw_bytes"`
	DiskPerEntry     float64 `json:"disk_bytes_per_entry"`
	ApparentPerEntry float64 `json:"apparent_bytes_per_entry"`
	DiskRatio        float64 `json:"disk_ratio"`
	// ShutdownSeconds is SIGTERM to exit; RestartSeconds exec to healthy.
	ShutdownSeconds float64 `json:"shutdown_seconds"`
	RestartSeconds  float64 `json:"restart_seconds"`
	// RestartRSS is the RSS once healthy after the restart.
	RestartRSS int64 `json:"restart_rss_bytes"`
}

// ScalePoint is the log at one size on the way.
type ScalePoint struct {
	Size uint64 `json:"size"`
	// PerSec is the append throughput of the segment that ended here.
	PerSec float64 `json:"entries_per_sec"`
	// Proof is the latency of single inclusion-proof reads at this size.
	Proof   Dist    `json:"proof"`
	RSS     int64   `json:"rss_bytes"`
	Elapsed float64 `json:"elapsed_seconds"`
}

func newResults(cfg Config) *Results {
	return &Results{
		Machine: machine(),
		Date:    time.Now().UTC().Format(time.RFC3339),
		Commit:  gitCommit(),
		Command: strings.Join(os.Args, " "),
		Config:  cfg,
	}
}

func (r *Results) addPhase(p *Phase) {
	r.Phases = append(r.Phases, p)
}

func newPhase(t target, spec loadSpec, round int, load string, lr *loadResult, seen []sizeSeen) *Phase {
	ack := lr.ackLatencies()
	ttc, missing := timeToCheckpoint(lr.calls, seen)
	p := &Phase{
		Target: t.Name(), Mode: spec.Mode, Round: round, Load: load,
		Writers: spec.Writers, PerCall: spec.PerCall, Rate: spec.Rate,
		Entries: lr.entries, Seconds: lr.elapsed.Seconds(), PerSec: lr.perSecond(),
		Pushbacks: lr.pushbacks, Ack: summarize(ack), Checkpoint: summarize(ttc),
		Uncovered: missing, ack: ack, ttc: ttc, LoadAvg: loadAvg(),
	}
	if len(lr.calls) > 0 {
		p.EntrySize = len(spec.Source(0))
	}
	if len(seen) > 0 {
		p.TreeSize = seen[len(seen)-1].size
	}
	return p
}

func machine() Machine {
	m := Machine{CPUs: runtime.NumCPU(), Go: runtime.Version()}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for line := range strings.Lines(string(b)) {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPUModel = strings.TrimSpace(v)
				break
			}
		}
	}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		for line := range strings.Lines(string(b)) {
			var kb int64
			if _, err := fmt.Sscanf(line, "MemTotal: %d kB", &kb); err == nil {
				m.MemBytes = kb << 10
				break
			}
		}
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(b))
	}
	return m
}

// gitCommit returns the short commit of the working tree, "+dirty" if it
// has changes, or "" outside a git checkout.
func gitCommit() string {
	out, err := exec.Command("git", "rev-parse", "--short", "HEAD").Output()
	if err != nil {
		return ""
	}
	c := strings.TrimSpace(string(out))
	if st, err := exec.Command("git", "status", "--porcelain", "--untracked-files=no").Output(); err == nil && len(st) > 0 {
		c += "+dirty"
	}
	return c
}

// loadAvg returns the 1-minute load average, or 0 if unknown.
func loadAvg() float64 {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return 0
	}
	var l float64
	fmt.Sscanf(string(b), "%f", &l) //nolint:errcheck // 0 if unparsable
	return l
}
