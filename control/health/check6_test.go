package health

import (
	"bytes"
	"io"
	"net"
	"net/http/httptest"
	"net/netip"
	"os/exec"
	"strconv"
	"testing"
	"time"
)

// listen6 listens on [::1] (network "tcp6" or "udp6"), or skips the test
// when the machine has no IPv6 loopback.
func listen6(t *testing.T, network string) (net.Listener, net.PacketConn) {
	t.Helper()
	if network == "tcp6" {
		l, err := net.Listen(network, "[::1]:0")
		if err != nil {
			t.Skipf("no IPv6 loopback to test IPv6 checks on: %v", err)
		}
		t.Cleanup(func() { l.Close() })
		return l, nil
	}
	c, err := net.ListenPacket(network, "[::1]:0")
	if err != nil {
		t.Skipf("no IPv6 loopback to test IPv6 checks on: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return nil, c
}

// TestIPv6Checks: every kind of check reaches an IPv6 real at [addr]:port,
// and its failures name the real in that form.
func TestIPv6Checks(t *testing.T) {
	t.Run("tcp", func(t *testing.T) {
		l, _ := listen6(t, "tcp6")
		headers := make(chan []byte, 4)
		go func() { // accept, read what comes first, close; until l closes
			for {
				c, err := l.Accept()
				if err != nil {
					return
				}
				c.SetReadDeadline(time.Now().Add(time.Second))
				b, _ := io.ReadAll(io.LimitReader(c, 64))
				c.Close()
				select {
				case headers <- b:
				default:
				}
			}
		}()
		up := addrOf(t, l.Addr())
		if !up.Addr().Is6() {
			t.Fatalf("listener on %v, want IPv6", up)
		}
		wantErr(t, checkOnce(t, target("tcp", up, nil)), "")
		<-headers
		// The PROXY header of a check names no address: the same for IPv6.
		wantErr(t, checkOnce(t, target("tcp", up, func(c *Config) { c.ProxyProtocol = "v2" })), "")
		if got := <-headers; !bytes.Equal(got, proxyV2Local) {
			t.Errorf("PROXY v2 check sent %q, want the LOCAL header %q", got, proxyV2Local)
		}
		l2, _ := listen6(t, "tcp6")
		down := addrOf(t, l2.Addr())
		l2.Close()
		wantErr(t, checkOnce(t, target("tcp", down, nil)), "connect [::1]:"+itoa(down.Port())+": connection refused")
	})
	t.Run("http", func(t *testing.T) {
		l, _ := listen6(t, "tcp6")
		h := newHTTPReal()
		srv := httptest.NewUnstartedServer(h)
		srv.Listener.Close()
		srv.Listener = l
		srv.Start()
		defer srv.Close()
		addr := addrOf(t, l.Addr())
		wantErr(t, checkOnce(t, target("http", addr, func(c *Config) { c.Path = "/healthz" })), "")
		h.mu.Lock()
		host := h.hosts[len(h.hosts)-1]
		h.mu.Unlock()
		if want := "[::1]:" + itoa(addr.Port()); host != want {
			t.Errorf("Host header %q, want %q", host, want)
		}
		h.status.Store(503)
		wantErr(t, checkOnce(t, target("http", addr, nil)), "GET http://[::1]:"+itoa(addr.Port())+"/: status 503")
	})
	t.Run("udp", func(t *testing.T) {
		_, c := listen6(t, "udp6")
		done := make(chan struct{})
		go func() { // echo until c closes
			defer close(done)
			buf := make([]byte, 512)
			for {
				n, from, err := c.ReadFrom(buf)
				if err != nil {
					return
				}
				c.WriteTo(buf[:n], from)
			}
		}()
		t.Cleanup(func() { c.Close(); <-done })
		addr := addrOf(t, c.LocalAddr())
		wantErr(t, checkOnce(t, target("udp", addr, func(c *Config) { c.Send = "ping"; c.Expect = "^ping$" })), "")
		wantErr(t, checkOnce(t, target("udp", addr, func(c *Config) { c.Send = "ping"; c.Expect = "^pong$" })),
			"udp [::1]:"+itoa(addr.Port())+": reply does not match")
	})
	t.Run("exec", func(t *testing.T) {
		if _, err := exec.LookPath("sh"); err != nil {
			t.Skip("no sh to run check scripts with")
		}
		addr := netip.MustParseAddrPort("[2001:db8::7]:8080")
		err := checkOnce(t, target("exec", addr, func(c *Config) {
			c.Command = []string{"sh", "-c", `test "$GVS_REAL_ADDR" = 2001:db8::7 && test "$GVS_REAL_PORT" = 8080`}
			c.Timeout, c.Interval = 2*time.Second, 2*time.Second
		}))
		wantErr(t, err, "")
	})
}

func itoa(p uint16) string { return strconv.Itoa(int(p)) }
