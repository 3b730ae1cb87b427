package health

import (
	"context"
	"net"
	"time"
)

// A real whose service sends it the PROXY protocol (proxy_protocol) expects
// a header at the start of every connection, and a server such as nginx
// closes one without it: its checks send one too, as HAProxy's
// check-send-proxy does. It is the header proxy-protocol.txt gives for a
// connection the proxy makes itself, a health check among them: v2's LOCAL
// command (no addresses) or v1's "UNKNOWN", after which the server uses
// the connection's own addresses.

// proxyV2Local is a v2 header with the LOCAL command (version 2, command
// 0), family and transport unspecified, no addresses.
var proxyV2Local = []byte("\r\n\r\n\x00\r\nQUIT\n\x20\x00\x00\x00")

// proxyV1Unknown is a v1 header for a connection of unknown protocol.
var proxyV1Unknown = []byte("PROXY UNKNOWN\r\n")

// proxyHeader is the header a check of a real with PROXY protocol version
// v ("v1", "v2") sends first, or nil.
func proxyHeader(v string) []byte {
	switch v {
	case "v1":
		return proxyV1Unknown
	case "v2":
		return proxyV2Local
	}
	return nil
}

// dialProxy connects to addr over TCP and sends hdr (none if nil) first.
func dialProxy(ctx context.Context, addr string, hdr []byte) (net.Conn, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil || hdr == nil {
		return c, err
	}
	if dl, ok := ctx.Deadline(); ok {
		c.SetWriteDeadline(dl)
	}
	if _, err := c.Write(hdr); err != nil {
		c.Close()
		return nil, err
	}
	c.SetWriteDeadline(time.Time{})
	return c, nil
}
