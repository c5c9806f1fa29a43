package server

import (
	"context"
	"errors"
	"log/slog"
	"runtime"
	"strconv"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/reflection"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/provlog/provlog/log"
	provlogv1 "github.com/provlog/provlog/proto/provlog/v1"
)

// retryDelay is the delay suggested to clients under pushback.
const retryDelay = time.Second

const (
	// maxBatchBytes caps the entry bytes of one AppendBatchRequest, through
	// the receive message cap: 16 MiB, the most that client.AppendMany
	// puts in one batch. Without it, 4096 entries of 64 KiB would be a
	// 256 MiB request.
	maxBatchBytes = 16 << 20
	// entryFraming is the most protobuf framing of one entry in a request:
	// a one-byte tag and a length varint of at most three bytes (entries
	// are under 2^21 bytes).
	entryFraming = 1 + 3
	// requestSlack covers the rest of any request: the other fields of an
	// append, and every read request (the largest, a SearchRequest, is
	// under 2 KiB).
	requestSlack = 4 << 10
)

// GRPCConfig bounds what the gRPC server lets one client hold. The zero
// value is usable.
type GRPCConfig struct {
	// MaxEntrySize is the log's entry cap in bytes (Log.MaxEntrySize), from
	// which the receive message cap is computed (see maxRequestSize). If
	// zero, log.MaxEntrySizeLimit.
	MaxEntrySize int
	// MaxConcurrentStreams caps the calls in progress on one connection;
	// a client's further calls wait for one to end. If zero, 256.
	MaxConcurrentStreams uint32
	// MaxConnectionIdle is how long a connection with no call in progress
	// is kept before the server closes it (with GOAWAY; clients reconnect
	// on their next call). If zero, 5 minutes.
	MaxConnectionIdle time.Duration
}

// Keepalive enforcement: a client may ping at most every keepaliveMinTime,
// and only while a call is in progress, or the server closes the
// connection (GOAWAY "too_many_pings"); the server pings a connection
// silent for keepaliveTime and closes it if no answer comes within
// keepaliveTimeout, so dead peers do not hold streams.
const (
	keepaliveMinTime = 30 * time.Second
	keepaliveTime    = time.Minute
	keepaliveTimeout = 20 * time.Second
)

// maxRequestSize is the receive message cap for a log whose entry cap is
// maxEntrySize: the largest AppendBatchRequest, maxBatchEntries entries of
// maxEntrySize bytes but at most maxBatchBytes of entries, with their
// framing, plus requestSlack. A larger message is refused by gRPC with
// ResourceExhausted before it is decoded. It is 16 MiB and 20 KiB for
// entries of up to 64 KiB, 4 MiB and 20 KiB for entries of up to 1 KiB.
func maxRequestSize(maxEntrySize int) int {
	return min(maxBatchEntries*maxEntrySize, maxBatchBytes) + maxBatchEntries*entryFraming + requestSlack
}

// ServerOptions are the gRPC server options provlogd uses: the receive
// message cap of maxRequestSize, the limits of c, keepalive enforcement
// (see keepaliveMinTime), and a pool of one stream worker per CPU, whose
// goroutines keep their grown stacks from call to call (in process,
// 37-60k proofs/s without it, 65k/s with it: BenchmarkReads).
func ServerOptions(c GRPCConfig) []grpc.ServerOption {
	if c.MaxEntrySize <= 0 {
		c.MaxEntrySize = log.MaxEntrySizeLimit
	}
	if c.MaxConcurrentStreams == 0 {
		c.MaxConcurrentStreams = 256
	}
	if c.MaxConnectionIdle <= 0 {
		c.MaxConnectionIdle = 5 * time.Minute
	}
	return []grpc.ServerOption{
		grpc.MaxRecvMsgSize(maxRequestSize(c.MaxEntrySize)),
		grpc.MaxConcurrentStreams(c.MaxConcurrentStreams),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: keepaliveMinTime, PermitWithoutStream: false}),
		grpc.KeepaliveParams(keepalive.ServerParameters{
			MaxConnectionIdle: c.MaxConnectionIdle,
			Time:              keepaliveTime,
			Timeout:           keepaliveTimeout,
		}),
		// Streams run on a pool of reused goroutines, whose stacks have
		// grown to the depth of a read (gRPC, the log, Pebble), rather
		// than on new goroutines that grow theirs on every call; gRPC
		// starts a goroutine for a stream only when every worker is
		// busy. With one worker per CPU most of 32 concurrent readers'
		// calls ran on new goroutines, and stack growth was a sixth of
		// the server's CPU per proof; 16 per CPU took 10-14% less CPU per
		// proof (BenchmarkInclusionProofs, alternating: 60.3-63.8 against
		// 69.3-72.6 cpu-µs/proof), 64 per CPU no less than 16.
		grpc.NumStreamWorkers(uint32(16 * runtime.GOMAXPROCS(0))),
	}
}

// RegisterGRPC registers on s the provlog.v1.Log service over l, the
// standard gRPC health service (serving status from l.Healthy, for the
// overall server "" and for "provlog.v1.Log") and reflection.
func RegisterGRPC(s *grpc.Server, l Log, opts ...Option) {
	provlogv1.RegisterLogServer(s, &grpcServer{log: l, opts: applyOptions(opts)})
	healthpb.RegisterHealthServer(s, newHealthServer(l))
	reflection.Register(s)
}

// grpcServer implements provlogv1.LogServer over a Log.
type grpcServer struct {
	provlogv1.UnimplementedLogServer
	log  Log
	opts options
}

func (s *grpcServer) Append(ctx context.Context, req *provlogv1.AppendRequest) (_ *provlogv1.AppendResponse, err error) {
	defer func(ctx context.Context) { s.opts.logRefusedGRPC(ctx, provlogv1.Log_Append_FullMethodName, err) }(ctx)
	if err := validateAppendRequest(req, s.log.MaxEntrySize()); err != nil {
		return nil, err
	}
	ctx, err = s.opts.authorizeGRPC(ctx, 1)
	if err != nil {
		return nil, grpcError(err)
	}
	res, err := s.log.Add(ctx, req.Entry)
	if err != nil {
		return nil, grpcError(err)
	}
	return appendResponse(res), nil
}

func (s *grpcServer) AppendBatch(ctx context.Context, req *provlogv1.AppendBatchRequest) (_ *provlogv1.AppendBatchResponse, err error) {
	defer func(ctx context.Context) { s.opts.logRefusedGRPC(ctx, provlogv1.Log_AppendBatch_FullMethodName, err) }(ctx)
	if err := validateAppendBatchRequest(req, s.log.MaxEntrySize()); err != nil {
		return nil, err
	}
	ctx, err = s.opts.authorizeGRPC(ctx, len(req.Entries))
	if err != nil {
		return nil, grpcError(err)
	}
	res, err := s.log.AddBatch(ctx, req.Entries)
	if err != nil {
		return nil, grpcError(err)
	}
	return appendBatchResponse(res), nil
}

func (s *grpcServer) GetCheckpoint(_ context.Context, _ *provlogv1.GetCheckpointRequest) (*provlogv1.GetCheckpointResponse, error) {
	cp, err := s.checkpoint()
	if err != nil {
		return nil, err
	}
	return &provlogv1.GetCheckpointResponse{Checkpoint: cp.Note}, nil
}

func (s *grpcServer) GetInclusionProof(ctx context.Context, req *provlogv1.GetInclusionProofRequest) (*provlogv1.GetInclusionProofResponse, error) {
	if err := validateGetInclusionProofRequest(req); err != nil {
		return nil, err
	}
	size, note, err := s.resolveSize(req.TreeSize)
	if err != nil {
		return nil, err
	}
	index, err := s.leafIndex(ctx, req, size)
	if err != nil {
		return nil, err
	}
	proof, err := s.log.InclusionProof(ctx, index, size)
	if err != nil {
		return nil, grpcError(err)
	}
	return &provlogv1.GetInclusionProofResponse{Index: index, TreeSize: size, Proof: proof, Checkpoint: note}, nil
}

// leafIndex returns the index the request names, looking up a leaf hash;
// an entry that the tree of the given size does not hold is OutOfRange.
func (s *grpcServer) leafIndex(ctx context.Context, req *provlogv1.GetInclusionProofRequest, size uint64) (uint64, error) {
	hash := req.GetLeafHash()
	if hash == nil {
		return req.GetIndex(), nil
	}
	index, err := s.log.IndexOf(ctx, hash)
	if err != nil {
		return 0, grpcError(err)
	}
	if index >= size {
		return 0, status.Errorf(codes.OutOfRange, "entry %d is not in the tree of size %d", index, size)
	}
	return index, nil
}

func (s *grpcServer) GetConsistencyProof(ctx context.Context, req *provlogv1.GetConsistencyProofRequest) (*provlogv1.GetConsistencyProofResponse, error) {
	if err := validateGetConsistencyProofRequest(req); err != nil {
		return nil, err
	}
	to, note, err := s.resolveSize(req.ToSize)
	if err != nil {
		return nil, err
	}
	proof, err := s.log.ConsistencyProof(ctx, req.FromSize, to)
	if err != nil {
		return nil, grpcError(err)
	}
	return &provlogv1.GetConsistencyProofResponse{FromSize: req.FromSize, ToSize: to, Proof: proof, Checkpoint: note}, nil
}

// checkpoint returns the latest published checkpoint, or Unavailable if
// there is none yet.
func (s *grpcServer) checkpoint() (log.Checkpoint, error) {
	cp := s.log.Checkpoint()
	if len(cp.Note) == 0 {
		return cp, status.Error(codes.Unavailable, "no checkpoint published yet")
	}
	return cp, nil
}

// resolveSize resolves a requested tree size: 0 means the latest published
// checkpoint, whose note is then returned too.
func (s *grpcServer) resolveSize(size uint64) (uint64, []byte, error) {
	if size != 0 {
		return size, nil, nil
	}
	cp, err := s.checkpoint()
	if err != nil {
		return 0, nil, err
	}
	return cp.Size, cp.Note, nil
}

func appendResponse(r log.AddResult) *provlogv1.AppendResponse {
	return &provlogv1.AppendResponse{Index: r.Index, Duplicate: r.Duplicate}
}

func appendBatchResponse(rs []log.AddResult) *provlogv1.AppendBatchResponse {
	out := make([]*provlogv1.AppendResponse, len(rs))
	for i, r := range rs {
		out[i] = appendResponse(r)
	}
	return &provlogv1.AppendBatchResponse{Results: out}
}

// grpcError maps an error from the log to a gRPC status error. Errors
// wrapping no known sentinel are logged and reported as Internal without
// their text.
func grpcError(err error) error {
	switch {
	case errors.Is(err, log.ErrInvalidEntry), errors.Is(err, errOverBurst):
		return status.Error(codes.InvalidArgument, err.Error())
	case errors.Is(err, log.ErrPushback), errors.Is(err, errRateLimited):
		return pushbackStatus(err)
	case errors.Is(err, errUnauthenticated):
		return status.Error(codes.Unauthenticated, err.Error())
	case errors.Is(err, log.ErrUnavailable):
		// With the RetryInfo an HTTP 503's Retry-After gives (a replica
		// with no leader for a moment, a log shutting down).
		return retryStatus(codes.Unavailable, err)
	case errors.Is(err, log.ErrOutOfRange):
		return status.Error(codes.OutOfRange, err.Error())
	case errors.Is(err, log.ErrNotFound):
		return status.Error(codes.NotFound, err.Error())
	case errors.Is(err, log.ErrPermissionDenied):
		return status.Error(codes.PermissionDenied, err.Error())
	case errors.Is(err, log.ErrFailedPrecondition):
		return status.Error(codes.FailedPrecondition, err.Error())
	case errors.Is(err, context.Canceled):
		return status.Error(codes.Canceled, err.Error())
	case errors.Is(err, context.DeadlineExceeded):
		return status.Error(codes.DeadlineExceeded, err.Error())
	}
	slog.Error("internal error serving gRPC request", "err", err)
	return status.Error(codes.Internal, "internal error")
}

// pushbackStatus is ResourceExhausted with a RetryInfo detail.
func pushbackStatus(err error) error { return retryStatus(codes.ResourceExhausted, err) }

// retryStatus is the status of code with a RetryInfo detail.
func retryStatus(code codes.Code, err error) error {
	st := status.New(code, err.Error())
	withRetry, derr := st.WithDetails(&errdetails.RetryInfo{RetryDelay: durationpb.New(retryDelay)})
	if derr != nil {
		return st.Err()
	}
	return withRetry.Err()
}

func (s *grpcServer) Search(ctx context.Context, req *provlogv1.SearchRequest) (*provlogv1.SearchResponse, error) {
	q, err := validateSearchRequest(req)
	if err != nil {
		return nil, err
	}
	results, next, err := s.log.Search(ctx, q.kind, q.value, q.from, q.limit)
	if err != nil {
		return nil, grpcError(err)
	}
	resp := &provlogv1.SearchResponse{}
	for _, r := range results {
		res := &provlogv1.SearchResult{Index: r.Index, EventType: r.Type, Entry: r.Entry}
		if req.Decode {
			res.Decoded = decodeEntry(ctx, s.log, r.Index, r.Entry)
		}
		resp.Results = append(resp.Results, res)
	}
	if next != 0 {
		resp.NextPageToken = strconv.FormatUint(next, 10)
	}
	return resp, nil
}

func (s *grpcServer) GetProofBundle(ctx context.Context, req *provlogv1.GetProofBundleRequest) (*provlogv1.GetProofBundleResponse, error) {
	if err := validateGetProofBundleRequest(req); err != nil {
		return nil, err
	}
	index := req.GetIndex()
	if hash := req.GetLeafHash(); hash != nil {
		var err error
		if index, err = s.log.IndexOf(ctx, hash); err != nil {
			return nil, grpcError(err)
		}
	}
	bundle, err := s.log.ProofBundle(ctx, index)
	if err != nil {
		return nil, grpcError(err)
	}
	return &provlogv1.GetProofBundleResponse{Bundle: bundle, Index: index}, nil
}
