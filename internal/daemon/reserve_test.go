package daemon

import (
	"errors"
	"fmt"
	"net"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"
)

func dial(addr string) error {
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err == nil {
		c.Close()
	}
	return err
}

// A reserved address refuses connections (on Unix) until Listen, which
// then accepts on the address Reserve reported.
func TestReserveThenListen(t *testing.T) {
	for _, address := range []string{"127.0.0.1:0", "[::1]:0", ":0", "localhost:0"} {
		t.Run(address, func(t *testing.T) {
			r, err := Reserve("listen", address)
			if err != nil {
				if strings.Contains(address, "::1") {
					t.Skipf("no IPv6 loopback: %v", err)
				}
				t.Fatal(err)
			}
			t.Cleanup(func() { r.Close() })
			addr := r.Addr().(*net.TCPAddr)
			if addr.Port == 0 {
				t.Fatalf("Addr() = %v, want the port bound", addr)
			}
			target := net.JoinHostPort("127.0.0.1", fmt.Sprint(addr.Port))
			if strings.Contains(address, "::1") {
				target = net.JoinHostPort("::1", fmt.Sprint(addr.Port))
			}
			if runtime.GOOS != "windows" {
				if err := dial(target); !errors.Is(err, syscall.ECONNREFUSED) {
					t.Errorf("reserved: dial %s: %v, want connection refused", target, err)
				}
			}
			l, err := r.Listen()
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { l.Close() })
			if l.Addr().String() != r.Addr().String() {
				t.Errorf("listening on %v, reserved %v", l.Addr(), r.Addr())
			}
			accepted := make(chan error, 1)
			go func() {
				c, err := l.Accept()
				if err == nil {
					c.Close()
				}
				accepted <- err
			}()
			if err := dial(target); err != nil {
				t.Errorf("listening: dial %s: %v", target, err)
			}
			select {
			case err := <-accepted:
				if err != nil {
					t.Errorf("Accept: %v", err)
				}
			case <-time.After(10 * time.Second):
				t.Error("no connection accepted")
			}
			if _, err := r.Listen(); err == nil {
				t.Error("a second Listen succeeded")
			}
			if err := r.Close(); err != nil {
				t.Errorf("Close after Listen: %v", err)
			}
		})
	}
}

// Reserving an address another process listens on fails with an error
// that names the flag and the address and says what to do.
func TestReserveBusy(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	addr := l.Addr().String()
	_, err = Reserve("grpc-listen", addr)
	if !errors.Is(err, syscall.EADDRINUSE) {
		t.Fatalf("Reserve(%s) = %v, want EADDRINUSE", addr, err)
	}
	want := "--grpc-listen " + addr + ": "
	if msg := err.Error(); !strings.HasPrefix(msg, want) || !strings.Contains(msg, "address already in use") || !strings.Contains(msg, "give --grpc-listen another address") {
		t.Errorf("error %q, want it to start %q and explain", msg, want)
	}
	if _, err := Reserve("http-listen", "127.0.0.1:notaport"); err == nil || !strings.HasPrefix(err.Error(), "--http-listen 127.0.0.1:notaport: ") {
		t.Errorf("bad address: %v", err)
	}
}

// Close releases a reservation: the address can be bound again.
func TestReserveClose(t *testing.T) {
	r, err := Reserve("listen", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := r.Addr().String()
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	if err := r.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("listening on a released reservation: %v", err)
	}
	l.Close()
}
