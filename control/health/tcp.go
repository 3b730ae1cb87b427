package health

import (
	"context"
	"fmt"
	"net/netip"
	"time"
)

// tcpCheck connects to addr, sends proxy if any, and closes the connection.
type tcpCheck struct {
	addr    netip.AddrPort
	timeout time.Duration // for messages; ctx carries the deadline
	proxy   []byte        // a PROXY protocol header (proxy.go), or nil
}

func (c *tcpCheck) check(ctx context.Context) error {
	conn, err := dialProxy(ctx, c.addr.String(), c.proxy)
	if err != nil {
		return fmt.Errorf("connect %s: %w", c.addr, reason(ctx, err, c.timeout))
	}
	return conn.Close()
}
