package client

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// RetryPolicy says how calls that a log answers with Unavailable, or with
// ResourceExhausted with RetryInfo (pushback), are retried. Waits grow
// exponentially from InitialBackoff to MaxBackoff, each drawn at random
// from its upper half (jitter); a RetryInfo delay in the server's status
// is waited at least, plus up to a fifth more of jitter. The call's
// context bounds the whole: a wait that would outlast its deadline is not
// started.
//
// A call that reached no log (no connection could be made: see
// ErrNoConnection) is not retried: it fails at once, unless
// Config.WaitForReady makes it wait for the connection instead.
type RetryPolicy struct {
	// InitialBackoff is the wait before the first retry. If zero, 100ms.
	InitialBackoff time.Duration
	// MaxBackoff caps the exponential wait (not a server's RetryInfo
	// delay, which is always honoured). If zero, 10s.
	MaxBackoff time.Duration
	// MaxAttempts caps the attempts, the first included. If zero, there
	// is no cap and only the context ends retrying.
	MaxAttempts int
	// OnRetry, if not nil, is called before each wait with the call's name
	// ("append", "get checkpoint", ...), the failed attempt (1 for the
	// first), the wait and the error: for a command to say what it is
	// waiting for. It is called from the goroutine making the call.
	OnRetry func(op string, attempt int, wait time.Duration, err error)
}

func (p RetryPolicy) withDefaults() RetryPolicy {
	if p.InitialBackoff <= 0 {
		p.InitialBackoff = 100 * time.Millisecond
	}
	if p.MaxBackoff <= 0 {
		p.MaxBackoff = 10 * time.Second
	}
	return p
}

// backoff returns the wait after the given failed attempt (1 for the first)
// whose error was err.
func (p RetryPolicy) backoff(attempt int, err error) time.Duration {
	d := p.InitialBackoff
	for i := 1; i < attempt && d < p.MaxBackoff; i++ {
		d *= 2
	}
	d = min(d, p.MaxBackoff)
	d = d/2 + rand.N(d/2+1)
	if hint, ok := retryInfoDelay(err); ok && hint > 0 {
		d = max(d, hint+rand.N(hint/5+1))
	}
	return d
}

// retryInfoDelay returns the delay of a google.rpc.RetryInfo detail in
// err's gRPC status, if there is one.
func retryInfoDelay(err error) (time.Duration, bool) {
	st, ok := status.FromError(err)
	if !ok {
		return 0, false
	}
	for _, d := range st.Details() {
		if ri, ok := d.(*errdetails.RetryInfo); ok && ri.GetRetryDelay() != nil {
			return ri.GetRetryDelay().AsDuration(), true
		}
	}
	return 0, false
}

// retryable reports whether a call that failed with err may be retried:
// Unavailable, and ResourceExhausted when the server says when to retry
// (RetryInfo, as provlogd's pushback does). gRPC itself reports a message
// over the size cap as ResourceExhausted without RetryInfo; sending it
// again would fail the same way for ever.
func retryable(err error) bool {
	switch status.Code(err) {
	case codes.Unavailable:
		return true
	case codes.ResourceExhausted:
		_, ok := retryInfoDelay(err)
		return ok
	}
	return false
}

// rejected reports whether err says the request itself was refused.
func rejected(err error) bool {
	switch status.Code(err) {
	case codes.InvalidArgument, codes.FailedPrecondition, codes.PermissionDenied,
		codes.Unauthenticated, codes.OutOfRange, codes.NotFound, codes.AlreadyExists:
		return true
	}
	return false
}

// retry calls call until it succeeds, fails with an error that is not
// retryable (a refusal, or a *ConnectError: the call reached no log), the
// attempts run out or ctx ends. op names the call in errors. Errors wrap
// ErrRejected, ErrNoConnection or ErrUnavailable where those apply, and
// the last gRPC status error.
func retry(ctx context.Context, p RetryPolicy, logger *slog.Logger, op string, call func(context.Context) error) error {
	p = p.withDefaults()
	for attempt := 1; ; attempt++ {
		err := call(ctx)
		switch {
		case err == nil:
			return nil
		case ctx.Err() != nil:
			return fmt.Errorf("%s: %w", op, errors.Join(ctx.Err(), err))
		case errors.Is(err, ErrNoConnection):
			return fmt.Errorf("%s: %w", op, err)
		case rejected(err):
			return fmt.Errorf("%s: %w: %w", op, ErrRejected, err)
		case !retryable(err):
			return fmt.Errorf("%s: %w", op, err)
		case p.MaxAttempts > 0 && attempt >= p.MaxAttempts:
			return fmt.Errorf("%s: %w after %d attempts: %w", op, ErrUnavailable, attempt, err)
		}
		wait := p.backoff(attempt, err)
		if dl, ok := ctx.Deadline(); ok && time.Until(dl) < wait {
			return fmt.Errorf("%s: %w: the deadline comes before the next retry in %v: %w", op, ErrUnavailable, wait, err)
		}
		logger.DebugContext(ctx, "retrying provlog call", "op", op, "attempt", attempt, "wait", wait, "err", err)
		if p.OnRetry != nil {
			p.OnRetry(op, attempt, wait, err)
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("%s: %w: %w (last error: %w)", op, ErrUnavailable, ctx.Err(), err)
		case <-t.C:
		}
	}
}
