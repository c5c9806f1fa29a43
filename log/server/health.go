package server

import (
	"context"
	"time"

	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	provlogv1 "github.com/provlog/provlog/proto/provlog/v1"
)

// healthWatchInterval is how often a Watch call re-reads the log's health.
const healthWatchInterval = 5 * time.Second

// healthServer is the standard gRPC health service, with the status of the
// overall server ("") and of provlog.v1.Log both taken from Log.Healthy:
// re-read on every Check and List, and every interval during a Watch. It
// keeps no goroutine beyond the calls it serves.
type healthServer struct {
	*health.Server
	log      Log
	interval time.Duration // between refreshes during a Watch
}

func newHealthServer(l Log) *healthServer {
	h := &healthServer{Server: health.NewServer(), log: l, interval: healthWatchInterval}
	h.refresh()
	return h
}

// refresh sets both services' status from Log.Healthy.
func (h *healthServer) refresh() {
	st := healthpb.HealthCheckResponse_SERVING
	if h.log.Healthy() != nil {
		st = healthpb.HealthCheckResponse_NOT_SERVING
	}
	h.SetServingStatus("", st)
	h.SetServingStatus(provlogv1.Log_ServiceDesc.ServiceName, st)
}

func (h *healthServer) Check(ctx context.Context, req *healthpb.HealthCheckRequest) (*healthpb.HealthCheckResponse, error) {
	h.refresh()
	return h.Server.Check(ctx, req)
}

func (h *healthServer) List(ctx context.Context, req *healthpb.HealthListRequest) (*healthpb.HealthListResponse, error) {
	h.refresh()
	return h.Server.List(ctx, req)
}

// Watch serves health.Server's Watch while refreshing the status
// periodically; the server sends only changes.
func (h *healthServer) Watch(req *healthpb.HealthCheckRequest, stream healthpb.Health_WatchServer) error {
	h.refresh()
	done := make(chan struct{})
	defer close(done)
	go func() {
		t := time.NewTicker(h.interval)
		defer t.Stop()
		for {
			select {
			case <-t.C:
				h.refresh()
			case <-done:
				return
			}
		}
	}()
	return h.Server.Watch(req, stream)
}
