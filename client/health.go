package client

import (
	"context"
	"fmt"

	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	provlogv1 "github.com/provlog/provlog/proto/provlog/v1"
)

// Health asks the log's standard gRPC health service (grpc.health.v1)
// whether provlog.v1.Log is serving, once, without retrying: for a poll
// such as waiting for a log to start. It returns nil if it is SERVING, an
// error naming the status it is in otherwise, and the call's error
// (a *ConnectError if it reached no log, the gRPC status if the log has
// no health service) if it failed.
func (c *Client) Health(ctx context.Context) error {
	resp, err := healthpb.NewHealthClient(c.cc).Check(ctx, &healthpb.HealthCheckRequest{Service: provlogv1.Log_ServiceDesc.ServiceName})
	if err != nil {
		return fmt.Errorf("health check: %w", err)
	}
	if st := resp.GetStatus(); st != healthpb.HealthCheckResponse_SERVING {
		return fmt.Errorf("the log is not serving (health status %v)", st)
	}
	return nil
}
