package health

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"time"
)

// Config is one [service.check] table, already validated and defaulted by the caller.
type Config struct {
	Type     string        // "tcp", "http", "https", "udp", "exec" ("none" is never given to this package)
	Interval time.Duration // between the starts of two checks of one target (> 0)
	Timeout  time.Duration // hard bound of one check (> 0, <= Interval)
	Rise     int           // consecutive successes to go up (>= 1)
	Fall     int           // consecutive failures to go down (>= 1)
	Port     uint16        // 0 = the target's port
	Path     string        // http/https request path, default "/" if empty
	Status   []int         // http/https accepted status codes; empty = 200..399
	Expect   string        // http/https: regexp the body must match; udp: regexp the reply must match ("" = any reply)
	Send     string        // udp payload; if it starts with "0x" it is hex, else the bytes of the text
	Command  []string      // exec: argv; exit status 0 = success
	// ProxyProtocol, "v1" or "v2", makes a tcp, http or https check send a PROXY
	// protocol header first, as the director does for the real's clients (proxy.go).
	ProxyProtocol string
}

// Target is one thing to check: a real server of a service.
type Target struct {
	Addr  netip.AddrPort // the real server
	Check Config
}

// sameTarget compares two targets by value, slices included. It lists every
// field of Config; TestSameTargetCoversEveryField fails when one is added
// and not compared here.
func sameTarget(a, b Target) bool {
	x, y := a.Check, b.Check
	return a.Addr == b.Addr &&
		x.Type == y.Type &&
		x.Interval == y.Interval &&
		x.Timeout == y.Timeout &&
		x.Rise == y.Rise &&
		x.Fall == y.Fall &&
		x.Port == y.Port &&
		x.Path == y.Path &&
		slices.Equal(x.Status, y.Status) &&
		x.Expect == y.Expect &&
		x.Send == y.Send &&
		slices.Equal(x.Command, y.Command) &&
		x.ProxyProtocol == y.ProxyProtocol
}

// cloneTarget copies t's slices, so the caller may reuse its own.
func cloneTarget(t Target) Target {
	t.Check.Status = slices.Clone(t.Check.Status)
	t.Check.Command = slices.Clone(t.Check.Command)
	return t
}

// Fallbacks for values the caller should have validated; they only keep a
// bad Config from panicking (rand.N of 0) or spinning (an Interval of 0).
const (
	fallbackInterval = time.Second
	fallbackCount    = 1 // Rise and Fall
)

// sane returns c with Interval > 0, 0 < Timeout <= Interval, Rise and Fall >= 1.
func sane(c Config) Config {
	if c.Interval <= 0 {
		c.Interval = fallbackInterval
	}
	if c.Timeout <= 0 || c.Timeout > c.Interval {
		c.Timeout = c.Interval
	}
	c.Rise = max(c.Rise, fallbackCount)
	c.Fall = max(c.Fall, fallbackCount)
	return c
}

// checker is one kind of health check, built for one target with its
// configuration compiled in. check returns nil for success or the reason
// for failure; it must return soon after ctx is done. The Monitor never
// runs two checks of one checker at once.
type checker interface {
	check(ctx context.Context) error
}

var (
	_ checker = (*tcpCheck)(nil)
	_ checker = (*httpCheck)(nil)
	_ checker = (*udpCheck)(nil)
	_ checker = (*execCheck)(nil)
	_ checker = invalidCheck{}
)

// invalidCheck is a Config that cannot be checked (an unknown type, a bad
// regexp or hex payload): every check fails with the reason.
type invalidCheck struct{ err error }

func (c invalidCheck) check(context.Context) error { return c.err }

// compiler builds checkers for one Set, compiling each distinct regexp once.
type compiler struct {
	res map[string]*regexp.Regexp
}

func (c *compiler) regexp(expr string) (*regexp.Regexp, error) {
	if re, ok := c.res[expr]; ok {
		return re, nil
	}
	re, err := regexp.Compile(expr)
	if err != nil {
		return nil, err
	}
	if c.res == nil {
		c.res = make(map[string]*regexp.Regexp)
	}
	c.res[expr] = re
	return re, nil
}

// compile builds the checker of t. A Config that cannot work gives a
// checker that always fails, saying why; it never panics.
func compile(t Target, c *compiler) checker {
	cfg := sane(t.Check)
	addr := t.Addr
	if cfg.Port != 0 {
		addr = netip.AddrPortFrom(addr.Addr(), cfg.Port)
	}
	var expect *regexp.Regexp
	if cfg.Expect != "" && (cfg.Type == "http" || cfg.Type == "https" || cfg.Type == "udp") {
		re, err := c.regexp(cfg.Expect)
		if err != nil {
			return invalidCheck{fmt.Errorf("%s check: expect: %w", cfg.Type, err)}
		}
		expect = re
	}
	switch cfg.Type {
	case "tcp":
		return &tcpCheck{addr: addr, timeout: cfg.Timeout, proxy: proxyHeader(cfg.ProxyProtocol)}
	case "http", "https":
		h, err := newHTTPCheck(cfg.Type, addr, cfg, expect)
		if err != nil {
			return invalidCheck{err}
		}
		return h
	case "udp":
		send, err := payload(cfg.Send)
		if err != nil {
			return invalidCheck{fmt.Errorf("udp check: send: %w", err)}
		}
		return &udpCheck{addr: addr, send: send, expect: expect, timeout: cfg.Timeout}
	case "exec":
		if len(cfg.Command) == 0 || cfg.Command[0] == "" {
			return invalidCheck{errors.New("exec check: no command")}
		}
		return newExecCheck(t.Addr, cfg)
	}
	return invalidCheck{fmt.Errorf("unknown check type %q", cfg.Type)}
}

// payload decodes Config.Send: hex after "0x", else the text's bytes.
func payload(s string) ([]byte, error) {
	if h, ok := strings.CutPrefix(s, "0x"); ok {
		return hex.DecodeString(h)
	}
	return []byte(s), nil
}

// runCheck runs one check of c, bounded by timeout and by parent.
func runCheck(parent context.Context, c checker, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(parent, timeout)
	defer cancel()
	return c.check(ctx)
}

// errTimeout is the reason of a check that ran out of its Timeout.
var errTimeout = errors.New("timeout")

// reason shortens err, the failure of a check run under ctx, to what an
// operator needs: "timeout after 2s", or the bare errno ("connection
// refused", "no route to host"), or err itself.
func reason(ctx context.Context, err error, timeout time.Duration) error {
	if errors.Is(ctx.Err(), context.DeadlineExceeded) || errors.Is(err, context.DeadlineExceeded) || errors.Is(err, os.ErrDeadlineExceeded) {
		return fmt.Errorf("%w after %v", errTimeout, timeout)
	}
	var errno syscall.Errno
	if errors.As(err, &errno) {
		return errno
	}
	return err
}
