package realserver

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"net/netip"
	"testing"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gvs-lb/gvs/dataplane/header"
)

// seg describes a TCP/IPv4 segment for tcpSeg, which encodes it with
// gopacket, an encoder independent of the code under test.
type seg struct {
	src, dst         netip.AddrPort
	seq, ack         uint32
	psh, fin, syn    bool
	tos, ttl         uint8
	mf               bool   // More Fragments
	id               uint16 // IPv4 identification
	tsval            uint32 // timestamp option value; 0: no options
	ipOpts           bool   // an IPv4 option (IHL 6)
	payload          []byte
	window           uint16
	noACK            bool
	corruptTCPChksum bool
}

var (
	flowA = [2]netip.AddrPort{testClient, netip.AddrPortFrom(testVIP, 80)}
	flowB = [2]netip.AddrPort{netip.MustParseAddrPort("198.51.100.8:40001"), netip.AddrPortFrom(testVIP, 80)}
)

func tcpSeg(t testing.TB, s seg) []byte {
	t.Helper()
	if s.ttl == 0 {
		s.ttl = 64
	}
	if s.window == 0 {
		s.window = 502
	}
	ip := &layers.IPv4{Version: 4, IHL: 5, TTL: s.ttl, TOS: s.tos, Id: s.id, Protocol: layers.IPProtocolTCP,
		Flags: layers.IPv4DontFragment, SrcIP: s.src.Addr().AsSlice(), DstIP: s.dst.Addr().AsSlice()}
	if s.mf {
		ip.Flags = layers.IPv4MoreFragments
	}
	if s.ipOpts {
		ip.Options = []layers.IPv4Option{{OptionType: 1}, {OptionType: 1}, {OptionType: 1}, {OptionType: 0}}
	}
	tcp := &layers.TCP{SrcPort: layers.TCPPort(s.src.Port()), DstPort: layers.TCPPort(s.dst.Port()),
		Seq: s.seq, Ack: s.ack, ACK: !s.noACK, PSH: s.psh, FIN: s.fin, SYN: s.syn, Window: s.window}
	if s.tsval != 0 {
		ts := make([]byte, 8)
		binary.BigEndian.PutUint32(ts, s.tsval)
		binary.BigEndian.PutUint32(ts[4:], 7)
		tcp.Options = []layers.TCPOption{
			{OptionType: layers.TCPOptionKindNop}, {OptionType: layers.TCPOptionKindNop},
			{OptionType: layers.TCPOptionKindTimestamps, OptionLength: 10, OptionData: ts},
		}
	}
	if err := tcp.SetNetworkLayerForChecksum(ip); err != nil {
		t.Fatal(err)
	}
	p := serialize(t, ip, tcp, gopacket.Payload(s.payload))
	if s.corruptTCPChksum {
		p[int(p[0]&0xf)*4+tcpChecksumOff] ^= 0x5a
	}
	return p
}

// segRun returns consecutive segments of flow f, starting at seq, of the given payload sizes.
func segRun(f [2]netip.AddrPort, seq uint32, sizes ...int) []seg {
	var out []seg
	for i, n := range sizes {
		out = append(out, seg{src: f[0], dst: f[1], seq: seq, ack: 5000, tsval: 100, id: uint16(i),
			payload: bytes.Repeat([]byte{byte('a' + i)}, n)})
		seq += uint32(n)
	}
	return out
}

func build(t testing.TB, segs []seg) [][]byte {
	pkts := make([][]byte, len(segs))
	for i, s := range segs {
		pkts[i] = tcpSeg(t, s)
	}
	return pkts
}

// assemble returns the bytes of frame f as the TUN device gets them after
// the virtio_net_hdr: the head, then the payloads merged after it.
func assemble(c *coalescer, pkts [][]byte, f groFrame) []byte {
	var b []byte
	for j := f.head; j >= 0; j = c.next[j] {
		if j == f.head {
			b = append(b, pkts[j]...)
		} else {
			b = append(b, pkts[j][f.hdrLen:]...)
		}
	}
	return b
}

// naiveSum is RFC 1071's ones-complement sum, 16 bits at a time.
func naiveSum(b []byte) uint16 {
	var s uint32
	for i := 0; i+1 < len(b); i += 2 {
		s += uint32(b[i])<<8 | uint32(b[i+1])
	}
	if len(b)%2 == 1 {
		s += uint32(b[len(b)-1]) << 8
	}
	for s > 0xffff {
		s = s>>16 + s&0xffff
	}
	return uint16(s)
}

// finishPartial completes the partial checksum of frame as the kernel
// does for NEEDS_CSUM: it sums from csum_start to the end, the field (the
// pseudo-header sum) included, and stores the complement.
func finishPartial(frame []byte, v header.Offload) []byte {
	out := bytes.Clone(frame)
	start, field := int(v.CsumStart), int(v.CsumStart+v.CsumOffset)
	binary.BigEndian.PutUint16(out[field:], ^naiveSum(out[start:]))
	return out
}

func TestCoalesceMerges(t *testing.T) {
	// Three full segments and a short last one with PSH: one frame.
	segs := segRun(flowA, 1000, 1000, 1000, 1000, 500)
	segs[3].psh = true
	pkts := build(t, segs)
	c := newCoalescer(4)
	frames := c.coalesce(pkts)
	if len(frames) != 1 {
		t.Fatalf("%d frames, want 1", len(frames))
	}
	f := frames[0]
	const hdrLen = 20 + 32 // IPv4, TCP with NOP NOP timestamps
	wantVnet := header.Offload{Flags: header.OffloadNeedsCsum, GSOType: header.GSOTCPv4, HdrLen: hdrLen,
		GSOSize: 1000, CsumStart: 20, CsumOffset: 16}
	if f.segs != 4 || f.vnet != wantVnet {
		t.Fatalf("frame: %d segments, vnet %+v; want 4, %+v", f.segs, f.vnet, wantVnet)
	}

	// The golden frame: the head's headers, PSH set, the payloads
	// concatenated, encoded by gopacket as one segment; its TCP checksum
	// field holds the pseudo-header sum instead of the checksum.
	var all []byte
	for _, s := range segs {
		all = append(all, s.payload...)
	}
	whole := segs[0]
	whole.payload, whole.psh = all, true
	want := tcpSeg(t, whole)
	pseudo := make([]byte, 12)
	copy(pseudo, want[12:20])
	pseudo[9] = protoTCP
	binary.BigEndian.PutUint16(pseudo[10:], uint16(len(want)-20))
	wantPartial := bytes.Clone(want)
	binary.BigEndian.PutUint16(wantPartial[20+16:], naiveSum(pseudo))

	got := assemble(c, pkts, f)
	if !bytes.Equal(got, wantPartial) {
		t.Fatalf("frame differs from the golden one\n got % x\nwant % x", got[:hdrLen], wantPartial[:hdrLen])
	}
	if tl := binary.BigEndian.Uint16(got[2:]); int(tl) != len(got) || tl != hdrLen+3500 {
		t.Errorf("IPv4 total length %d, frame %d bytes", tl, len(got))
	}
	if naiveSum(got[:20]) != 0xffff {
		t.Error("IPv4 header checksum of the frame does not verify")
	}
	// What the kernel computes from the partial sum is the checksum
	// gopacket computed for the whole segment.
	if fin := finishPartial(got, f.vnet); !bytes.Equal(fin, want) {
		t.Errorf("completed TCP checksum % x, want % x", fin[36:38], want[36:38])
	}
}

func TestCoalesceKeepsApart(t *testing.T) {
	udp := udpPacket(t, testClient, netip.AddrPortFrom(testVIP, 80), []byte("datagram"))
	for _, tc := range []struct {
		name   string
		mutate func(s []seg) // of segRun(flowA, 1000, 1000, 1000)
		extra  [][]byte      // packets put between the two segments
		// wantVnetFlags of each lone packet
		want []uint8
	}{
		{"gap in seq", func(s []seg) { s[1].seq++ }, nil, []uint8{2, 2}},
		{"seq before", func(s []seg) { s[1].seq -= 2000 }, nil, []uint8{2, 2}},
		{"different flow", func(s []seg) { s[1].src = flowB[0] }, nil, []uint8{2, 2}},
		{"FIN", func(s []seg) { s[1].fin = true }, nil, []uint8{2, 2}},
		{"SYN", func(s []seg) { s[0].syn = true }, nil, []uint8{2, 2}},
		{"no ACK", func(s []seg) { s[1].noACK = true }, nil, []uint8{2, 2}},
		{"PSH on the first", func(s []seg) { s[0].psh = true }, nil, []uint8{2, 2}},
		{"timestamps differ", func(s []seg) { s[1].tsval++ }, nil, []uint8{2, 2}},
		{"options only on one", func(s []seg) { s[1].tsval = 0 }, nil, []uint8{2, 2}},
		{"ack differs", func(s []seg) { s[1].ack++ }, nil, []uint8{2, 2}},
		{"TTL differs", func(s []seg) { s[1].ttl = 63 }, nil, []uint8{2, 2}},
		{"TOS differs", func(s []seg) { s[1].tos = 2 }, nil, []uint8{2, 2}},
		{"IPv4 options", func(s []seg) { s[0].ipOpts = true; s[1].ipOpts = true }, nil, []uint8{2, 2}},
		{"IP fragment", func(s []seg) { s[1].mf = true }, nil, []uint8{2, 0}},
		{"bad TCP checksum", func(s []seg) { s[1].corruptTCPChksum = true }, nil, []uint8{2, 0}},
		{"bad first checksum", func(s []seg) { s[0].corruptTCPChksum = true }, nil, []uint8{0, 2}},
		{"larger after smaller", func(s []seg) { s[0].payload = s[0].payload[:500]; s[1].seq -= 500 }, nil, []uint8{2, 2}},
		{"empty payload", func(s []seg) { s[1].payload = nil }, nil, []uint8{2, 2}},
		{"pure ACK of the flow between", func(s []seg) {}, [][]byte{tcpSeg(t, seg{src: flowA[0], dst: flowA[1], seq: 2000, ack: 5000, tsval: 100})},
			[]uint8{2, 2, 2}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			segs := segRun(flowA, 1000, 1000, 1000)
			tc.mutate(segs)
			pkts := build(t, segs)
			pkts = append(pkts[:1], append(tc.extra, pkts[1:]...)...)
			in := cloneAll(pkts)
			frames := newCoalescer(len(pkts)).coalesce(pkts)
			if len(frames) != len(pkts) {
				t.Fatalf("%d frames for %d packets, want each alone", len(frames), len(pkts))
			}
			for i, f := range frames {
				if f.head != i || f.segs != 1 || f.vnet != (header.Offload{Flags: tc.want[i]}) {
					t.Errorf("frame %d: head %d, %d segments, vnet %+v; want packet %d alone with flags %d", i, f.head, f.segs, f.vnet, i, tc.want[i])
				}
				if !bytes.Equal(pkts[i], in[i]) {
					t.Errorf("lone packet %d was changed", i)
				}
			}
		})
	}
	t.Run("not TCP", func(t *testing.T) {
		pkts := [][]byte{udp, udp}
		for i, f := range newCoalescer(2).coalesce(pkts) {
			if f.segs != 1 || f.vnet != (header.Offload{}) {
				t.Errorf("frame %d: %d segments, vnet %+v; want alone, zero vnet", i, f.segs, f.vnet)
			}
		}
	})
}

func cloneAll(pkts [][]byte) [][]byte {
	out := make([][]byte, len(pkts))
	for i, p := range pkts {
		out[i] = bytes.Clone(p)
	}
	return out
}

// heads returns, per frame, the batch indices of its packets.
func heads(c *coalescer, frames []groFrame) [][]int {
	var out [][]int
	for _, f := range frames {
		var idx []int
		for j := f.head; j >= 0; j = c.next[j] {
			idx = append(idx, j)
		}
		out = append(out, idx)
	}
	return out
}

func TestCoalesceGroups(t *testing.T) {
	a := segRun(flowA, 1000, 1000, 1000, 1000, 1000)
	b := segRun(flowB, 7000, 1000, 1000)
	udp := udpPacket(t, testClient, netip.AddrPortFrom(testVIP, 80), []byte("x"))
	for _, tc := range []struct {
		name string
		pkts [][]byte
		want [][]int
	}{
		{"interleaved flows keep order within each", append(build(t, []seg{a[0], b[0], a[1], b[1], a[2]}), udp),
			[][]int{{0, 2, 4}, {1, 3}, {5}}},
		{"a short segment ends the frame", build(t, []seg{a[0], func() seg { s := a[1]; s.payload = s.payload[:500]; return s }(),
			func() seg { s := a[2]; s.seq -= 500; return s }()}),
			[][]int{{0, 1}, {2}}},
		{"PSH ends the frame", build(t, []seg{a[0], func() seg { s := a[1]; s.psh = true; return s }(), a[2], a[3]}),
			[][]int{{0, 1}, {2, 3}}},
		{"a later fragment closes every flow", append(build(t, []seg{a[0], b[0]}), append([][]byte{laterFragment(t)}, build(t, []seg{a[1], b[1]})...)...),
			[][]int{{0}, {1}, {2}, {3}, {4}}},
		{"UDP closes nothing", append(build(t, []seg{a[0]}), append([][]byte{udp}, build(t, []seg{a[1]})...)...),
			[][]int{{0, 2}, {1}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newCoalescer(len(tc.pkts))
			got := heads(c, c.coalesce(tc.pkts))
			if fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Fatalf("frames %v, want %v", got, tc.want)
			}
		})
	}
}

// laterFragment is a non-first fragment of a TCP packet of flowA: no ports.
func laterFragment(t testing.TB) []byte {
	p := tcpSeg(t, seg{src: flowA[0], dst: flowA[1], payload: []byte("tail")})
	binary.BigEndian.PutUint16(p[ipv4FragOff:], 100) // offset 800 bytes
	binary.BigEndian.PutUint16(p[ipv4ChecksumOff:], 0)
	binary.BigEndian.PutUint16(p[ipv4ChecksumOff:], ^naiveSum(p[:20]))
	return p
}

func TestCoalesceFrameLimit(t *testing.T) {
	sizes := make([]int, 50)
	for i := range sizes {
		sizes[i] = 1448
	}
	pkts := build(t, segRun(flowA, 1, sizes...))
	c := newCoalescer(len(pkts))
	frames := c.coalesce(pkts)
	const perFrame = (ipv4MaxTotalLen - 52) / 1448 // 45
	if len(frames) != 2 || frames[0].segs != perFrame || frames[1].segs != 50-perFrame {
		t.Fatalf("%d frames (%v), want %d and %d segments", len(frames), heads(c, frames), perFrame, 50-perFrame)
	}
	for _, f := range frames {
		if b := assemble(c, pkts, f); len(b) > ipv4MaxTotalLen || int(binary.BigEndian.Uint16(b[2:])) != len(b) {
			t.Errorf("frame of %d bytes, total length %d", len(b), binary.BigEndian.Uint16(b[2:]))
		}
	}
}

func TestCoalesceNoAllocs(t *testing.T) {
	segs := segRun(flowA, 1, 1000, 1000, 1000, 1000)
	orig := append(build(t, segs), build(t, segRun(flowB, 1, 1000, 1000))...)
	pkts := cloneAll(orig)
	c := newCoalescer(len(pkts))
	n := testing.AllocsPerRun(100, func() {
		for i := range pkts {
			copy(pkts[i], orig[i])
		}
		c.coalesce(pkts)
	})
	if n != 0 {
		t.Fatalf("coalesce allocates %v times per batch", n)
	}
}

// FuzzCoalesce drives the coalescer with batches generated from a script
// (four bytes per packet: flow, payload size, what to change, payload
// seed) and checks that every packet leaves exactly once, that the
// packets of each flow leave in order, that lone packets are unchanged,
// and that each merged frame is a valid GSO frame whose payload is the
// segments' payloads in order.
func FuzzCoalesce(f *testing.F) {
	f.Add([]byte{0, 10, 0, 1, 0, 10, 0, 2, 0, 10, 0, 3, 0, 5, 2, 4})               // one flow, a run ending with PSH
	f.Add([]byte{0, 10, 0, 1, 1, 10, 0, 2, 0, 10, 0, 3, 1, 10, 0, 4, 2, 3, 8, 0})  // two flows interleaved, UDP
	f.Add([]byte{0, 10, 0, 1, 0, 10, 1, 2, 0, 10, 5, 3, 0, 10, 9, 4, 0, 10, 3, 5}) // gap, bad checksum, fragment, FIN
	f.Add([]byte{0, 200, 0, 0, 0, 200, 0, 0, 0, 200, 0, 0, 0, 200, 0, 0})          // near the 64 KiB limit
	f.Add([]byte{3, 1, 10, 0x45, 3, 1, 10, 0x46})                                  // raw bytes
	f.Fuzz(func(t *testing.T, script []byte) {
		if len(script) > 4*decapBatchSize {
			script = script[:4*decapBatchSize]
		}
		var pkts [][]byte
		var seqs [4]uint32
		for i := 0; i+4 <= len(script); i += 4 {
			flow, size, op, fill := script[i]&3, int(script[i+1])*300/255+1, script[i+2]%13, script[i+3]
			if op == 10 { // raw bytes from the script
				pkts = append(pkts, bytes.Clone(script[i:]))
				continue
			}
			src := netip.AddrPortFrom(testClient.Addr(), 40000+uint16(flow))
			s := seg{src: src, dst: flowA[1], seq: seqs[flow], ack: 1, tsval: 9, payload: bytes.Repeat([]byte{fill}, size)}
			if size > 250 {
				s.payload = bytes.Repeat([]byte{fill}, 1448)
			}
			switch op {
			case 1:
				s.seq += 7
			case 2:
				s.psh = true
			case 3:
				s.fin = true
			case 4:
				s.syn = true
			case 5:
				s.corruptTCPChksum = true
			case 6:
				s.tsval++
			case 7:
				s.ack++
			case 8:
				pkts = append(pkts, udpPacket(t, src, flowA[1], s.payload))
				continue
			case 9:
				s.mf = true
			case 11:
				s.ipOpts = true
			case 12:
				s.ttl = 1
			}
			seqs[flow] = s.seq + uint32(len(s.payload))
			pkts = append(pkts, tcpSeg(t, s))
		}
		in := cloneAll(pkts)
		c := newCoalescer(len(pkts))
		frames := c.coalesce(pkts)

		seen := make([]bool, len(pkts))
		last := map[flowKey]int{}
		for _, f := range frames {
			prev := -1
			var idx []int
			for j := f.head; j >= 0; j = c.next[j] {
				if seen[j] || j <= prev {
					t.Fatalf("packet %d out of order or twice in a frame (%v)", j, heads(c, frames))
				}
				seen[j], prev = true, j
				idx = append(idx, j)
				if k, ok := testFlowKey(in[j]); ok {
					if l, ok := last[k]; ok && l > j {
						t.Fatalf("packet %d of a flow leaves after packet %d", j, l)
					}
					last[k] = j
				}
			}
			if f.segs != len(idx) {
				t.Fatalf("frame says %d segments, has %d", f.segs, len(idx))
			}
			out := assemble(c, pkts, f)
			if f.segs == 1 {
				if !bytes.Equal(out, in[f.head]) {
					t.Fatalf("lone packet %d changed", f.head)
				}
				if f.vnet.Flags == header.OffloadDataValid && !testTCPValid(in[f.head]) {
					t.Fatalf("packet %d marked valid with a bad checksum", f.head)
				} else if f.vnet.Flags&^header.OffloadDataValid != 0 || f.vnet.GSOType != 0 {
					t.Fatalf("lone packet with vnet %+v", f.vnet)
				}
				continue
			}
			checkFrame(t, f, out, in, idx)
		}
		for j, ok := range seen {
			if !ok {
				t.Fatalf("packet %d is in no frame", j)
			}
		}
	})
}

// checkFrame checks a merged frame against the packets it came from.
func checkFrame(t *testing.T, f groFrame, out []byte, in [][]byte, idx []int) {
	t.Helper()
	v := f.vnet
	hl := int(v.HdrLen)
	if v.Flags != header.OffloadNeedsCsum || v.GSOType != header.GSOTCPv4 || v.CsumStart != 20 || v.CsumOffset != 16 ||
		hl != 20+int(in[f.head][32]>>4)*4 {
		t.Fatalf("vnet %+v", v)
	}
	if int(binary.BigEndian.Uint16(out[2:])) != len(out) || len(out) > ipv4MaxTotalLen || naiveSum(out[:20]) != 0xffff {
		t.Fatalf("IPv4 header of the frame: total length %d for %d bytes, checksum sum %#x", binary.BigEndian.Uint16(out[2:]), len(out), naiveSum(out[:20]))
	}
	if !testTCPValid(finishPartial(out, v)) {
		t.Fatal("the completed TCP checksum does not verify")
	}
	var payload []byte
	for n, j := range idx {
		p := in[j][hl:]
		if len(p) > int(v.GSOSize) || (n < len(idx)-1 && len(p) != int(v.GSOSize)) {
			t.Fatalf("segment %d has %d bytes with gso_size %d", n, len(p), v.GSOSize)
		}
		if !testTCPValid(in[j]) {
			t.Fatalf("packet %d with a bad checksum was merged", j)
		}
		if n > 0 {
			// Only the ID, total length and checksum may differ.
			a, b := bytes.Clone(in[j][:20]), bytes.Clone(in[f.head][:20])
			for _, o := range []int{2, 3, 4, 5, 10, 11} {
				a[o], b[o] = 0, 0
			}
			if !bytes.Equal(a, b) {
				t.Fatalf("packet %d merged with a different IPv4 header", j)
			}
		}
		payload = append(payload, p...)
	}
	if !bytes.Equal(out[hl:], payload) {
		t.Fatal("the frame's payload is not the segments' payloads in order")
	}
	if !bytes.Equal(out[20:20+13], in[f.head][20:20+13]) {
		t.Fatal("the head's TCP header changed before the flags")
	}
}

// testFlowKey is the flow of a TCP/IPv4 packet whose ports can be read.
func testFlowKey(p []byte) (flowKey, bool) {
	if len(p) < 20 || p[0]>>4 != 4 || p[9] != protoTCP || int(binary.BigEndian.Uint16(p[2:])) != len(p) {
		return flowKey{}, false
	}
	ihl := int(p[0]&0xf) * 4
	if ihl < 20 || len(p) < ihl+4 || binary.BigEndian.Uint16(p[6:])&0x1fff != 0 {
		return flowKey{}, false
	}
	var k flowKey
	copy(k[:8], p[12:20])
	copy(k[8:], p[ihl:ihl+4])
	return k, true
}

// testTCPValid checks the IPv4 header and TCP checksums of p with
// gopacket's view and naiveSum.
func testTCPValid(p []byte) bool {
	if len(p) < 20 {
		return false
	}
	ihl := int(p[0]&0xf) * 4
	if ihl < 20 || len(p) < ihl+20 || naiveSum(p[:ihl]) != 0xffff {
		return false
	}
	ph := make([]byte, 12, 12+len(p))
	copy(ph, p[12:20])
	ph[9] = protoTCP
	binary.BigEndian.PutUint16(ph[10:], uint16(len(p)-ihl))
	return naiveSum(append(ph, p[ihl:]...)) == 0xffff
}
