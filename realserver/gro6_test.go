package realserver

import (
	"bytes"
	"encoding/binary"
	"net/netip"
	"slices"
	"testing"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gvs-lb/gvs/dataplane/header"
)

var flowA6 = [2]netip.AddrPort{testClient6, netip.AddrPortFrom(testVIP6, 80)}

// seg6 describes a TCP/IPv6 segment for tcpSeg6, encoded with gopacket.
type seg6 struct {
	seg
	flowLabel uint32
	hopLimit  uint8
	destOpts  bool // a destination options header before TCP
}

func tcpSeg6(t testing.TB, s seg6) []byte {
	t.Helper()
	if s.hopLimit == 0 {
		s.hopLimit = 64
	}
	ip := &layers.IPv6{Version: 6, TrafficClass: s.tos, FlowLabel: s.flowLabel, HopLimit: s.hopLimit,
		NextHeader: layers.IPProtocolTCP, SrcIP: s.src.Addr().AsSlice(), DstIP: s.dst.Addr().AsSlice()}
	tcp := &layers.TCP{SrcPort: layers.TCPPort(s.src.Port()), DstPort: layers.TCPPort(s.dst.Port()),
		Seq: s.seq, Ack: s.ack, ACK: !s.noACK, PSH: s.psh, FIN: s.fin, Window: 502}
	if err := tcp.SetNetworkLayerForChecksum(ip); err != nil {
		t.Fatal(err)
	}
	ls := []gopacket.SerializableLayer{ip}
	if s.destOpts {
		ip.NextHeader = layers.IPProtocolIPv6Destination
		d := &layers.IPv6Destination{Options: []*layers.IPv6DestinationOption{{OptionType: 0x1e, OptionLength: 4, OptionData: []byte{1, 2, 3, 4}}}}
		d.NextHeader = layers.IPProtocolTCP
		ls = append(ls, d)
	}
	ls = append(ls, tcp, gopacket.Payload(s.payload))
	p := serialize(t, ls...)
	if s.corruptTCPChksum {
		p[ipv6HdrLen+tcpChecksumOff] ^= 0x5a
	}
	return p
}

func segRun6(f [2]netip.AddrPort, seq uint32, sizes ...int) []seg6 {
	var out []seg6
	for _, s := range segRun(f, seq, sizes...) {
		s.tsval = 0
		out = append(out, seg6{seg: s, flowLabel: 0xabcde})
	}
	return out
}

func build6(t testing.TB, segs []seg6) [][]byte {
	var out [][]byte
	for _, s := range segs {
		out = append(out, tcpSeg6(t, s))
	}
	return out
}

// tcpValid6 checks the TCP checksum of an IPv6 packet without extension
// headers with naiveSum.
func tcpValid6(p []byte) bool {
	ph := make([]byte, 40, 40+len(p))
	copy(ph, p[8:40])
	binary.BigEndian.PutUint32(ph[32:], uint32(len(p)-40))
	ph[39] = protoTCP
	return naiveSum(append(ph, p[40:]...)) == 0xffff
}

// TestCoalesce6: consecutive TCP/IPv6 segments of one flow become one
// TCPv6 GSO frame (payload length, PSH and the partial checksum set for
// the kernel), beside an IPv4 flow merged as before; a segment with a
// different flow label or hop limit, or a bad checksum, is not merged; a
// segment behind an extension header closes every open frame, so nothing
// overtakes it.
func TestCoalesce6(t *testing.T) {
	a := segRun6(flowA6, 1000, 1000, 1000, 1000, 600)
	a[3].psh = true
	v4 := segRun(flowA, 5000, 1000, 1000)
	pkts := [][]byte{tcpSeg6(t, a[0]), tcpSeg(t, v4[0]), tcpSeg6(t, a[1]), tcpSeg(t, v4[1]), tcpSeg6(t, a[2]), tcpSeg6(t, a[3])}
	in := cloneAll(pkts)
	c := newCoalescer(len(pkts))
	frames := c.coalesce(pkts)
	if got := heads(c, frames); !slices.EqualFunc(got, [][]int{{0, 2, 4, 5}, {1, 3}}, slices.Equal) {
		t.Fatalf("frames %v, want [[0 2 4 5] [1 3]]", got)
	}
	f := frames[0]
	v := f.vnet
	if v.Flags != header.OffloadNeedsCsum || v.GSOType != header.GSOTCPv6 || v.CsumStart != 40 || v.CsumOffset != 16 ||
		v.HdrLen != 60 || v.GSOSize != 1000 {
		t.Fatalf("vnet %+v", v)
	}
	out := assemble(c, pkts, f)
	if int(binary.BigEndian.Uint16(out[4:]))+40 != len(out) || len(out) != 60+3600 {
		t.Fatalf("payload length %d for a frame of %d bytes", binary.BigEndian.Uint16(out[4:]), len(out))
	}
	if !tcpValid6(finishPartial(out, v)) {
		t.Fatal("the completed TCP checksum does not verify")
	}
	if out[40+tcpFlagsOff]&header.TCPFlagPsh == 0 {
		t.Error("PSH of the last segment not on the frame")
	}
	var payload []byte
	for _, j := range []int{0, 2, 4, 5} {
		payload = append(payload, in[j][60:]...)
	}
	if !bytes.Equal(out[60:], payload) || !bytes.Equal(out[:4], in[0][:4]) || !bytes.Equal(out[6:40], in[0][6:40]) {
		t.Fatal("the frame is not the head's headers and the segments' payloads in order")
	}
	if frames[1].vnet.GSOType != header.GSOTCPv4 {
		t.Errorf("IPv4 frame beside: vnet %+v", frames[1].vnet)
	}

	for _, tc := range []struct {
		name string
		set  func(s *seg6) // on the second segment on
		want [][]int
	}{
		{"other flow label", func(s *seg6) { s.flowLabel = 1 }, [][]int{{0}, {1, 2}}},
		{"other hop limit", func(s *seg6) { s.hopLimit = 3 }, [][]int{{0}, {1, 2}}},
		{"bad checksum", func(s *seg6) { s.corruptTCPChksum = true }, [][]int{{0}, {1}, {2}}},
		{"destination options", func(s *seg6) {}, [][]int{{0}, {1}, {2, 3}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			segs := segRun6(flowA6, 1000, 1000, 1000, 1000)
			for i := range segs[1:] {
				tc.set(&segs[1+i])
			}
			pkts := build6(t, segs)
			if tc.name == "destination options" {
				// An unrelated flow's segment behind an extension header
				// between two of flow A: it closes A's open frame too.
				other := segRun6([2]netip.AddrPort{netip.MustParseAddrPort("[2001:db8:100::8]:1"), flowA6[1]}, 1, 1000)
				other[0].destOpts = true
				pkts = slices.Insert(pkts, 1, tcpSeg6(t, other[0]))
			}
			c := newCoalescer(len(pkts))
			if got := heads(c, c.coalesce(pkts)); !slices.EqualFunc(got, tc.want, slices.Equal) {
				t.Fatalf("frames %v, want %v", got, tc.want)
			}
		})
	}
}

// TestProcess6Coalesces: through process, IPv6-in-IPv6 payloads of one
// TCP flow leave as one GSO write, valid once the kernel finishes it.
func TestProcess6Coalesces(t *testing.T) {
	b := newDecapBatch6(testVIPs6(), true)
	pkts := build6(t, segRun6(flowA6, 1, 1000, 1000, 1000))
	for i, p := range pkts {
		b.sizes[i] = copy(b.bufs[i], p)
	}
	w := &recordWriter{}
	b.process(len(pkts), w)
	if len(w.frames) != 1 || w.parts[0] != 3 || w.vnets[0].GSOType != header.GSOTCPv6 {
		t.Fatalf("%d frames (parts %v, vnets %+v), want one GSO frame of 3 parts", len(w.frames), w.parts, w.vnets)
	}
	if !tcpValid6(finishPartial(w.frames[0], w.vnets[0])) {
		t.Fatal("the frame's checksum does not verify once finished")
	}
	if s := &b.stats; s.coalescedFrames.Load() != 1 || s.coalescedSegments.Load() != 3 || s.decapsulated.Load() != 3 {
		t.Errorf("counters: frames %d segments %d decapsulated %d", s.coalescedFrames.Load(), s.coalescedSegments.Load(), s.decapsulated.Load())
	}
	cw := &countWriter{}
	allocs := testing.AllocsPerRun(100, func() {
		for i, p := range pkts {
			copy(b.bufs[i], p) // coalescing rewrote the head
		}
		b.process(len(pkts), cw)
	})
	if allocs != 0 {
		t.Errorf("process allocates %v times per batch", allocs)
	}
}
