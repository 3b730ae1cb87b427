package dataplane

import (
	"bytes"
	"encoding/hex"
	"sync/atomic"
	"testing"

	"github.com/gvs-lb/gvs/dataplane/header"
)

// partial turns a frame with a complete transport checksum into what the
// kernel hands over with offloads on (CHECKSUM_PARTIAL): the checksum field
// holds the uncomplemented pseudo-header sum, and the offload metadata says
// where the sum starts and where it goes.
func partial(t *testing.T, frame []byte) header.Offload {
	t.Helper()
	ip := header.IPv4(frame[header.EthernetLen:])
	l4 := ip.Payload()
	start := header.EthernetLen + ip.HeaderLength()
	o := header.Offload{Flags: header.OffloadNeedsCsum, CsumStart: uint16(start)}
	ps := header.PseudoHeaderChecksum(ip.Protocol(), ip.Source(), ip.Destination(), uint16(len(l4)))
	switch ip.Protocol() {
	case header.ProtoTCP:
		o.CsumOffset = header.TCPChecksumOffset
		header.TCP(l4).SetChecksum(ps)
	case header.ProtoUDP:
		o.CsumOffset = header.UDPChecksumOffset
		header.UDP(l4).SetChecksum(ps)
	default:
		t.Fatalf("partial: protocol %d", ip.Protocol())
	}
	return o
}

// finish completes out's partial checksum as the kernel would, if off asks
// for it, and returns a copy.
func finish(t *testing.T, out []byte, off header.Offload) []byte {
	t.Helper()
	b := append([]byte(nil), out...)
	if off.Flags&header.OffloadNeedsCsum != 0 {
		ip := header.IPv4(b[header.EthernetLen:])
		if !header.FinishChecksum(b, &off, ip.Protocol() == header.ProtoUDP) {
			t.Fatalf("partial checksum offsets %d+%d do not fit a %d-byte frame", off.CsumStart, off.CsumOffset, len(b))
		}
	}
	return b
}

// offloadWorker is a worker alone on tbl.
func offloadWorker(tbl *Table) *Worker {
	var ptr atomic.Pointer[Table]
	ptr.Store(tbl)
	return newWorker(0, 1, nil, &ptr, 1024)
}

// send runs frame (with offloads off) through w and returns the frame sent
// and w's offload request for it, copied.
func send(t *testing.T, w *Worker, tbl *Table, frame []byte, off header.Offload) ([]byte, header.Offload, Verdict) {
	t.Helper()
	buf := make([]byte, Headroom+MaxFrame)
	copy(buf[Headroom:], frame)
	out, v := w.processOffload(tbl, buf, len(frame), off, make([]byte, 128), 1)
	return append([]byte(nil), out...), w.txOff, v
}

// TestPartialChecksum runs every mode's request (and NAT and FULLNAT
// replies) twice: with a complete checksum, and as the kernel hands it over
// with offloads on, with a partial one. The frame sent for the partial one,
// once its checksum is finished as the kernel or NIC would, must be the
// frame sent for the complete one, byte for byte: the rewrites adjust the
// pseudo-header part only and pass the offsets on, or (TUN, where the
// outer header moves the transport header) finish it themselves.
func TestPartialChecksum(t *testing.T) {
	for _, proto := range []uint8{header.ProtoTCP, header.ProtoUDP} {
		for _, f := range []Forward{ForwardDR, ForwardTUN, ForwardNAT, ForwardFullNAT} {
			name := f.String() + "/" + map[uint8]string{header.ProtoTCP: "tcp", header.ProtoUDP: "udp"}[proto]
			t.Run(name, func(t *testing.T) {
				full, part := testTable(f, proto), testTable(f, proto)
				wf, wp := offloadWorker(full), offloadWorker(part)
				req := client(proto)
				req.syn = true
				req.payload = bytes.Repeat([]byte("0123456789"), 50)
				frames := [][]byte{req.bytes(t)}
				if f == ForwardNAT || f == ForwardFullNAT {
					reply := pkt{srcMAC: macRS1, dstMAC: macDir, src: ipRS1, dst: ipClient, sport: natPort, dport: cport, proto: proto,
						syn: true, ack: true, df: true, id: 9, payload: []byte("hello, client")}
					if f == ForwardFullNAT {
						reply.dst, reply.dport = ipLocal, portLo
					}
					frames = append(frames, reply.bytes(t))
				}
				for i, in := range frames {
					want, wantOff, v := send(t, wf, full, in, header.Offload{})
					if v != VerdictForward || wantOff != (header.Offload{}) {
						t.Fatalf("frame %d with a complete checksum: verdict %v, offload %+v", i, v, wantOff)
					}
					p := append([]byte(nil), in...)
					off := partial(t, p)
					got, gotOff, v := send(t, wp, part, p, off)
					if v != VerdictForward {
						t.Fatalf("frame %d with a partial checksum: verdict %v", i, v)
					}
					switch {
					case f == ForwardTUN && gotOff != (header.Offload{}):
						t.Fatalf("TUN frame %d: offload %+v, want the checksum finished here", i, gotOff)
					case f != ForwardTUN && (gotOff.Flags != header.OffloadNeedsCsum || gotOff.CsumStart != off.CsumStart || gotOff.CsumOffset != off.CsumOffset):
						t.Fatalf("frame %d: offload %+v, want the partial checksum at %d+%d passed on", i, gotOff, off.CsumStart, off.CsumOffset)
					}
					if done := finish(t, got, gotOff); !bytes.Equal(done, want) {
						t.Fatalf("frame %d: sent with a partial checksum and finished:\n%s\nwith a complete one:\n%s\n%s", i, hex.Dump(done), hex.Dump(want), diff(done, want))
					}
				}
			})
		}
	}
}

// gsoFrame is a TCP super-frame of n payload bytes with a partial checksum,
// as GRO or TSO hands it over, to be cut into mss-byte segments.
func gsoFrame(t *testing.T, proto uint8, n, mss int) ([]byte, header.Offload) {
	t.Helper()
	p := client(proto)
	p.ack, p.fin = true, true // FIN and PSH belong to the last segment only
	p.payload = make([]byte, n)
	for i := range p.payload {
		p.payload[i] = byte(i * 7)
	}
	b := p.bytes(t)
	if proto == header.ProtoTCP {
		tcp := header.TCP(header.IPv4(b[header.EthernetLen:]).Payload())
		tcp.SetFlags(tcp.Flags() | header.TCPFlagPsh | header.TCPFlagCwr)
	}
	off := partial(t, b)
	off.GSOSize = uint16(mss)
	off.GSOType = header.GSOTCPv4
	if proto == header.ProtoUDP {
		off.GSOType = header.GSOUDPL4
	}
	return b, off
}

// TestGSOPassedOn: in DR, NAT and FULLNAT a GSO super-frame keeps its size
// and leaves with its GSO request and partial checksum adjusted for the
// rewrite, for the kernel (or NIC) to segment; finished, its checksum is
// right for the rewritten addresses.
func TestGSOPassedOn(t *testing.T) {
	for _, proto := range []uint8{header.ProtoTCP, header.ProtoUDP} {
		for _, f := range []Forward{ForwardDR, ForwardNAT, ForwardFullNAT} {
			tbl := testTable(f, proto)
			w := offloadWorker(tbl)
			in, off := gsoFrame(t, proto, 20000, 1448)
			if proto == header.ProtoTCP {
				// A super-frame of an established connection: open it.
				syn := client(proto)
				syn.syn = true
				if _, _, v := send(t, w, tbl, syn.bytes(t), header.Offload{}); v != VerdictForward {
					t.Fatalf("%v: SYN verdict %v", f, v)
				}
			}
			out, gotOff, v := send(t, w, tbl, in, off)
			if v != VerdictForward || len(out) != len(in) {
				t.Fatalf("%v proto %d: verdict %v, %d bytes out of %d", f, proto, v, len(out), len(in))
			}
			if gotOff.GSOType != off.GSOType || gotOff.GSOSize != off.GSOSize || gotOff.Flags != header.OffloadNeedsCsum {
				t.Fatalf("%v proto %d: offload %+v, want GSO type %d size %d with a partial checksum", f, proto, gotOff, off.GSOType, off.GSOSize)
			}
			ip := header.IPv4(out[header.EthernetLen:])
			wantHdr := header.EthernetLen + ip.HeaderLength() + header.UDPLen
			if proto == header.ProtoTCP {
				wantHdr = header.EthernetLen + ip.HeaderLength() + header.TCP(ip.Payload()).DataOffset()
			}
			if int(gotOff.HdrLen) != wantHdr {
				t.Errorf("%v proto %d: HdrLen %d, want %d", f, proto, gotOff.HdrLen, wantHdr)
			}
			done := finish(t, out, gotOff)
			ip = header.IPv4(done[header.EthernetLen:])
			ok := header.TCP(ip.Payload()).IsChecksumValid(ip.Source(), ip.Destination())
			if proto == header.ProtoUDP {
				ok = header.UDP(ip.Payload()).IsChecksumValid(ip.Source(), ip.Destination())
			}
			if !ok {
				t.Errorf("%v proto %d: the finished checksum of the rewritten super-frame is wrong", f, proto)
			}
		}
	}
}

// tunSegments runs a GSO frame through a TUN worker as a batch does and
// returns every frame it sends, in order.
func tunSegments(t *testing.T, tbl *Table, in []byte, off header.Offload) [][]byte {
	t.Helper()
	w := offloadWorker(tbl)
	if header.IPv4(in[header.EthernetLen:]).Protocol() == header.ProtoTCP {
		syn := client(header.ProtoTCP)
		syn.syn = true
		if _, _, v := send(t, w, tbl, syn.bytes(t), header.Offload{}); v != VerdictForward {
			t.Fatalf("SYN verdict %v", v)
		}
		w.resetSpare()
	}
	first, gotOff, v := send(t, w, tbl, in, off)
	if v != VerdictForward {
		t.Fatalf("verdict %v", v)
	}
	if gotOff != (header.Offload{}) {
		t.Fatalf("TUN segment sent with offload %+v, want none", gotOff)
	}
	out := [][]byte{first}
	for _, x := range w.extra {
		out = append(out, append([]byte(nil), x...))
	}
	if got := w.C.Segmented.Load(); got != 1 {
		t.Errorf("Segmented = %d, want 1", got)
	}
	return out
}

// TestGSOThroughTunnel: a GSO super-frame for a TUN real is cut into
// segments in software, each with a complete checksum, each fitting the MTU
// with its outer header, in order and together carrying the payload; TCP
// keeps FIN and PSH for the last segment and CWR for the first, and a
// segment size the tunnel cannot take is lowered to what fits.
func TestGSOThroughTunnel(t *testing.T) {
	for _, tc := range []struct {
		name       string
		proto      uint8
		n, mss     int
		mtu        int
		wantSegs   int
		wantMaxSeg int // the largest inner payload
	}{
		{"tcp", header.ProtoTCP, 4000, 1448, 1500, 3, 1448},
		{"tcp-mss-lowered", header.ProtoTCP, 4100, 1448, 1400, 4, 1400 - 60}, // 1340 bytes a segment: 3 take 4020
		{"tcp-one-segment", header.ProtoTCP, 1000, 1448, 1500, 1, 1000},
		{"udp", header.ProtoUDP, 3000, 1000, 1500, 3, 1000},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tbl := testTable(ForwardTUN, tc.proto)
			tbl.MTU = tc.mtu
			in, off := gsoFrame(t, tc.proto, tc.n, tc.mss)
			segs := tunSegments(t, tbl, in, off)
			if len(segs) != tc.wantSegs {
				t.Fatalf("%d segments, want %d", len(segs), tc.wantSegs)
			}
			inIP := header.IPv4(in[header.EthernetLen:])
			var payload []byte
			var seq uint32
			for i, s := range segs {
				eth := header.Ethernet(s)
				if eth.Destination() != macRS1 || eth.Source() != macDir {
					t.Fatalf("segment %d: MACs %x -> %x", i, eth.Source(), eth.Destination())
				}
				outer := header.IPv4(s[header.EthernetLen:])
				if !outer.IsValid(len(outer)) || !outer.IsChecksumValid() || outer.Protocol() != header.ProtoIPIP || len(outer) > tc.mtu {
					t.Fatalf("segment %d: bad outer header or %d bytes over MTU %d", i, len(outer), tc.mtu)
				}
				ip := header.IPv4(outer.Payload())
				if !ip.IsValid(len(ip)) || !ip.IsChecksumValid() || ip.Source() != inIP.Source() || ip.Destination() != inIP.Destination() {
					t.Fatalf("segment %d: bad inner header", i)
				}
				if i > 0 && ip.ID() != inIP.ID()+uint16(i) {
					t.Errorf("segment %d: IP ID %d, want %d", i, ip.ID(), inIP.ID()+uint16(i))
				}
				last := i == len(segs)-1
				if tc.proto == header.ProtoTCP {
					tcp := header.TCP(ip.Payload())
					if !tcp.IsChecksumValid(ip.Source(), ip.Destination()) {
						t.Fatalf("segment %d: TCP checksum wrong", i)
					}
					if i == 0 {
						seq = tcp.SequenceNumber()
					} else if tcp.SequenceNumber() != seq+uint32(len(payload)) {
						t.Fatalf("segment %d: seq %d, want %d", i, tcp.SequenceNumber(), seq+uint32(len(payload)))
					}
					fl := tcp.Flags()
					if (fl&header.TCPFlagFin != 0) != last || (fl&header.TCPFlagPsh != 0) != last || (fl&header.TCPFlagCwr != 0) != (i == 0) {
						t.Errorf("segment %d of %d: flags %#x", i, len(segs), fl)
					}
					if len(tcp.Payload()) > tc.wantMaxSeg {
						t.Errorf("segment %d: %d payload bytes, want at most %d", i, len(tcp.Payload()), tc.wantMaxSeg)
					}
					payload = append(payload, tcp.Payload()...)
				} else {
					udp := header.UDP(ip.Payload())
					if !udp.IsValid(len(ip.Payload())) || udp.Checksum() == 0 || !udp.IsChecksumValid(ip.Source(), ip.Destination()) {
						t.Fatalf("segment %d: UDP header or checksum wrong", i)
					}
					if len(udp.Payload()) > tc.wantMaxSeg {
						t.Errorf("segment %d: %d payload bytes, want at most %d", i, len(udp.Payload()), tc.wantMaxSeg)
					}
					payload = append(payload, udp.Payload()...)
				}
			}
			l4 := inIP.Payload()
			hl := header.UDPLen
			if tc.proto == header.ProtoTCP {
				hl = header.TCP(l4).DataOffset()
			}
			if !bytes.Equal(payload, l4[hl:]) {
				t.Fatalf("the segments carry %d bytes that differ from the %d of the super-frame", len(payload), len(l4[hl:]))
			}
		})
	}
}

// TestOffloadRefused: offload metadata that does not fit the frame is
// counted under its own verdict, never sent with a wrong checksum.
func TestOffloadRefused(t *testing.T) {
	for _, tc := range []struct {
		name  string
		proto uint8
		edit  func(o *header.Offload)
	}{
		{"csum_start off the transport header", header.ProtoTCP, func(o *header.Offload) { o.CsumStart += 2 }},
		{"csum_offset not the checksum field", header.ProtoUDP, func(o *header.Offload) { o.CsumOffset = 4 }},
		{"TCP GSO on UDP", header.ProtoUDP, func(o *header.Offload) { o.GSOType, o.GSOSize = header.GSOTCPv4, 1000 }},
		{"GSO without a size", header.ProtoTCP, func(o *header.Offload) { o.GSOType, o.GSOSize = header.GSOTCPv4, 0 }},
		{"GSO without a partial checksum", header.ProtoTCP, func(o *header.Offload) { o.Flags, o.GSOType, o.GSOSize = 0, header.GSOTCPv4, 1000 }},
		{"IPv6 GSO", header.ProtoTCP, func(o *header.Offload) { o.GSOType, o.GSOSize = header.GSOTCPv6, 1000 }},
	} {
		tbl := testTable(ForwardNAT, tc.proto)
		w := offloadWorker(tbl)
		in := client(tc.proto)
		in.syn = true
		b := in.bytes(t)
		off := partial(t, b)
		tc.edit(&off)
		if out, _, v := send(t, w, tbl, b, off); v != VerdictOffload || len(out) != 0 {
			t.Errorf("%s: verdict %v with %d bytes out, want %v and nothing", tc.name, v, len(out), VerdictOffload)
		}
	}
}

// TestBatchOffloads: a batch hands each frame's offload request to Write
// next to it, and the TUN segments of a GSO frame with none.
func TestBatchOffloads(t *testing.T) {
	tbl := testTable(ForwardNAT, header.ProtoUDP)
	link := &fakeLink{}
	var ptr atomic.Pointer[Table]
	ptr.Store(tbl)
	w := newWorker(0, 1, link, &ptr, 1024)
	plain := client(header.ProtoUDP).bytes(t)
	p := client(header.ProtoUDP)
	p.sport++
	withOff := p.bytes(t)
	off := partial(t, withOff)
	link.in = [][]byte{plain, withOff}
	link.inOffs = []header.Offload{{}, off}
	n, err := link.Read(w.bufs, w.sizes, w.offs, Headroom)
	if n != 2 || err != nil {
		t.Fatalf("fake read: %d, %v", n, err)
	}
	w.batch(tbl, n, 1)
	if len(link.out) != 2 || len(link.outOffs) != 2 {
		t.Fatalf("%d frames and %d offloads written, want 2 and 2", len(link.out), len(link.outOffs))
	}
	if link.outOffs[0] != (header.Offload{}) || link.outOffs[1].Flags != header.OffloadNeedsCsum || link.outOffs[1].CsumStart != off.CsumStart {
		t.Fatalf("offloads written %+v, want none and the partial checksum", link.outOffs)
	}
}

// TestZeroAllocsOffloads: a frame with a partial checksum costs no
// allocation in any mode, and neither does a GSO frame cut for a tunnel
// once the worker's spare buffers exist.
func TestZeroAllocsOffloads(t *testing.T) {
	for _, c := range modeCases {
		w, tbl, frame := established(t, c)
		p := append([]byte(nil), frame...)
		off := partial(t, p)
		buf := make([]byte, Headroom+MaxFrame)
		icmp := make([]byte, 128)
		allocs := testing.AllocsPerRun(1000, func() {
			copy(buf[Headroom:], p)
			if _, v := w.processOffload(tbl, buf, len(p), off, icmp, 2); v != VerdictForward {
				t.Fatalf("%s: verdict %v", c.name, v)
			}
		})
		if allocs != 0 {
			t.Errorf("%s: %.1f allocations per packet with a partial checksum, want 0", c.name, allocs)
		}
	}
	tbl := testTable(ForwardTUN, header.ProtoUDP)
	w := offloadWorker(tbl)
	in, off := gsoFrame(t, header.ProtoUDP, 20000, 1400)
	buf := make([]byte, Headroom+MaxFrame)
	icmp := make([]byte, 128)
	run := func() {
		copy(buf[Headroom:], in)
		if _, v := w.processOffload(tbl, buf, len(in), off, icmp, 2); v != VerdictForward {
			t.Fatalf("TUN GSO: verdict %v", v)
		}
		w.resetSpare()
	}
	run()
	if allocs := testing.AllocsPerRun(100, run); allocs != 0 {
		t.Errorf("TUN GSO: %.1f allocations per super-frame, want 0", allocs)
	}
}

// FuzzProcessOffload is FuzzProcess with arbitrary offload metadata next
// to the frame: no panic, and a frame sent with a partial checksum has its
// offsets inside it.
func FuzzProcessOffload(f *testing.F) {
	syn := client(header.ProtoTCP)
	syn.syn = true
	b := syn.bytes(f)
	o := header.Offload{Flags: header.OffloadNeedsCsum, CsumStart: 34, CsumOffset: header.TCPChecksumOffset}
	f.Add(b, uint8(ForwardNAT), o.Flags, o.GSOType, o.GSOSize, o.CsumStart, o.CsumOffset)
	f.Add(b, uint8(ForwardTUN), o.Flags, header.GSOTCPv4, uint16(8), o.CsumStart, o.CsumOffset)
	u := client(header.ProtoUDP).bytes(f)
	f.Add(u, uint8(ForwardTUN), o.Flags, header.GSOUDPL4, uint16(3), o.CsumStart, uint16(header.UDPChecksumOffset))
	f.Fuzz(func(t *testing.T, in []byte, fwd, flags, gsoType uint8, gsoSize, csumStart, csumOffset uint16) {
		if len(in) > MaxFrame {
			return
		}
		off := header.Offload{Flags: flags, GSOType: gsoType, GSOSize: gsoSize, CsumStart: csumStart, CsumOffset: csumOffset}
		fw := Forward(fwd%4 + 1)
		for _, proto := range []uint8{header.ProtoTCP, header.ProtoUDP} {
			tbl := testTable(fw, proto)
			w := offloadWorker(tbl)
			for i := 0; i < 2; i++ {
				buf := make([]byte, Headroom+MaxFrame)
				copy(buf[Headroom:], in)
				out, v := w.processOffload(tbl, buf, len(in), off, make([]byte, 128), 1)
				w.resetSpare()
				if v >= numVerdicts || out == nil {
					continue
				}
				ip := header.IPv4(out[header.EthernetLen:])
				if !ip.IsValid(len(ip)) || !ip.IsChecksumValid() {
					t.Fatalf("verdict %v: output IPv4 header invalid", v)
				}
				if o := w.txOff; o.Flags&header.OffloadNeedsCsum != 0 && int(o.CsumStart)+int(o.CsumOffset)+2 > len(out) {
					t.Fatalf("partial checksum at %d+%d outside a %d-byte frame", o.CsumStart, o.CsumOffset, len(out))
				}
			}
		}
	})
}
