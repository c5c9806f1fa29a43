package integration

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"

	pb "github.com/provlog/provlog/proto/provlog/v1"
	"github.com/provlog/provlog/witness"
)

// dashboardFile is the Grafana dashboard shipped in docs/.
const dashboardFile = "../docs/grafana-provlog.json"

// TestDashboardMetricsExist runs a witnessed provlogd and its witness, makes
// every kind of traffic the dashboard charts, scrapes both /metrics, and
// checks that every metric docs/grafana-provlog.json queries is exported by
// the daemon it charts, with every label the dashboard selects, groups or
// names in a legend. A renamed metric or label fails it, so the dashboard
// cannot drift from the code.
func TestDashboardMetricsExist(t *testing.T) {
	dash := readDashboard(t)
	if len(dash.exprs) < 20 {
		t.Fatalf("the dashboard has %d queries; parsing it failed?", len(dash.exprs))
	}
	dir := t.TempDir()

	// A log key made beforehand, so that the witness's config can name
	// it; the witness's key, so that the log's policy can name it.
	skey, vkey, err := note.GenerateKey(rand.Reader, "localhost/provlog")
	if err != nil {
		t.Fatal(err)
	}
	logKey := filepath.Join(dir, "log.key")
	writeText(t, logKey, skey+"\n")
	wk, err := witness.CreateKey(filepath.Join(dir, "w.key"), filepath.Join(dir, "w.key.pub"), "w.test/w1")
	if err != nil {
		t.Fatal(err)
	}
	// A second log, which the test forks, for the witness's evidence.
	fskey, fvkey, err := note.GenerateKey(rand.Reader, "example.com/forked")
	if err != nil {
		t.Fatal(err)
	}
	fsigner, err := note.NewSigner(fskey)
	if err != nil {
		t.Fatal(err)
	}
	logHTTP, witnessAddr := freeAddr(t, "127.0.0.1"), freeAddr(t, "127.0.0.1")
	logs := filepath.Join(dir, "logs.conf")
	writeText(t, logs, "log localhost/provlog "+vkey+" http://"+logHTTP+"/\nlog example.com/forked "+fvkey+"\n")
	w := startWitness(t, buildWitness(t), "--listen", witnessAddr, "--config", logs, "--data", filepath.Join(dir, "w"),
		"--key", filepath.Join(dir, "w.key"), "--poll-interval", "50ms")
	policy := filepath.Join(dir, "policy")
	writeText(t, policy, "witness w1 "+wk.Verifier+" http://"+witnessAddr+"\nquorum w1\n")
	d := mustStartProvlogd(t, filepath.Join(dir, "data"), "--key", logKey, "--http-listen", logHTTP,
		"--witness-policy", policy, "--witness-interval", "20ms")

	// Traffic: appends (new, duplicate), gRPC and HTTP reads, a refusal.
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for _, e := range []string{"a", "b", "a"} {
		if code, body, _, err := httpPost(ctx, d.HTTPURL+"add", []byte(e)); err != nil || code != 200 {
			t.Fatalf("POST /add: %d %q %v", code, body, err)
		}
	}
	if _, err := d.Log.Append(ctx, &pb.AppendRequest{Entry: []byte("c")}); err != nil {
		t.Fatal(err)
	}
	d.Log.Append(ctx, &pb.AppendRequest{}) // InvalidArgument
	httpPost(ctx, d.HTTPURL+"add", nil)    // 400
	// Published once witnessed: wait for the witness's cosignature.
	waitFor(t, ctx, "a checkpoint of size 3 cosigned by w1", func() error {
		cp, err := d.Log.GetCheckpoint(ctx, &pb.GetCheckpointRequest{})
		if err != nil {
			return err
		}
		if !strings.Contains(string(cp.Checkpoint), "\n3\n") || !strings.Contains(string(cp.Checkpoint), "— w.test/w1 ") {
			return fmt.Errorf("published %q", cp.Checkpoint)
		}
		return nil
	})
	d.Log.GetInclusionProof(ctx, &pb.GetInclusionProofRequest{Leaf: &pb.GetInclusionProofRequest_Index{Index: 1}})
	for _, path := range []string{"checkpoint", "tile/0/000.p/3", "tile/entries/000.p/3", "healthz", "nowhere"} {
		httpGet(ctx, d.HTTPURL+path)
	}
	// The forked log: a checkpoint, then another of the same size with
	// another root.
	lg := &witnessLog{signer: fsigner}
	lg.add(t, 4, "a")
	fork := &witnessLog{signer: fsigner, hashes: slices.Clone(lg.hashes), n: lg.n}
	lg.add(t, 4, "a")
	fork.add(t, 4, "b")
	if code, resp := w.add(t, lg.request(t, 0)); code != 200 {
		t.Fatalf("add-checkpoint: %d %q", code, resp)
	}
	if code, resp := w.add(t, fork.request(t, 8)); code == 200 {
		t.Fatalf("the witness cosigned a fork: %q", resp)
	}
	httpGet(ctx, w.url+"evidence")

	// Every metric, and every label, the dashboard uses is exported. Some
	// appear only once their first event is counted (polls, for one): wait
	// for them, bounded.
	for _, target := range []struct {
		name, url string
		witness   bool // the queries of $witness_job, else those of $job
	}{
		{"provlogd", d.HTTPURL + "metrics", false},
		{"provlog-witness", w.url + "metrics", true},
	} {
		var missing []string
		waitFor(t, ctx, target.name+" exporting every metric the dashboard uses", func() error {
			body, err := fetchOK(ctx, target.url)
			if err != nil {
				return err
			}
			missing = dash.check(parseExposition(t, string(body)), func(q query) bool { return q.ofWitness() == target.witness })
			if len(missing) > 0 {
				return fmt.Errorf("missing: %s", strings.Join(missing, "; "))
			}
			return nil
		})
	}
}

// waitFor polls f until it returns nil, failing the test with f's last
// error once ctx ends.
func waitFor(t *testing.T, ctx context.Context, what string, f func() error) {
	t.Helper()
	for {
		err := f()
		if err == nil {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("waiting for %s: %v", what, err)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func writeText(t *testing.T, path, data string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
}

// dashboard is what the test reads of the Grafana dashboard: each PromQL
// query (panel targets and template variables) and each legend.
type dashboard struct {
	exprs []query
}

type query struct {
	where  string // the panel's title, for messages
	expr   string
	legend string
}

// ofWitness reports whether q charts the witness: it selects the job
// $witness_job, or it is the query of that variable; other queries chart
// provlogd.
func (q query) ofWitness() bool {
	return strings.Contains(q.expr, "$witness_job") || strings.Contains(q.expr, "provlog_witness_build_info")
}

func readDashboard(t *testing.T) dashboard {
	t.Helper()
	raw, err := os.ReadFile(dashboardFile)
	if err != nil {
		t.Fatal(err)
	}
	var d struct {
		UID    string `json:"uid"`
		Panels []struct {
			ID      int    `json:"id"`
			Type    string `json:"type"`
			Title   string `json:"title"`
			Targets []struct {
				Expr         string `json:"expr"`
				LegendFormat string `json:"legendFormat"`
				RefID        string `json:"refId"`
			} `json:"targets"`
		} `json:"panels"`
		Templating struct {
			List []struct {
				Name  string `json:"name"`
				Type  string `json:"type"`
				Query any    `json:"query"`
			} `json:"list"`
		} `json:"templating"`
	}
	if err := json.Unmarshal(raw, &d); err != nil {
		t.Fatalf("%s: %v", dashboardFile, err)
	}
	if d.UID == "" {
		t.Error("the dashboard has no uid")
	}
	var out dashboard
	ids := map[int]bool{}
	for _, p := range d.Panels {
		if ids[p.ID] {
			t.Errorf("panel id %d used twice", p.ID)
		}
		ids[p.ID] = true
		if p.Type != "row" && len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, tg := range p.Targets {
			if tg.Expr == "" || tg.RefID == "" {
				t.Errorf("panel %q: a target without expr or refId", p.Title)
			}
			out.exprs = append(out.exprs, query{where: p.Title, expr: tg.Expr, legend: tg.LegendFormat})
		}
	}
	for _, v := range d.Templating.List {
		if v.Type != "query" {
			continue
		}
		q, _ := v.Query.(map[string]any)
		s, _ := q["query"].(string)
		if s == "" {
			t.Errorf("variable %s has no query", v.Name)
		}
		out.exprs = append(out.exprs, query{where: "variable " + v.Name, expr: s})
	}
	return out
}

var (
	// metricRE finds metric names: the daemons export only provlog_*,
	// go_* and process_* metrics.
	metricRE   = regexp.MustCompile(`\b(?:provlog|go|process)_[a-zA-Z0-9_:]*`)
	selectorRE = regexp.MustCompile(`\b((?:provlog|go|process)_[a-zA-Z0-9_:]*)\{([^}]*)\}`)
	matcherRE  = regexp.MustCompile(`([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)\s*"`)
	groupingRE = regexp.MustCompile(`\b(?:by|without)\s*\(([^)]*)\)`)
	legendRE   = regexp.MustCompile(`\{\{\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*\}\}`)
	labelVarRE = regexp.MustCompile(`label_values\(\s*[a-zA-Z0-9_:]+\s*,\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*\)`)
)

// scrapeLabels are the labels Prometheus adds to every series it scrapes.
var scrapeLabels = []string{"job", "instance"}

// check returns what the queries for which charted is true need that the
// exposition e lacks: metrics, and labels of them.
func (d dashboard) check(e exposition, charted func(query) bool) []string {
	var missing []string
	for _, q := range d.exprs {
		if !charted(q) {
			continue
		}
		// The labels the query's metrics carry.
		have := map[string]bool{}
		for _, l := range scrapeLabels {
			have[l] = true
		}
		names := metricRE.FindAllString(q.expr, -1)
		for _, name := range names {
			fam, ok := e.family(name)
			if !ok {
				missing = append(missing, fmt.Sprintf("%s (panel %q)", name, q.where))
				continue
			}
			maps.Copy(have, e.labels[fam])
			if strings.HasSuffix(name, "_bucket") {
				have["le"] = true
			}
		}
		for _, m := range selectorRE.FindAllStringSubmatch(q.expr, -1) {
			fam, ok := e.family(m[1])
			if !ok {
				continue
			}
			for _, mm := range matcherRE.FindAllStringSubmatch(m[2], -1) {
				if !e.labels[fam][mm[1]] && !slices.Contains(scrapeLabels, mm[1]) {
					missing = append(missing, fmt.Sprintf("label %s of %s (panel %q)", mm[1], m[1], q.where))
				}
			}
		}
		var used []string
		for _, g := range groupingRE.FindAllStringSubmatch(q.expr, -1) {
			for l := range strings.SplitSeq(g[1], ",") {
				used = append(used, strings.TrimSpace(l))
			}
		}
		for _, l := range legendRE.FindAllStringSubmatch(q.legend, -1) {
			used = append(used, l[1])
		}
		for _, l := range labelVarRE.FindAllStringSubmatch(q.expr, -1) {
			used = append(used, l[1])
		}
		for _, l := range used {
			if l != "" && !have[l] {
				missing = append(missing, fmt.Sprintf("label %s of %v (panel %q)", l, names, q.where))
			}
		}
	}
	return missing
}

// exposition is what a scrape of /metrics (Prometheus text format) holds:
// each metric family's type and the label names its series carry.
type exposition struct {
	types  map[string]string          // family -> counter, gauge, histogram, ...
	labels map[string]map[string]bool // family -> label names
}

// family returns the family a sample name belongs to: itself, or for
// NAME_bucket, NAME_sum and NAME_count, the histogram or summary NAME.
func (e exposition) family(sample string) (string, bool) {
	if _, ok := e.types[sample]; ok {
		return sample, true
	}
	for _, suffix := range []string{"_bucket", "_sum", "_count"} {
		if base, ok := strings.CutSuffix(sample, suffix); ok {
			if typ := e.types[base]; typ == "histogram" || (typ == "summary" && suffix != "_bucket") {
				return base, true
			}
		}
	}
	return "", false
}

// parseExposition parses the text exposition format: "# TYPE name type"
// lines, and samples "name{label="value",...} value".
func parseExposition(t *testing.T, text string) exposition {
	t.Helper()
	e := exposition{types: map[string]string{}, labels: map[string]map[string]bool{}}
	for line := range strings.Lines(text) {
		line = strings.TrimSpace(line)
		if rest, ok := strings.CutPrefix(line, "# TYPE "); ok {
			name, typ, _ := strings.Cut(rest, " ")
			e.types[name] = typ
			e.labels[name] = map[string]bool{}
			continue
		}
		if line == "" || line[0] == '#' {
			continue
		}
		name, labels, err := parseSample(line)
		if err != nil {
			t.Fatalf("metrics line %q: %v", line, err)
		}
		fam, ok := e.family(name)
		if !ok {
			t.Fatalf("metrics line %q: no TYPE line for it", line)
		}
		for _, l := range labels {
			e.labels[fam][l] = true
		}
	}
	return e
}

// parseSample returns a sample line's metric name and label names.
func parseSample(line string) (string, []string, error) {
	i := strings.IndexAny(line, "{ ")
	if i <= 0 {
		return "", nil, fmt.Errorf("no name")
	}
	name, rest := line[:i], line[i:]
	var labels []string
	if rest[0] != '{' {
		return name, nil, nil
	}
	rest = rest[1:]
	for {
		rest = strings.TrimLeft(rest, " ,")
		if strings.HasPrefix(rest, "}") {
			return name, labels, nil
		}
		eq := strings.Index(rest, `="`)
		if eq <= 0 {
			return "", nil, fmt.Errorf("bad label at %q", rest)
		}
		labels = append(labels, rest[:eq])
		rest = rest[eq+2:]
		// The value, with \" \\ and \n escapes, up to its closing quote.
		j := 0
		for ; j < len(rest) && rest[j] != '"'; j++ {
			if rest[j] == '\\' {
				j++
			}
		}
		if j >= len(rest) {
			return "", nil, fmt.Errorf("unterminated label value")
		}
		rest = rest[j+1:]
	}
}

// The checker itself: a dashboard query on a metric or label that does not
// exist is reported, one that does is not.
func TestDashboardCheck(t *testing.T) {
	e := parseExposition(t, `# HELP provlog_x_total x
# TYPE provlog_x_total counter
provlog_x_total{method="/a{b}",code="OK"} 1
# TYPE provlog_h_seconds histogram
provlog_h_seconds_bucket{route="GET /tile/{path...}",le="0.1"} 1
provlog_h_seconds_sum{route="GET /tile/{path...}"} 1
provlog_h_seconds_count{route="GET /tile/{path...}"} 1
# TYPE go_goroutines gauge
go_goroutines 7
`)
	all := func(query) bool { return true }
	for _, tc := range []struct {
		q    query
		want int
	}{
		{query{expr: `sum by (method, code) (rate(provlog_x_total{job=~"$job",code!="OK"}[5m]))`, legend: "{{method}} {{instance}}"}, 0},
		{query{expr: `histogram_quantile(0.99, sum by (route, le) (rate(provlog_h_seconds_bucket[5m])))`}, 0},
		{query{expr: `go_goroutines{job="x"} + provlog_h_seconds_count`}, 0},
		{query{expr: `label_values(provlog_x_total, method)`}, 0},
		{query{expr: `rate(provlog_y_total[5m])`}, 1},
		{query{expr: `sum by (route) (provlog_x_total)`}, 1},
		{query{expr: `provlog_x_total{result="new"}`}, 1},
		{query{expr: `provlog_x_total`, legend: "{{origin}}"}, 1},
		{query{expr: `provlog_x_total_bucket`}, 1},
		{query{expr: `label_values(go_goroutines, method)`}, 1},
	} {
		if got := (dashboard{exprs: []query{tc.q}}).check(e, all); len(got) != tc.want {
			t.Errorf("%+v: missing %q, want %d", tc.q, got, tc.want)
		}
	}
}
