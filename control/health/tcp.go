package health

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"time"
)

// tcpCheck connects to addr and closes the connection at once.
type tcpCheck struct {
	addr    netip.AddrPort
	timeout time.Duration // for messages; ctx carries the deadline
}

func (c *tcpCheck) check(ctx context.Context) error {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", c.addr.String())
	if err != nil {
		return fmt.Errorf("connect %s: %w", c.addr, reason(ctx, err, c.timeout))
	}
	return conn.Close()
}
