//go:build unix

package daemon

import (
	"errors"
	"net"
	"os"
	"syscall"
)

// listenBacklog asks for the longest accept queue the kernel allows: it
// caps the value at its own limit (somaxconn on Linux), as Go's
// net.Listen, which reads that limit, ends up with.
const listenBacklog = 1<<16 - 1

// socket is a bound TCP socket that does not listen yet.
type socket struct{ fd int }

// bind binds a TCP socket to a as net.Listen would (SO_REUSEADDR, so that
// a restart may bind while connections of the previous run linger in
// TIME_WAIT; a wildcard host "" on both IPv6 and IPv4 if the system has
// IPv6), without listening.
func bind(a *net.TCPAddr) (bound, net.Addr, error) {
	if a.IP == nil {
		s, addr, err := bindFamily(syscall.AF_INET6, &syscall.SockaddrInet6{Port: a.Port}, true)
		if !errors.Is(err, syscall.EAFNOSUPPORT) && !errors.Is(err, syscall.EADDRNOTAVAIL) {
			return s, addr, err
		}
		return bindFamily(syscall.AF_INET, &syscall.SockaddrInet4{Port: a.Port}, false)
	}
	if ip4 := a.IP.To4(); ip4 != nil {
		return bindFamily(syscall.AF_INET, &syscall.SockaddrInet4{Port: a.Port, Addr: [4]byte(ip4)}, false)
	}
	sa := &syscall.SockaddrInet6{Port: a.Port, Addr: [16]byte(a.IP.To16())}
	if a.Zone != "" {
		ifi, err := net.InterfaceByName(a.Zone)
		if err != nil {
			return nil, nil, err
		}
		sa.ZoneId = uint32(ifi.Index)
	}
	return bindFamily(syscall.AF_INET6, sa, false)
}

func bindFamily(family int, sa syscall.Sockaddr, dualStack bool) (bound, net.Addr, error) {
	// As the net package does: no exec may inherit the socket between
	// its creation and close-on-exec.
	syscall.ForkLock.RLock()
	fd, err := syscall.Socket(family, syscall.SOCK_STREAM, syscall.IPPROTO_TCP)
	if err == nil {
		syscall.CloseOnExec(fd)
	}
	syscall.ForkLock.RUnlock()
	if err != nil {
		return nil, nil, os.NewSyscallError("socket", err)
	}
	fail := func(call string, err error) (bound, net.Addr, error) {
		syscall.Close(fd)
		return nil, nil, os.NewSyscallError(call, err)
	}
	if err := syscall.SetsockoptInt(fd, syscall.SOL_SOCKET, syscall.SO_REUSEADDR, 1); err != nil {
		return fail("setsockopt", err)
	}
	if dualStack {
		if err := syscall.SetsockoptInt(fd, syscall.IPPROTO_IPV6, syscall.IPV6_V6ONLY, 0); err != nil {
			return fail("setsockopt", err)
		}
	}
	if err := syscall.Bind(fd, sa); err != nil {
		return fail("bind", err)
	}
	got, err := syscall.Getsockname(fd)
	if err != nil {
		return fail("getsockname", err)
	}
	var addr *net.TCPAddr
	switch sa := got.(type) {
	case *syscall.SockaddrInet4:
		addr = &net.TCPAddr{IP: net.IP(sa.Addr[:]).To16(), Port: sa.Port}
	case *syscall.SockaddrInet6:
		addr = &net.TCPAddr{IP: net.IP(sa.Addr[:]), Port: sa.Port}
		if sa.ZoneId != 0 {
			if ifi, err := net.InterfaceByIndex(int(sa.ZoneId)); err == nil {
				addr.Zone = ifi.Name
			}
		}
	}
	return &socket{fd: fd}, addr, nil
}

func (s *socket) listen() (net.Listener, error) {
	if err := syscall.Listen(s.fd, listenBacklog); err != nil {
		syscall.Close(s.fd)
		return nil, os.NewSyscallError("listen", err)
	}
	f := os.NewFile(uintptr(s.fd), "tcp-listener")
	l, err := net.FileListener(f) // a duplicate of the socket
	f.Close()
	return l, err
}

func (s *socket) close() error { return syscall.Close(s.fd) }
