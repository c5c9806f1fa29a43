package server

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/status"

	"github.com/provlog/provlog/internal/daemon"
)

// GRPCMetrics count and time every call the gRPC server handles: those of
// provlog.v1.Log, health and reflection (unknown methods are refused by
// gRPC before any interceptor runs, so the method label takes only the
// registered ones).
type GRPCMetrics struct {
	requests *prometheus.CounterVec   // by method, code
	seconds  *prometheus.HistogramVec // by method
}

// NewGRPCMetrics returns the metrics provlog_grpc_requests_total (by full
// method name, such as "/provlog.v1.Log/Append", and status code name,
// such as "OK" or "InvalidArgument") and
// provlog_grpc_request_duration_seconds (by method), registered on reg.
func NewGRPCMetrics(reg prometheus.Registerer) *GRPCMetrics {
	m := &GRPCMetrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "provlog_grpc_requests_total",
			Help: "gRPC calls ended, by full method name and status code.",
		}, []string{"method", "code"}),
		seconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "provlog_grpc_request_duration_seconds",
			Help:    "Duration of gRPC calls, by full method name (streams: until the handler returns).",
			Buckets: daemon.RequestSecondsBuckets,
		}, []string{"method"}),
	}
	reg.MustRegister(m.requests, m.seconds)
	return m
}

// ServerOptions returns the interceptors that record the metrics, to pass
// to grpc.NewServer with ServerOptions' own.
func (m *GRPCMetrics) ServerOptions() []grpc.ServerOption {
	return []grpc.ServerOption{
		grpc.ChainUnaryInterceptor(func(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
			start := time.Now()
			resp, err := h(ctx, req)
			m.observe(info.FullMethod, start, err)
			return resp, err
		}),
		grpc.ChainStreamInterceptor(func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, h grpc.StreamHandler) error {
			start := time.Now()
			err := h(srv, ss)
			m.observe(info.FullMethod, start, err)
			return err
		}),
	}
}

func (m *GRPCMetrics) observe(method string, start time.Time, err error) {
	m.requests.WithLabelValues(method, status.Code(err).String()).Inc()
	m.seconds.WithLabelValues(method).Observe(time.Since(start).Seconds())
}
