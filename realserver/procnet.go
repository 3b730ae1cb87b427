package realserver

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"strconv"
	"strings"
)

// Socket states as /proc/net/tcp and /proc/net/udp print them in the "st"
// column (include/net/tcp_states.h). UDP sockets reuse the TCP numbers: an
// unconnected (bound or listening) one is TCP_CLOSE.
const (
	stateClose  = 0x07 // TCP_CLOSE; an unconnected UDP socket (a connected one is 0x01, ESTABLISHED)
	stateListen = 0x0A // TCP_LISTEN
)

// procNetSocket is one socket line of /proc/net/tcp, udp, tcp6 or udp6
// (proc(5)).
type procNetSocket struct {
	Local, Remote netip.AddrPort
	State         uint8
}

// listening reports whether s takes new flows on its local address: a TCP
// socket in LISTEN, or a UDP socket that is not connected to a peer.
func (s procNetSocket) listening(proto string) bool {
	switch proto {
	case "tcp":
		return s.State == stateListen
	case "udp":
		return s.State == stateClose && s.Remote.Port() == 0 && s.Remote.Addr().IsUnspecified()
	}
	return false
}

// parseProcNet parses a /proc/net/{tcp,udp,tcp6,udp6} table: a header line,
// then one socket a line, such as
//
//	0: 0100007F:0CEA 00000000:0000 0A 00000000:00000000 00:00000000 00000000  0 0 12345 1 ...
//
// Addresses are the kernel's __be32 words printed with %08X, that is in host
// byte order (0100007F is 127.0.0.1 on a little-endian host); IPv6
// addresses are four such words. Ports and the state are plain hex. Only
// the first four columns are read.
func parseProcNet(r io.Reader) ([]procNetSocket, error) {
	var socks []procNetSocket
	sc := bufio.NewScanner(r)
	for n := 1; sc.Scan(); n++ {
		f := strings.Fields(sc.Text())
		if len(f) == 0 || (n == 1 && f[0] == "sl") {
			continue
		}
		if len(f) < 4 || !strings.HasSuffix(f[0], ":") {
			return nil, fmt.Errorf("line %d: want \"sl: local remote st ...\", got %q", n, sc.Text())
		}
		local, err := parseProcNetAddr(f[1])
		if err != nil {
			return nil, fmt.Errorf("line %d: local address: %w", n, err)
		}
		remote, err := parseProcNetAddr(f[2])
		if err != nil {
			return nil, fmt.Errorf("line %d: remote address: %w", n, err)
		}
		st, err := strconv.ParseUint(f[3], 16, 8)
		if err != nil {
			return nil, fmt.Errorf("line %d: state %q: %w", n, f[3], err)
		}
		socks = append(socks, procNetSocket{Local: local, Remote: remote, State: uint8(st)})
	}
	return socks, sc.Err()
}

// parseProcNetAddr parses "0100007F:0CEA" (IPv4) or 32 hex digits, a colon
// and a port (IPv6).
func parseProcNetAddr(s string) (netip.AddrPort, error) {
	host, port, ok := strings.Cut(s, ":")
	if !ok || len(port) != 4 {
		return netip.AddrPort{}, fmt.Errorf("%q: want HEXADDR:HEXPORT", s)
	}
	p, err := strconv.ParseUint(port, 16, 16)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("%q: port: %w", s, err)
	}
	var b [16]byte
	switch len(host) {
	case 8, 32:
	default:
		return netip.AddrPort{}, fmt.Errorf("%q: want 8 or 32 hex digits of address", s)
	}
	for i := 0; i < len(host)/8; i++ {
		w, err := strconv.ParseUint(host[8*i:8*i+8], 16, 32)
		if err != nil {
			return netip.AddrPort{}, fmt.Errorf("%q: address: %w", s, errors.Unwrap(err))
		}
		binary.NativeEndian.PutUint32(b[4*i:], uint32(w))
	}
	if len(host) == 8 {
		return netip.AddrPortFrom(netip.AddrFrom4([4]byte(b[:4])), uint16(p)), nil
	}
	return netip.AddrPortFrom(netip.AddrFrom16(b), uint16(p)), nil
}

// readProcNet returns the sockets of proto ("tcp" or "udp"), IPv4 and
// IPv6, from the tables in dir. A missing IPv6 table (IPv6 disabled) is
// not an error.
func readProcNet(dir, proto string) ([]procNetSocket, error) {
	var all []procNetSocket
	for _, table := range []string{proto, proto + "6"} {
		f, err := os.Open(dir + "/" + table)
		if err != nil {
			if table != proto && errors.Is(err, os.ErrNotExist) {
				continue
			}
			return nil, fmt.Errorf("realserver: %w", err)
		}
		socks, err := parseProcNet(f)
		f.Close()
		if err != nil {
			return nil, fmt.Errorf("realserver: %s/%s: %w", dir, table, err)
		}
		all = append(all, socks...)
	}
	return all, nil
}
