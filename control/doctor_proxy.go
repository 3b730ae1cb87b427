package control

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/gvs-lb/gvs/control/api"
	"github.com/gvs-lb/gvs/control/config"
)

// proxyProbeWait bounds how long doctor waits for a real's answer to a
// probe: a real on the director's network answers an HTTP request within
// milliseconds, and a PROXY protocol server that waits for its header stays
// silent far longer (nginx: client_header_timeout, 60 s).
const proxyProbeWait = 500 * time.Millisecond

// proxyProbe is what doctor sends a real that should expect a PROXY header:
// an HTTP request without one. A server that expects the header takes the
// request for a broken header and closes the connection without a word (or
// waits for more); one that answers does not expect the header, and would
// take the director's headers for data.
const proxyProbe = "HEAD / HTTP/1.0\r\n\r\n"

// checkProxyReals probes, at the same time, every FULLNAT real that gets a
// PROXY protocol header (proxy_protocol): a real that speaks first or
// answers the probe does not expect the header; one whose port refuses
// connections gets nothing. NAT reals are not probed: the dataplane takes
// their answers to the director's own connections as NAT replies.
func checkProxyReals(ctx context.Context, cfg *config.Config) []api.Check {
	type probe struct {
		addr    netip.AddrPort
		version string
		check   api.Check
	}
	var probes []*probe
	seen := map[netip.AddrPort]bool{}
	for _, s := range cfg.Services {
		for _, r := range s.Reals {
			if r.ProxyProtocol == "" || r.Forward != config.FullNAT || seen[r.Address] {
				continue
			}
			seen[r.Address] = true
			probes = append(probes, &probe{addr: r.Address, version: r.ProxyProtocol})
		}
	}
	var wg sync.WaitGroup
	for _, p := range probes {
		wg.Add(1)
		go func() { // doctor: one real's probe, bounded by proxyProbeWait
			defer wg.Done()
			p.check = proxyCheck(p.addr, p.version, probeProxy(ctx, p.addr, proxyProbeWait))
		}()
	}
	wg.Wait()
	out := make([]api.Check, len(probes))
	for i, p := range probes {
		out[i] = p.check
	}
	return out
}

// What probeProxy found.
type proxyAnswer struct {
	answered []byte // what the real sent (its first bytes), nil if nothing
	closed   bool   // it closed the connection without a word
	err      error  // the connection failed
}

// probeProxy connects to addr, sends proxyProbe, and reports what the real
// did within wait.
func probeProxy(ctx context.Context, addr netip.AddrPort, wait time.Duration) proxyAnswer {
	ctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", addr.String())
	if err != nil {
		return proxyAnswer{err: err}
	}
	defer c.Close()
	dl, _ := ctx.Deadline()
	c.SetDeadline(dl)
	if _, err := io.WriteString(c, proxyProbe); err != nil {
		return proxyAnswer{closed: true}
	}
	b := make([]byte, 64)
	n, err := c.Read(b)
	switch {
	case n > 0:
		return proxyAnswer{answered: b[:n]}
	case errors.Is(err, io.EOF), errors.Is(err, net.ErrClosed):
		return proxyAnswer{closed: true}
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return proxyAnswer{} // silent: waits for the rest of a header
	}
	return proxyAnswer{closed: true} // reset
}

// proxyCheck is doctor's finding for the real at addr, which gets PROXY
// protocol version v, from what probeProxy found.
func proxyCheck(addr netip.AddrPort, v string, a proxyAnswer) api.Check {
	name := "proxy_protocol " + addr.String()
	switch {
	case a.err != nil:
		return fail(name, fmt.Sprintf("cannot connect: %v", a.err),
			fmt.Sprintf("start the server on %s, with the PROXY protocol %s on that port", addr, v))
	case a.answered != nil:
		what := "answered a request without a PROXY header"
		if bytes.HasPrefix(a.answered, []byte("HTTP/")) {
			what = fmt.Sprintf("answered an HTTP request without a PROXY header (%q)", firstLine(a.answered))
		}
		return warn(name, what+": the port does not expect the header, and takes gvs's headers for data",
			fmt.Sprintf("turn the PROXY protocol on for that port (nginx: listen %d proxy_protocol; HAProxy: bind :%d accept-proxy), or proxy_protocol = \"\" for the real", addr.Port(), addr.Port()))
	case a.closed:
		return ok(name, fmt.Sprintf("%s: closes a connection without a PROXY header, as a PROXY protocol server does", v))
	}
	return ok(name, fmt.Sprintf("%s: waits for a PROXY header, as a PROXY protocol server does", v))
}

// firstLine is b's first line.
func firstLine(b []byte) []byte {
	if i := bytes.IndexAny(b, "\r\n"); i >= 0 {
		return b[:i]
	}
	return b
}
