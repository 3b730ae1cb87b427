package health

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"time"
)

// maxBody is how much of a response body Expect is matched against; like
// keepalived's HTTP_GET digest it bounds the work a check does per real.
const maxBody = 64 << 10

// httpCheck GETs url over a fresh connection each time.
type httpCheck struct {
	url     string
	host    string // the Host header: ip:port
	status  []int  // accepted; empty = 200..399
	expect  *regexp.Regexp
	client  *http.Client
	timeout time.Duration
}

func newHTTPCheck(scheme string, addr netip.AddrPort, cfg Config, expect *regexp.Regexp) (*httpCheck, error) {
	path := cfg.Path
	if !strings.HasPrefix(path, "/") {
		path = "/" + path
	}
	u := scheme + "://" + addr.String() + path
	proxy := proxyHeader(cfg.ProxyProtocol)
	if _, err := url.Parse(u); err != nil {
		return nil, fmt.Errorf("%s check: path: %w", scheme, err)
	}
	tr := &http.Transport{
		Proxy:       nil, // a check goes to the real itself, whatever HTTP_PROXY says
		DialContext: func(ctx context.Context, _, addr string) (net.Conn, error) { return dialProxy(ctx, addr, proxy) },
		// The check asks whether the real serves, not who it is: reals
		// commonly carry the VIP's certificate, or a self-signed one, and
		// are addressed here by IP.
		TLSClientConfig:        &tls.Config{InsecureSkipVerify: true},
		DisableKeepAlives:      true, // a fresh connection per check, as keepalived's HTTP_GET
		DisableCompression:     true,
		MaxResponseHeaderBytes: maxBody, // the headers get the same bound as the body
	}
	return &httpCheck{
		url:    u,
		host:   addr.String(),
		status: slices.Clone(cfg.Status),
		expect: expect,
		client: &http.Client{
			Transport: tr,
			// A redirect is an answer: its status is judged like any other.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
		timeout: cfg.Timeout,
	}, nil
}

func (c *httpCheck) check(ctx context.Context) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.url, nil)
	if err != nil {
		return fmt.Errorf("GET %s: %w", c.url, err)
	}
	req.Host = c.host
	req.Header.Set("User-Agent", "gvs-health")
	resp, err := c.client.Do(req)
	if err != nil {
		return fmt.Errorf("GET %s: %w", c.url, reason(ctx, err, c.timeout))
	}
	defer resp.Body.Close()
	if !c.accepts(resp.StatusCode) {
		return fmt.Errorf("GET %s: status %d", c.url, resp.StatusCode)
	}
	if c.expect == nil {
		return nil
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	if err != nil {
		return fmt.Errorf("GET %s: reading body: %w", c.url, reason(ctx, err, c.timeout))
	}
	if !c.expect.Match(body) {
		return fmt.Errorf("GET %s: body does not match %q", c.url, c.expect)
	}
	return nil
}

func (c *httpCheck) accepts(code int) bool {
	if len(c.status) == 0 {
		return code >= 200 && code <= 399
	}
	return slices.Contains(c.status, code)
}
