package dataplane

import (
	"bytes"
	"net/netip"
	"testing"

	"github.com/gvs-lb/gvs/dataplane/header"
)

// TestCapture6: a capture records IPv6 frames as it does IPv4 ones: as
// they came in and went out, with the verdict, the IPv6 service and the
// real; the filters select them by protocol, IPv6 service, IPv6 real,
// IPv6 host prefix and port, and an IPv4 filter never selects an IPv6
// frame (nor an IPv6 one an IPv4 frame).
func TestCapture6(t *testing.T) {
	tbl := testTable6(ForwardNAT, header.ProtoTCP)
	w, slot := captureWorker(tbl)
	w.enableIPv6()
	syn6 := client6(header.ProtoTCP)
	syn6.syn, syn6.payload = true, nil
	syn4 := client(header.ProtoTCP)
	syn4.syn, syn4.payload = true, nil
	other6 := client6(header.ProtoUDP) // to no UDP service
	broken6 := client6(header.ProtoTCP)
	broken6.truncate = 8
	svc4 := ServiceKey{Proto: header.ProtoTCP, VIP: ipVIP.As4(), Port: vport}
	svc6 := ServiceKey6{Proto: header.ProtoTCP, VIP: ipVIP6.As16(), Port: vport}
	real6 := netip.AddrPortFrom(ipRS16, natPort)

	// The batch: the IPv6 SYN, the IPv4 one, a UDP frame to no service, a
	// malformed IPv6 frame.
	for _, tc := range []struct {
		name   string
		filter CaptureFilter
		want   []Verdict // of the frames recorded, in batch order
		v6     []bool    // whether each is the IPv6 SYN (else the IPv4 one, when forwarded)
	}{
		{"everything", CaptureFilter{}, []Verdict{VerdictForward, VerdictForward, VerdictNoService, VerdictMalformed}, []bool{true, false}},
		{"tcp", CaptureFilter{Proto: header.ProtoTCP}, []Verdict{VerdictForward, VerdictForward}, []bool{true, false}},
		{"IPv6 service", CaptureFilter{Service6: &svc6}, []Verdict{VerdictForward}, []bool{true}},
		{"IPv4 service", CaptureFilter{Service: &svc4}, []Verdict{VerdictForward}, []bool{false}},
		{"IPv6 real", CaptureFilter{Real: netip.AddrPortFrom(ipRS16, 0)}, []Verdict{VerdictForward}, []bool{true}},
		{"IPv6 real and port", CaptureFilter{Real: real6}, []Verdict{VerdictForward}, []bool{true}},
		{"another IPv6 real", CaptureFilter{Real: netip.AddrPortFrom(ipRS26, 0)}, nil, nil},
		{"IPv6 client prefix", CaptureFilter{Host: netip.MustParsePrefix("fd00:10::/64")}, []Verdict{VerdictForward, VerdictNoService}, []bool{true}},
		{"IPv4 client prefix", CaptureFilter{Host: netip.MustParsePrefix("10.10.0.0/24")}, []Verdict{VerdictForward}, []bool{false}},
		{"port", CaptureFilter{Port: 53}, nil, nil},
		{"verdicts", CaptureFilter{Verdicts: 1<<VerdictNoService | 1<<VerdictMalformed}, []Verdict{VerdictNoService, VerdictMalformed}, nil},
	} {
		c := &Capture{filter: tc.filter, frames: make(chan CapturedFrame, 16)}
		slot.Store(c)
		syn6.sport++ // new connections each time
		syn4.sport++
		in6, in4 := syn6.bytes(t), syn4.bytes(t)
		runBatch(w, tbl, in6, in4, other6.bytes(t), broken6.bytes(t))
		slot.Store(nil)
		got := drain(c)
		if len(got) != len(tc.want) {
			t.Fatalf("%s: %d frames, want %d: %+v", tc.name, len(got), len(tc.want), got)
		}
		fwd := 0
		for i, f := range got {
			if f.Verdict != tc.want[i] {
				t.Errorf("%s: frame %d verdict %v, want %v", tc.name, i, f.Verdict, tc.want[i])
			}
			if f.Verdict != VerdictForward {
				if f.Out != nil || f.Real.IsValid() || f.Service6 != (ServiceKey6{}) {
					t.Errorf("%s: dropped frame %d has output, real or service: %+v", tc.name, i, f)
				}
				continue
			}
			if !tc.v6[fwd] {
				fwd++
				if !bytes.Equal(f.In, in4) || f.Service != svc4 || f.Service6 != (ServiceKey6{}) {
					t.Errorf("%s: forwarded IPv4 frame %+v", tc.name, f)
				}
				continue
			}
			fwd++
			if !bytes.Equal(f.In, in6) || f.Real != real6 || f.Forward != ForwardNAT || f.Service6 != svc6 || f.Service != (ServiceKey{}) {
				t.Errorf("%s: forwarded IPv6 frame: real %v forward %v service %v service6 %v", tc.name, f.Real, f.Forward, f.Service, f.Service6)
			}
			// The output is the NAT rewrite: to the real's IPv6 address.
			verify6(t, f.Out)
			if eth := header.Ethernet(f.Out); eth.Destination() != macRS1 || header.IPv6(f.Out[header.EthernetLen:]).Destination() != ipRS16.As16() {
				t.Errorf("%s: output frame is not the rewrite: % x", tc.name, f.Out[:54])
			}
		}
		if c.Matched() != uint64(len(tc.want)) {
			t.Errorf("%s: Matched %d", tc.name, c.Matched())
		}
	}
}

// TestBatchNoCaptureAllocs6: without a capture, a batch of established
// IPv6 traffic allocates nothing.
func TestBatchNoCaptureAllocs6(t *testing.T) {
	tbl := testTable6(ForwardDR, header.ProtoUDP)
	w, _ := captureWorker(tbl)
	w.enableIPv6()
	f := client6(header.ProtoUDP).bytes(t)
	runBatch(w, tbl, f)
	if n := testing.AllocsPerRun(100, func() { runBatch(w, tbl, f, f, f, f) }); n != 0 {
		t.Fatalf("%v allocations a batch", n)
	}
}
