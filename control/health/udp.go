package health

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"regexp"
	"time"
)

// maxDatagram holds any UDP payload (65507 bytes over IPv4).
const maxDatagram = 64 << 10

// udpCheck sends one datagram and waits for one reply.
type udpCheck struct {
	addr    netip.AddrPort
	send    []byte
	expect  *regexp.Regexp // nil = any reply
	timeout time.Duration
}

func (c *udpCheck) check(ctx context.Context) error {
	var d net.Dialer
	// A connected socket: the kernel drops datagrams from anyone but addr
	// and turns an ICMP port unreachable into ECONNREFUSED on the read
	// (udp(7), "ERROR HANDLING").
	conn, err := d.DialContext(ctx, "udp", c.addr.String())
	if err != nil {
		return fmt.Errorf("udp %s: %w", c.addr, reason(ctx, err, c.timeout))
	}
	defer conn.Close()
	// The deadline and an early cancel (Set, Close) both end the read.
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Now()) })
	defer stop()
	if dl, ok := ctx.Deadline(); ok {
		conn.SetDeadline(dl)
	}
	if _, err := conn.Write(c.send); err != nil {
		return fmt.Errorf("udp %s: send: %w", c.addr, reason(ctx, err, c.timeout))
	}
	buf := make([]byte, maxDatagram)
	n, err := conn.Read(buf)
	if err != nil {
		err = reason(ctx, err, c.timeout)
		if errors.Is(err, errTimeout) {
			return fmt.Errorf("udp %s: no reply: %w", c.addr, err)
		}
		return fmt.Errorf("udp %s: %w", c.addr, err)
	}
	if c.expect != nil && !c.expect.Match(buf[:n]) {
		return fmt.Errorf("udp %s: reply does not match %q", c.addr, c.expect)
	}
	return nil
}
