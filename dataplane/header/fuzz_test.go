package header_test

import (
	"bytes"
	"encoding/binary"
	"testing"

	"github.com/gvs-lb/gvs/dataplane/header"
)

// The fuzz targets check that IsValid never panics on any input and that,
// after rewrites of a valid packet, checksums still validate (against the
// reference code, not just the code under test) and lengths stay in bounds.
// Run one with, for example, go test -fuzz=FuzzIPv4 -fuzztime=30s.

// seedIPv4 is a valid 20-byte header with total length 28 and 8 bytes of
// payload.
var seedIPv4 = []byte{
	0x45, 0x00, 0x00, 0x1c, 0x12, 0x34, 0x40, 0x00, 0x40, 0x11, 0x00, 0x00,
	10, 0, 0, 1, 10, 20, 0, 100,
	0x9c, 0x40, 0x00, 0x50, 0x00, 0x08, 0x00, 0x00,
}

func FuzzIPv4(f *testing.F) {
	f.Add(seedIPv4, len(seedIPv4), uint32(0x0a14000b), uint8(63), uint16(24))          // valid, no options
	f.Add(withByte(seedIPv4, 0, 0x46), len(seedIPv4), uint32(0), uint8(0), uint16(0))  // IHL 6 with 24-byte header
	f.Add(withByte(seedIPv4, 0, 0x44), len(seedIPv4), uint32(1), uint8(1), uint16(20)) // IHL 4: invalid
	f.Add(withByte(seedIPv4, 0, 0x65), len(seedIPv4), uint32(1), uint8(1), uint16(20)) // version 6: invalid
	f.Add(seedIPv4[:19], 19, uint32(1), uint8(1), uint16(20))                          // shorter than a header
	f.Add(seedIPv4, 27, uint32(1), uint8(1), uint16(20))                               // total length beyond pktSize
	f.Add(seedIPv4, -1, uint32(1), uint8(1), uint16(20))                               // negative pktSize
	f.Add(withByte(seedIPv4, 0, 0x4f), 1<<20, uint32(1), uint8(1), uint16(65535))      // IHL 15 beyond the buffer
	f.Fuzz(func(t *testing.T, data []byte, pktSize int, addr uint32, ttl uint8, tl uint16) {
		ip := header.IPv4(data)
		if !ip.IsValid(pktSize) {
			return
		}
		hl := ip.HeaderLength()
		if hl < header.IPv4MinLen || hl > int(ip.TotalLength()) || int(ip.TotalLength()) > len(data) ||
			len(ip.Payload()) != int(ip.TotalLength())-hl {
			t.Fatalf("IsValid accepted header length %d, total length %d in %d bytes", hl, ip.TotalLength(), len(data))
		}
		_, _, _, _ = ip.TOS(), ip.ID(), ip.FragmentOffset(), ip.IsFragment()
		ip.SetChecksum(ip.CalculateChecksum())
		if !ip.IsChecksumValid() || ip.Checksum() != refIPv4Checksum(data) {
			t.Fatalf("CalculateChecksum %#04x, reference %#04x", ip.Checksum(), refIPv4Checksum(data))
		}
		var a [4]byte
		binary.BigEndian.PutUint32(a[:], addr)
		ip.SetSourceWithChecksumUpdate(a)
		ip.SetDestinationWithChecksumUpdate([4]byte{a[3], a[2], a[1], a[0]})
		ip.SetTTLWithChecksumUpdate(ttl)
		if int(tl) >= hl && int(tl) <= len(data) {
			ip.SetTotalLengthWithChecksumUpdate(tl)
			if !ip.IsValid(len(data)) {
				t.Fatalf("total length %d in [%d, %d] made the header invalid", tl, hl, len(data))
			}
		}
		if !ip.IsChecksumValid() || ip.Checksum() != refIPv4Checksum(data) {
			t.Fatalf("after rewrites: checksum %#04x, reference %#04x", ip.Checksum(), refIPv4Checksum(data))
		}
	})
}

// seedTCP is a 20-byte TCP header (data offset 5) with 3 bytes of data.
var seedTCP = []byte{
	0x9c, 0x40, 0x00, 0x50, 1, 2, 3, 4, 5, 6, 7, 8, 0x50, 0x12, 0x72, 0x10, 0, 0, 0, 0,
	'a', 'b', 'c',
}

func FuzzTCP(f *testing.F) {
	f.Add(seedTCP, len(seedTCP), uint32(0x0a000001), uint32(0x0a140064), uint32(0x0a14000b), uint16(8080)) // valid
	f.Add(seedTCP[:20], 20, uint32(1), uint32(2), uint32(3), uint16(4))                                    // header only
	f.Add(seedTCP[:19], 19, uint32(1), uint32(2), uint32(3), uint16(4))                                    // too short
	f.Add(withByte(seedTCP, 12, 0xf0), len(seedTCP), uint32(1), uint32(2), uint32(3), uint16(4))           // data offset 60 > length
	f.Add(withByte(seedTCP, 12, 0x40), len(seedTCP), uint32(1), uint32(2), uint32(3), uint16(4))           // data offset 16 < 20
	f.Add(seedTCP, 21, uint32(1), uint32(2), uint32(3), uint16(4))                                         // l4len shorter than the slice
	f.Fuzz(func(t *testing.T, data []byte, l4len int, src, dst, nw uint32, port uint16) {
		tcp := header.TCP(data)
		if !tcp.IsValid(l4len) {
			return
		}
		if off := tcp.DataOffset(); off < header.TCPMinLen || off > l4len || off > len(data) || len(tcp.Payload()) != len(data)-off {
			t.Fatalf("IsValid accepted data offset %d with l4len %d in %d bytes", off, l4len, len(data))
		}
		if len(data) > 0xffff {
			return // no IPv4 segment is that long
		}
		s, d, n := be4(src), be4(dst), be4(nw)
		tcp.SetChecksum(tcp.CalculateChecksum(s, d))
		if !tcp.IsChecksumValid(s, d) {
			t.Fatal("CalculateChecksum does not validate")
		}
		tcp.UpdateChecksumPseudoHeaderAddress(d, n)
		tcp.SetDestinationPortWithChecksumUpdate(port)
		tcp.SetSourcePortWithChecksumUpdate(^port)
		tcp.UpdateChecksumPseudoHeaderAddress(s, d)
		if got, want := tcp.Checksum(), refL4Checksum(header.ProtoTCP, d, n, data); got != want || !tcp.IsChecksumValid(d, n) {
			t.Fatalf("after rewrites: checksum %#04x, reference %#04x", got, want)
		}
	})
}

// seedUDP is a UDP header with Length 11: 3 bytes of data.
var seedUDP = []byte{0x9c, 0x40, 0x00, 0x35, 0x00, 0x0b, 0x00, 0x00, 'a', 'b', 'c'}

func FuzzUDP(f *testing.F) {
	f.Add(seedUDP, len(seedUDP), uint32(0x0a000001), uint32(0x0a140064), uint32(0x0a14000b), uint16(8080), false) // valid, with checksum
	f.Add(seedUDP, len(seedUDP), uint32(0x0a000001), uint32(0x0a140064), uint32(0x0a14000b), uint16(8080), true)  // valid, checksum 0 (none)
	f.Add(append(seedUDP, 0, 0, 0), len(seedUDP)+3, uint32(1), uint32(2), uint32(3), uint16(4), false)            // trailing bytes after Length
	f.Add(seedUDP[:7], 7, uint32(1), uint32(2), uint32(3), uint16(4), false)                                      // too short
	f.Add([]byte{0, 0, 0, 0, 0, 7, 0, 0}, 8, uint32(1), uint32(2), uint32(3), uint16(4), false)                   // Length 7 < 8
	f.Add([]byte{0, 0, 0, 0, 0xff, 0xff, 0, 0}, 1<<20, uint32(1), uint32(2), uint32(3), uint16(4), false)         // Length beyond the slice
	f.Fuzz(func(t *testing.T, data []byte, l4len int, src, dst, nw uint32, port uint16, none bool) {
		udp := header.UDP(data)
		if !udp.IsValid(l4len) {
			return
		}
		n := int(udp.Length())
		if n < header.UDPLen || n > l4len || n > len(data) || len(udp.Payload()) != n-header.UDPLen {
			t.Fatalf("IsValid accepted Length %d with l4len %d in %d bytes", n, l4len, len(data))
		}
		s, d, a := be4(src), be4(dst), be4(nw)
		if none {
			udp.SetChecksum(0)
		} else {
			udp.SetChecksum(udp.CalculateChecksum(s, d))
			if udp.Checksum() == 0 || !udp.IsChecksumValid(s, d) {
				t.Fatalf("CalculateChecksum = %#04x does not validate", udp.Checksum())
			}
		}
		udp.UpdateChecksumPseudoHeaderAddress(d, a)
		udp.SetDestinationPortWithChecksumUpdate(port)
		udp.SetSourcePortWithChecksumUpdate(^port)
		udp.UpdateChecksumPseudoHeaderAddress(s, d)
		got := udp.Checksum()
		if none {
			if got != 0 {
				t.Fatalf("checksum 0 (none) became %#04x", got)
			}
			return
		}
		if want := refL4Checksum(header.ProtoUDP, d, a, data[:n]); got != want || !udp.IsChecksumValid(d, a) {
			t.Fatalf("after rewrites: checksum %#04x, reference %#04x", got, want)
		}
	})
}

func FuzzICMPv4(f *testing.F) {
	f.Add([]byte{3, 4, 0, 0, 0, 0, 0x05, 0x78})     // frag needed, MTU 1400
	f.Add([]byte{8, 0, 0, 0, 0, 1, 0, 1, 'h', 'i'}) // echo request with data
	f.Add([]byte{11, 0, 0})                         // too short
	f.Fuzz(func(t *testing.T, data []byte) {
		m := header.ICMPv4(data)
		if !m.IsValid() {
			return
		}
		_, _, _, _ = m.Type(), m.Code(), m.MTU(), m.IsError()
		if len(m.Payload()) != len(data)-header.ICMPv4MinLen {
			t.Fatalf("payload %d bytes of %d", len(m.Payload()), len(data))
		}
		m.SetChecksum(m.CalculateChecksum())
		if !m.IsChecksumValid() || m.Checksum() != refL4Checksum(header.ProtoICMP, [4]byte{}, [4]byte{}, data) {
			t.Fatalf("checksum %#04x does not validate", m.Checksum())
		}
	})
}

// FuzzWriteICMPv4FragNeeded feeds any bytes as the original packet: the
// writer must not panic, and for a valid original must produce a valid
// packet quoting it.
func FuzzWriteICMPv4FragNeeded(f *testing.F) {
	f.Add(seedIPv4, uint16(1400), 100)                    // valid original, room to spare
	f.Add(seedIPv4[:20], uint16(576), 100)                // total length beyond the slice
	f.Add(withByte(seedIPv4, 0, 0x4f), uint16(1280), 100) // IHL beyond total length
	f.Add(seedIPv4, uint16(1400), 55)                     // buffer one byte short
	f.Fuzz(func(t *testing.T, orig []byte, mtu uint16, size int) {
		if size < 0 || size > 200 {
			return
		}
		b := make([]byte, size)
		n := header.WriteICMPv4FragNeeded(b, dirIP, header.IPv4(orig), mtu)
		if n < 0 || n > size {
			t.Fatalf("wrote %d bytes into %d", n, size)
		}
		o := header.IPv4(orig)
		if !o.IsValid(len(orig)) {
			return
		}
		quote := o.HeaderLength() + min(8, len(o.Payload()))
		if want := 20 + 8 + quote; (size >= want) != (n == want) || (n != 0 && n != want) {
			t.Fatalf("wrote %d bytes into %d, want %d", n, size, want)
		}
		if n == 0 {
			return
		}
		ip := header.IPv4(b[:n])
		m := header.ICMPv4(ip.Payload())
		if !ip.IsValid(n) || !ip.IsChecksumValid() || !m.IsValid() || !m.IsChecksumValid() ||
			m.MTU() != mtu || !bytes.Equal(m.Payload(), orig[:quote]) || ip.Destination() != o.Source() {
			t.Fatalf("bad frag-needed packet % x for original % x", b[:n], orig)
		}
	})
}

// FuzzEncapIPIP encapsulates any valid inner packet.
func FuzzEncapIPIP(f *testing.F) {
	f.Add(seedIPv4, uint8(64))                                         // valid inner packet
	f.Add(append(append([]byte(nil), seedIPv4...), 1, 2, 3), uint8(1)) // trailing bytes after the inner packet
	f.Add(withByte(seedIPv4, 6, 0x00), uint8(0))                       // DF clear
	f.Fuzz(func(t *testing.T, inner []byte, ttl uint8) {
		in := header.IPv4(inner)
		if !in.IsValid(len(inner)) || int(in.TotalLength()) > 0xffff-header.IPIPOverhead {
			return
		}
		b := make([]byte, header.IPIPOverhead+len(inner))
		copy(b[header.IPIPOverhead:], inner)
		out := header.EncapIPIP(b, dirIP, rip, ttl)
		if len(out) != header.IPIPOverhead+int(in.TotalLength()) || !out.IsValid(len(b)) || !out.IsChecksumValid() ||
			out.Protocol() != header.ProtoIPIP || out.TTL() != ttl || out.DontFragment() != in.DontFragment() ||
			out.TOS() != in.TOS() || out.ID() != in.ID() || !bytes.Equal(b[header.IPIPOverhead:], inner) ||
			!bytes.Equal(out.Payload(), inner[:in.TotalLength()]) {
			t.Fatalf("bad encapsulation % x of % x", out, inner)
		}
	})
}

// withByte returns a copy of b with b[i] = v.
func withByte(b []byte, i int, v byte) []byte {
	c := append([]byte(nil), b...)
	c[i] = v
	return c
}

func be4(v uint32) [4]byte {
	var a [4]byte
	binary.BigEndian.PutUint32(a[:], v)
	return a
}
