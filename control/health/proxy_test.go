package health

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"testing"
)

// proxyReal is a server that, like nginx with listen ... proxy_protocol,
// wants a PROXY header before anything else: it reads one (v1 or v2,
// checked against want), then answers an HTTP request with 200, or
// closes the connection without a valid header. It sends what it read on
// seen.
func proxyReal(t *testing.T, want []byte) (net.Listener, chan []byte) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	seen := make(chan []byte, 16)
	go func() { // accept loop, until the listener closes
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() { // one connection
				defer c.Close()
				got := make([]byte, len(want))
				if _, err := io.ReadFull(c, got); err != nil {
					seen <- nil
					return
				}
				seen <- got
				if !bytes.Equal(got, want) {
					return
				}
				r := bufio.NewReader(c)
				if req, err := http.ReadRequest(r); err == nil {
					req.Body.Close()
					fmt.Fprint(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
				}
			}()
		}
	}()
	return l, seen
}

// TestProxyProtocolChecks: a tcp or http check of a real with the PROXY
// protocol sends the header for a connection of the proxy's own first
// (v2's LOCAL command, v1's UNKNOWN), so the real takes it; without the
// setting an http check of such a real fails, as nginx would fail it.
func TestProxyProtocolChecks(t *testing.T) {
	for _, tc := range []struct {
		version string
		want    []byte
	}{
		{"v2", []byte("\r\n\r\n\x00\r\nQUIT\n\x20\x00\x00\x00")},
		{"v1", []byte("PROXY UNKNOWN\r\n")},
	} {
		t.Run(tc.version, func(t *testing.T) {
			l, seen := proxyReal(t, tc.want)
			defer l.Close()
			addr := addrOf(t, l.Addr())
			for _, typ := range []string{"tcp", "http"} {
				err := checkOnce(t, target(typ, addr, func(c *Config) { c.ProxyProtocol = tc.version }))
				wantErr(t, err, "")
				if got := <-seen; !bytes.Equal(got, tc.want) {
					t.Fatalf("%s check sent %q, want %q", typ, got, tc.want)
				}
			}
			if err := checkOnce(t, target("http", addr, nil)); err == nil {
				t.Fatal("an http check without the header passed")
			}
		})
	}
}
