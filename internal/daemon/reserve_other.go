//go:build !unix

package daemon

import "net"

// listening is a listener Reserve opened at once (see Reservation).
type listening struct{ l net.Listener }

func bind(a *net.TCPAddr) (bound, net.Addr, error) {
	l, err := net.ListenTCP("tcp", a)
	if err != nil {
		return nil, nil, err
	}
	return listening{l}, l.Addr(), nil
}

func (l listening) listen() (net.Listener, error) { return l.l, nil }
func (l listening) close() error                  { return l.l.Close() }
