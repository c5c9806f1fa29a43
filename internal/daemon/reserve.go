package daemon

import (
	"errors"
	"fmt"
	"net"
	"syscall"
)

// A Reservation is a TCP address a daemon has bound but does not listen on
// yet. A daemon reserves its addresses before it writes anything, so that
// a busy port fails its start with nothing left behind, and listens only
// once it is ready to answer, so that whoever finds the port open finds
// its files written too: on Unix a reserved port refuses connections
// until Listen.
//
// A reservation is not a lock: Linux lets another socket that sets
// SO_REUSEADDR (as Go's net.Listen does) bind the address while it is
// reserved and listen on it first, and then Listen fails as a busy port
// would have.
//
// Elsewhere than on Unix, Reserve listens at once: the port accepts
// connections from then on, and they wait until the daemon serves them.
type Reservation struct {
	flag, address string   // as given, for errors
	addr          net.Addr // the address bound (port 0 resolved)
	bound         bound    // the bound socket, until Listen or Close
}

// Reserve binds address, the value of the daemon's flag (named without its
// dashes, such as "grpc-listen"). Its errors name the flag and the
// address: "--grpc-listen 127.0.0.1:7400: address already in use (...)".
func Reserve(flag, address string) (*Reservation, error) {
	r := &Reservation{flag: flag, address: address}
	a, err := net.ResolveTCPAddr("tcp", address)
	if err != nil {
		return nil, r.err(err)
	}
	if r.bound, r.addr, err = bind(a); err != nil {
		return nil, r.err(err)
	}
	return r, nil
}

// Addr is the address bound, with its port if address asked for port 0.
func (r *Reservation) Addr() net.Addr { return r.addr }

// Listen starts listening on the reserved address and returns the
// listener, which owns the socket from then on. It may be called once.
func (r *Reservation) Listen() (net.Listener, error) {
	if r.bound == nil {
		return nil, r.err(net.ErrClosed)
	}
	b := r.bound
	r.bound = nil
	l, err := b.listen()
	if err != nil {
		return nil, r.err(err)
	}
	return l, nil
}

// Close releases the address unless Listen took it; it may be called
// more than once.
func (r *Reservation) Close() error {
	if r.bound == nil {
		return nil
	}
	b := r.bound
	r.bound = nil
	return b.close()
}

// err names the flag and the address in err, and says what a busy port
// means.
func (r *Reservation) err(err error) error {
	if errors.Is(err, syscall.EADDRINUSE) {
		return fmt.Errorf("--%s %s: %w (another process is listening there: stop it, or give --%s another address)", r.flag, r.address, err, r.flag)
	}
	return fmt.Errorf("--%s %s: %w", r.flag, r.address, err)
}

// bound is a bound socket: a Unix socket not yet listening, or elsewhere
// a listener.
type bound interface {
	listen() (net.Listener, error)
	close() error
}
