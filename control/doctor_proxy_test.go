package control

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/gvs-lb/gvs/control/config"
)

// serve runs handle on every connection to a new local listener until the
// test ends, and returns its address.
func serve(t *testing.T, handle func(net.Conn)) netip.AddrPort {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() { // accept loop, until the listener closes
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go handle(c)
		}
	}()
	return netip.MustParseAddrPort(l.Addr().String())
}

// TestDoctorProxyProtocol: doctor's probe of a FULLNAT real with
// proxy_protocol: a server that answers an HTTP request without a header,
// or greets first, does not expect the header (warn); one that closes on
// a broken header, as nginx does, or waits for the rest of one, does (ok);
// a closed port fails. NAT reals and reals without the option are not
// probed.
func TestDoctorProxyProtocol(t *testing.T) {
	plain := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {}))
	defer plain.Close()
	sig := []byte("\r\n\r\n\x00\r\nQUIT\n")
	// When the banner's and the silent server's probes connected: each of
	// those probes waits proxyProbeWait, so one after the other they would
	// connect at least that far apart.
	arrived := make(chan time.Time, 8)
	reals := map[string]netip.AddrPort{
		"plain http": netip.MustParseAddrPort(plain.Listener.Addr().String()),
		"banner": serve(t, func(c net.Conn) {
			arrived <- time.Now()
			io.WriteString(c, "220 ready\r\n")
			time.Sleep(time.Second)
			c.Close()
		}),
		"proxy": serve(t, func(c net.Conn) {
			defer c.Close()
			b := make([]byte, len(sig))
			if _, err := io.ReadFull(c, b); err != nil || !bytes.Equal(b, sig) {
				return // broken header: closed without a word
			}
		}),
		"silent": serve(t, func(c net.Conn) { arrived <- time.Now(); time.Sleep(time.Second); c.Close() }),
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := netip.MustParseAddrPort(l.Addr().String())
	l.Close()
	reals["closed"] = closed
	want := map[string]string{"plain http": "warn", "banner": "warn", "proxy": "ok", "silent": "ok", "closed": "fail"}

	cfg := &config.Config{Services: []config.Service{{Reals: []config.Real{
		{Address: netip.MustParseAddrPort("127.0.0.1:1"), Forward: config.NAT, ProxyProtocol: "v2"},   // NAT: not probed
		{Address: netip.MustParseAddrPort("127.0.0.1:2"), Forward: config.FullNAT, ProxyProtocol: ""}, // none: not probed
		{Address: reals["plain http"], Forward: config.FullNAT, ProxyProtocol: "v2"},
	}}}}
	for _, name := range []string{"banner", "proxy", "silent", "closed"} {
		cfg.Services[0].Reals = append(cfg.Services[0].Reals, config.Real{Address: reals[name], Forward: config.FullNAT, ProxyProtocol: "v1"})
	}
	checks := checkProxyReals(context.Background(), cfg)
	var at [2]time.Time
	for i := range at {
		select {
		case at[i] = <-arrived:
		case <-time.After(5 * time.Second):
			t.Fatalf("%d probes of the banner and silent servers, want 2", i)
		}
	}
	if d := at[1].Sub(at[0]).Abs(); d >= proxyProbeWait {
		t.Errorf("the probes connected %v apart: not run at the same time", d)
	}
	if len(checks) != len(want) {
		t.Fatalf("%d checks, want %d: %+v", len(checks), len(want), checks)
	}
	for _, c := range checks {
		var name string
		for n, a := range reals {
			if strings.HasSuffix(c.Name, " "+a.String()) {
				name = n
			}
		}
		if c.Status != want[name] {
			t.Errorf("%s (%s): %s %q, want %s", name, c.Name, c.Status, c.Detail, want[name])
		}
		if c.Status != "ok" && c.Fix == "" {
			t.Errorf("%s: no fix", name)
		}
	}
}
