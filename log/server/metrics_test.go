package server

import (
	"context"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"

	provlogv1 "github.com/provlog/provlog/proto/provlog/v1"
)

// Every gRPC call is counted by method and code and timed by method.
func TestGRPCMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	f := newFakeLog(4)
	c := provlogv1.NewLogClient(dialBufconnWith(t, NewGRPCMetrics(reg).ServerOptions(), func(s *grpc.Server) { RegisterGRPC(s, f) }))
	ctx := context.Background()
	c.GetCheckpoint(ctx, &provlogv1.GetCheckpointRequest{})
	c.GetCheckpoint(ctx, &provlogv1.GetCheckpointRequest{})
	c.GetInclusionProof(ctx, &provlogv1.GetInclusionProofRequest{Leaf: &provlogv1.GetInclusionProofRequest_Index{Index: 9}, TreeSize: 4})
	c.Append(ctx, &provlogv1.AppendRequest{})
	st, err := c.GetEntries(ctx, &provlogv1.GetEntriesRequest{Start: 0, Count: 2})
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := st.Recv(); err != nil {
			break
		}
	}
	for _, w := range []struct {
		method, code string
		want         float64
	}{
		{"/provlog.v1.Log/GetCheckpoint", "OK", 2},
		{"/provlog.v1.Log/GetInclusionProof", "OutOfRange", 1},
		{"/provlog.v1.Log/Append", "InvalidArgument", 1},
		{"/provlog.v1.Log/GetEntries", "OK", 1},
	} {
		if got := gathered(t, reg, "provlog_grpc_requests_total", "method", w.method, "code", w.code); got != w.want {
			t.Errorf("provlog_grpc_requests_total{method=%q,code=%q} = %v, want %v", w.method, w.code, got, w.want)
		}
	}
	if got := gathered(t, reg, "provlog_grpc_request_duration_seconds", "method", "/provlog.v1.Log/GetCheckpoint"); got != 2 {
		t.Errorf("%v GetCheckpoint calls timed, want 2", got)
	}
}

// gathered returns the value of the series of metric name with the given
// label pairs (a histogram's count), failing the test if there is none.
func gathered(t *testing.T, reg *prometheus.Registry, name string, labels ...string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	metrics:
		for _, m := range mf.GetMetric() {
			have := map[string]string{}
			for _, l := range m.GetLabel() {
				have[l.GetName()] = l.GetValue()
			}
			for i := 0; i < len(labels); i += 2 {
				if have[labels[i]] != labels[i+1] {
					continue metrics
				}
			}
			if h := m.GetHistogram(); h != nil {
				return float64(h.GetSampleCount())
			}
			return m.GetCounter().GetValue()
		}
	}
	t.Errorf("no series %s%q", name, labels)
	return 0
}
