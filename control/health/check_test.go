package health

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os/exec"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// checkOnce builds the real checker of tg and runs one check as the Monitor does.
func checkOnce(t *testing.T, tg Target) error {
	t.Helper()
	var c compiler
	return runCheck(context.Background(), compile(tg, &c), sane(tg.Check).Timeout)
}

func target(typ string, addr netip.AddrPort, mod func(*Config)) Target {
	cfg := Config{Type: typ, Interval: time.Second, Timeout: 500 * time.Millisecond, Rise: 1, Fall: 1}
	if mod != nil {
		mod(&cfg)
	}
	return Target{Addr: addr, Check: cfg}
}

func addrOf(t *testing.T, a net.Addr) netip.AddrPort {
	t.Helper()
	ap, err := netip.ParseAddrPort(a.String())
	if err != nil {
		t.Fatal(err)
	}
	return ap
}

// closedPort returns an address of 127.0.0.1 where nothing listens on network ("tcp" or "udp").
func closedPort(t *testing.T, network string) netip.AddrPort {
	t.Helper()
	var ap netip.AddrPort
	if network == "tcp" {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ap = addrOf(t, l.Addr())
		l.Close()
	} else {
		c, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ap = addrOf(t, c.LocalAddr())
		c.Close()
	}
	return ap
}

// wantErr checks err against want: "" means success, else a substring of the error.
func wantErr(t *testing.T, err error, want string) {
	t.Helper()
	switch {
	case want == "" && err != nil:
		t.Errorf("check failed: %v; want success", err)
	case want != "" && err == nil:
		t.Errorf("check succeeded; want an error containing %q", want)
	case want != "" && !strings.Contains(err.Error(), want):
		t.Errorf("check failed with %q; want an error containing %q", err, want)
	}
}

func TestTCPCheck(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() { // accept and drop, until the listener closes
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	up, down := addrOf(t, l.Addr()), closedPort(t, "tcp")

	wantErr(t, checkOnce(t, target("tcp", up, nil)), "")
	err = checkOnce(t, target("tcp", down, nil))
	wantErr(t, err, "connect "+down.String()+": connection refused")
	if !errors.Is(err, syscall.ECONNREFUSED) {
		t.Errorf("error %v does not wrap ECONNREFUSED", err)
	}
	// Port overrides the target's port.
	wantErr(t, checkOnce(t, target("tcp", down, func(c *Config) { c.Port = up.Port() })), "")
	wantErr(t, checkOnce(t, target("tcp", up, func(c *Config) { c.Port = down.Port() })), "connection refused")
}

// httpReal is a real server for http checks: GET / answers status with body.
type httpReal struct {
	status atomic.Int32
	body   atomic.Value // string
	mu     sync.Mutex
	hosts  []string // Host headers seen
	paths  []string
}

func (h *httpReal) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h.mu.Lock()
	h.hosts = append(h.hosts, r.Host)
	h.paths = append(h.paths, r.URL.RequestURI())
	h.mu.Unlock()
	switch r.URL.Path {
	case "/slow":
		select {
		case <-r.Context().Done():
		case <-time.After(5 * time.Second):
		}
		return
	case "/moved":
		http.Redirect(w, r, "/missing", http.StatusFound)
		return
	case "/missing":
		http.NotFound(w, r)
		return
	}
	w.WriteHeader(int(h.status.Load()))
	io.WriteString(w, h.body.Load().(string))
}

func newHTTPReal() *httpReal {
	h := &httpReal{}
	h.status.Store(200)
	h.body.Store("hello, health checker\n")
	return h
}

func TestHTTPCheck(t *testing.T) {
	h := newHTTPReal()
	srv := httptest.NewServer(h)
	defer srv.Close()
	addr := addrOf(t, srv.Listener.Addr())

	check := func(mod func(*Config)) error { return checkOnce(t, target("http", addr, mod)) }

	wantErr(t, check(nil), "")
	h.status.Store(503)
	wantErr(t, check(nil), "status 503")
	wantErr(t, check(func(c *Config) { c.Status = []int{503} }), "")
	h.status.Store(200)
	wantErr(t, check(nil), "")
	wantErr(t, check(func(c *Config) { c.Status = []int{204} }), "status 200")

	wantErr(t, check(func(c *Config) { c.Expect = `health (checker|monitor)` }), "")
	wantErr(t, check(func(c *Config) { c.Expect = `^goodbye` }), `body does not match "^goodbye"`)
	// Expect is matched against the first 64 KiB only.
	h.body.Store(strings.Repeat("x", maxBody) + "tail")
	wantErr(t, check(func(c *Config) { c.Expect = `tail` }), "body does not match")
	h.body.Store("ok")

	// A redirect is not followed: 302 is in 200..399.
	wantErr(t, check(func(c *Config) { c.Path = "/moved" }), "")
	wantErr(t, check(func(c *Config) { c.Path = "/missing" }), "status 404")

	start := time.Now()
	err := check(func(c *Config) { c.Path = "/slow"; c.Timeout = 100 * time.Millisecond })
	wantErr(t, err, "timeout after 100ms")
	if !errors.Is(err, errTimeout) {
		t.Errorf("slow handler: %v is not a timeout", err)
	}
	if took := time.Since(start); took > time.Second {
		t.Errorf("slow handler: check took %v with Timeout 100ms", took)
	}

	wantErr(t, checkOnce(t, target("http", closedPort(t, "tcp"), nil)), "connection refused")

	// The request: Host is ip:port, the path as configured ("/" by default).
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, host := range h.hosts {
		if host != addr.String() {
			t.Errorf("Host header %q; want %q", host, addr)
		}
	}
	if h.paths[0] != "/" {
		t.Errorf("default path requested %q; want /", h.paths[0])
	}
}

func TestHTTPSCheck(t *testing.T) {
	h := newHTTPReal()
	srv := httptest.NewUnstartedServer(h)
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // the plain-HTTP request below is logged as a TLS error
	srv.StartTLS()                                   // a self-signed certificate for 127.0.0.1
	defer srv.Close()
	addr := addrOf(t, srv.Listener.Addr())

	wantErr(t, checkOnce(t, target("https", addr, nil)), "")
	wantErr(t, checkOnce(t, target("https", addr, func(c *Config) { c.Path = "/x?y=1"; c.Expect = "hello" })), "")
	h.status.Store(500)
	wantErr(t, checkOnce(t, target("https", addr, nil)), "status 500")
	// Plain HTTP to the TLS port gets a 400 from Go's server.
	wantErr(t, checkOnce(t, target("http", addr, nil)), "status 400")
	h.mu.Lock()
	defer h.mu.Unlock()
	if got := h.paths[1]; got != "/x?y=1" {
		t.Errorf("requested %q; want /x?y=1", got)
	}
}

// udpEcho is a UDP real that echoes every datagram, or stays silent.
func udpEcho(t *testing.T, silent bool) (netip.AddrPort, *atomic.Value) {
	t.Helper()
	c, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var last atomic.Value // []byte: the last datagram received
	done := make(chan struct{})
	go func() { // the echo loop, owned by the test; it ends when c closes
		defer close(done)
		buf := make([]byte, 2048)
		for {
			n, from, err := c.ReadFrom(buf)
			if err != nil {
				return
			}
			last.Store(append([]byte(nil), buf[:n]...))
			if !silent {
				c.WriteTo(buf[:n], from)
			}
		}
	}()
	t.Cleanup(func() { c.Close(); <-done })
	return addrOf(t, c.LocalAddr()), &last
}

func TestUDPCheck(t *testing.T) {
	echo, last := udpEcho(t, false)
	silent, _ := udpEcho(t, true)
	check := func(addr netip.AddrPort, mod func(*Config)) error { return checkOnce(t, target("udp", addr, mod)) }

	wantErr(t, check(echo, func(c *Config) { c.Send = "ping" }), "")
	wantErr(t, check(echo, func(c *Config) { c.Send = "ping"; c.Expect = "^pi" }), "")
	wantErr(t, check(echo, func(c *Config) { c.Send = "ping"; c.Expect = "^pong$" }), `reply does not match "^pong$"`)

	// "0x" means hex.
	wantErr(t, check(echo, func(c *Config) { c.Send = "0x0001ff70"; c.Expect = "p$" }), "")
	if got := last.Load().([]byte); string(got) != "\x00\x01\xffp" {
		t.Errorf("hex payload sent as %q; want 00 01 ff 70", got)
	}
	wantErr(t, check(echo, nil), "") // an empty datagram, an empty reply

	err := check(closedPort(t, "udp"), func(c *Config) { c.Send = "ping" })
	wantErr(t, err, "connection refused")
	if !errors.Is(err, syscall.ECONNREFUSED) {
		t.Errorf("closed port: %v does not wrap ECONNREFUSED", err)
	}

	start := time.Now()
	err = check(silent, func(c *Config) { c.Send = "ping"; c.Timeout = 100 * time.Millisecond })
	wantErr(t, err, "no reply: timeout after 100ms")
	if took := time.Since(start); took > time.Second {
		t.Errorf("silent server: check took %v with Timeout 100ms", took)
	}
}

func TestExecCheck(t *testing.T) {
	if _, err := exec.LookPath("sh"); err != nil {
		t.Skip("no sh to run check scripts with")
	}
	addr := netip.MustParseAddrPort("192.0.2.7:8080")
	sh := func(script string, mod ...func(*Config)) error {
		return checkOnce(t, target("exec", addr, func(c *Config) {
			c.Command = []string{"sh", "-c", script}
			c.Timeout = 2 * time.Second
			c.Interval = 2 * time.Second
			for _, m := range mod {
				m(c)
			}
		}))
	}
	wantErr(t, sh("exit 0"), "")
	wantErr(t, sh("exit 1"), "exec sh: exit status 1")
	err := sh("echo '  not ready: backend down  ' >&2; echo second line >&2; exit 3")
	wantErr(t, err, "exec sh: exit status 3: not ready: backend down")
	if err != nil && strings.Contains(err.Error(), "second") {
		t.Errorf("error %q has more than the first line of stderr", err)
	}
	wantErr(t, sh("echo lots of output; exit 0"), "")
	wantErr(t, sh(`test "$GVS_REAL_ADDR" = 192.0.2.7 && test "$GVS_REAL_PORT" = 8080`), "")
	// GVS_REAL_PORT is the real's port, whatever port the check overrides.
	wantErr(t, sh(`test "$GVS_REAL_PORT" = 8080`, func(c *Config) { c.Port = 9 }), "")
	// The rest of the environment is the parent's.
	t.Setenv("GVS_HEALTH_TEST", "inherited")
	wantErr(t, sh(`test "$GVS_HEALTH_TEST" = inherited`), "")

	err = checkOnce(t, target("exec", addr, func(c *Config) { c.Command = []string{"gvs-no-such-command"} }))
	wantErr(t, err, "exec gvs-no-such-command: executable file not found")
}

func TestInvalidConfigs(t *testing.T) {
	addr := netip.MustParseAddrPort("127.0.0.1:9")
	for _, tc := range []struct {
		name string
		tg   Target
		want string
	}{
		{"http bad regexp", target("http", addr, func(c *Config) { c.Expect = "(" }), "http check: expect: error parsing regexp"},
		{"https bad regexp", target("https", addr, func(c *Config) { c.Expect = "a**" }), "https check: expect: error parsing regexp"},
		{"udp bad regexp", target("udp", addr, func(c *Config) { c.Expect = "[z-a]" }), "udp check: expect: error parsing regexp"},
		{"udp bad hex", target("udp", addr, func(c *Config) { c.Send = "0xzz" }), "udp check: send: encoding/hex"},
		{"udp odd hex", target("udp", addr, func(c *Config) { c.Send = "0x123" }), "udp check: send: encoding/hex: odd length"},
		{"exec without command", target("exec", addr, nil), "exec check: no command"},
		{"unknown type", target("icmp", addr, nil), `unknown check type "icmp"`},
		{"none", target("none", addr, nil), `unknown check type "none"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var c compiler
			chk := compile(tc.tg, &c)
			if _, ok := chk.(invalidCheck); !ok {
				t.Fatalf("compile gave %T; want invalidCheck", chk)
			}
			wantErr(t, checkOnce(t, tc.tg), tc.want)
		})
	}
}

func TestCompilerSharesRegexps(t *testing.T) {
	var c compiler
	a := compile(target("http", netip.MustParseAddrPort("127.0.0.1:80"), func(c *Config) { c.Expect = "ok" }), &c).(*httpCheck)
	b := compile(target("udp", netip.MustParseAddrPort("127.0.0.1:53"), func(c *Config) { c.Expect = "ok" }), &c).(*udpCheck)
	if a.expect != b.expect {
		t.Error("one Set compiled the same regexp twice")
	}
}

// TestSameTargetCoversEveryField changes each field of Config in turn:
// sameTarget must see every change, so a field added to Config is compared.
func TestSameTargetCoversEveryField(t *testing.T) {
	base := Target{
		Addr: netip.MustParseAddrPort("10.0.0.1:80"),
		Check: Config{Type: "http", Interval: time.Second, Timeout: time.Second, Rise: 2, Fall: 3, Port: 8080,
			Path: "/", Status: []int{200}, Expect: "ok", Send: "x", Command: []string{"true"}},
	}
	if !sameTarget(base, cloneTarget(base)) {
		t.Fatal("a target differs from its clone")
	}
	v := reflect.ValueOf(&base.Check).Elem()
	for i := range v.NumField() {
		changed := cloneTarget(base)
		f := reflect.ValueOf(&changed.Check).Elem().Field(i)
		switch f.Kind() {
		case reflect.String:
			f.SetString(f.String() + "x")
		case reflect.Int, reflect.Int64:
			f.SetInt(f.Int() + 1)
		case reflect.Uint16:
			f.SetUint(f.Uint() + 1)
		case reflect.Slice:
			f.Set(reflect.Append(f, f.Index(0)))
		default:
			t.Fatalf("Config.%s: kind %v not handled by this test", v.Type().Field(i).Name, f.Kind())
		}
		if sameTarget(base, changed) {
			t.Errorf("sameTarget misses a change of Config.%s", v.Type().Field(i).Name)
		}
	}
	moved := cloneTarget(base)
	moved.Addr = netip.MustParseAddrPort("10.0.0.1:81")
	if sameTarget(base, moved) {
		t.Error("sameTarget misses a change of Addr")
	}
	// nil and empty slices are the same value.
	a, b := base, base
	a.Check.Status, b.Check.Status = nil, []int{}
	if !sameTarget(a, b) {
		t.Error("nil and empty Status differ")
	}
}

func TestFirstLine(t *testing.T) {
	for _, tc := range []struct {
		writes []string
		want   string
	}{
		{nil, ""},
		{[]string{"one\ntwo\n"}, "one"},
		{[]string{"o", "ne", "\n", "two"}, "one"},
		{[]string{"  padded  \n"}, "padded"},
		{[]string{strings.Repeat("x", 1000)}, strings.Repeat("x", maxStderrLine)},
		{[]string{strings.Repeat("x", maxStderrLine-1), "yz\n"}, strings.Repeat("x", maxStderrLine-1) + "y"},
	} {
		var w firstLine
		for _, s := range tc.writes {
			if n, err := w.Write([]byte(s)); n != len(s) || err != nil {
				t.Fatalf("Write(%d bytes) = %d, %v", len(s), n, err)
			}
		}
		if got := w.String(); got != tc.want {
			t.Errorf("writes %q: first line %q; want %q", fmt.Sprint(tc.writes), got, tc.want)
		}
	}
}
