package realserver

import (
	"bytes"
	"errors"
	"net/netip"
	"testing"

	"github.com/gvs-lb/gvs/dataplane/header"
)

// recordWriter is a tunWriter that keeps every frame, or fails.
type recordWriter struct {
	frames [][]byte
	vnets  []header.Offload
	parts  []int
	fail   bool
}

func (w *recordWriter) writeFrame(vnet header.Offload, parts [][]byte) error {
	if w.fail {
		return errors.New("write failed")
	}
	w.frames = append(w.frames, bytes.Join(parts, nil))
	w.vnets = append(w.vnets, vnet)
	w.parts = append(w.parts, len(parts))
	return nil
}

// countWriter is a tunWriter that only counts bytes.
type countWriter struct{ bytes int }

func (w *countWriter) writeFrame(_ header.Offload, parts [][]byte) error {
	for _, p := range parts {
		w.bytes += len(p)
	}
	return nil
}

// testBatch returns a batch loaded with these outer packets: a run of four
// segments of flow A interleaved with two of flow B, then a UDP packet to
// the VIP, one to another address and a malformed one.
func testBatch(t testing.TB, coalesce bool) (b *decapBatch, n int, inner [][]byte) {
	local, vips := testSets()
	b = newDecapBatch(vips, coalesce)
	b.local = local
	a, bb := segRun(flowA, 1, 1000, 1000, 1000, 1000), segRun(flowB, 1, 1000, 1000)
	inner = build(t, []seg{a[0], bb[0], a[1], a[2], bb[1], a[3]})
	inner = append(inner, udpPacket(t, testClient, netip.AddrPortFrom(testVIP, 53), []byte("q")))
	outer := make([][]byte, 0, len(inner)+2)
	for _, p := range inner {
		outer = append(outer, ipipPacket(t, testDir, testRIP, p))
	}
	outer = append(outer,
		ipipPacket(t, testDir, testRIP, udpPacket(t, testClient, netip.MustParseAddrPort("10.203.0.200:53"), []byte("q"))),
		[]byte("not IPv4 at all, and long enough for a header"))
	for i, p := range outer {
		b.sizes[i] = copy(b.bufs[i], p)
	}
	return b, len(outer), inner
}

func TestProcessCoalesces(t *testing.T) {
	b, n, inner := testBatch(t, true)
	var w recordWriter
	b.process(n, &w)
	// Frames: A0+A1+A2+A3, B0+B1, the UDP packet.
	if len(w.frames) != 3 || w.parts[0] != 4 || w.parts[1] != 2 || w.parts[2] != 1 {
		t.Fatalf("%d frames with %v parts, want 3 with 4, 2, 1", len(w.frames), w.parts)
	}
	if w.vnets[0].GSOType != header.GSOTCPv4 || w.vnets[1].GSOType != header.GSOTCPv4 || w.vnets[2] != (header.Offload{}) {
		t.Errorf("vnet headers %+v", w.vnets)
	}
	if !bytes.Equal(w.frames[2], inner[6]) {
		t.Error("the UDP packet changed")
	}
	for _, fr := range w.frames[:2] {
		if !testTCPValid(finishPartial(fr, header.Offload{CsumStart: 20, CsumOffset: 16})) {
			t.Error("a merged frame's completed checksum does not verify")
		}
	}
	s := &b.stats
	for _, c := range []struct {
		name      string
		got, want uint64
	}{
		{"decapsulated", s.decapsulated.Load(), 7},
		{"coalesced frames", s.coalescedFrames.Load(), 2},
		{"coalesced segments", s.coalescedSegments.Load(), 6},
		{"not VIP", s.notVIP.Load(), 1},
		{"malformed", s.bad.Load(), 1},
		{"write errors", s.writeErrors.Load(), 0},
	} {
		if c.got != c.want {
			t.Errorf("%s = %d, want %d", c.name, c.got, c.want)
		}
	}
}

func TestProcessWithoutOffloads(t *testing.T) {
	b, n, inner := testBatch(t, false)
	var w recordWriter
	b.process(n, &w)
	if len(w.frames) != len(inner) {
		t.Fatalf("%d writes, want one per inner packet (%d)", len(w.frames), len(inner))
	}
	for i, fr := range w.frames {
		if !bytes.Equal(fr, inner[i]) || w.vnets[i] != (header.Offload{}) || w.parts[i] != 1 {
			t.Errorf("write %d is not inner packet %d as it came", i, i)
		}
	}
	if d, f := b.stats.decapsulated.Load(), b.stats.coalescedFrames.Load(); d != 7 || f != 0 {
		t.Errorf("decapsulated %d, coalesced frames %d; want 7, 0", d, f)
	}
}

func TestProcessWriteErrors(t *testing.T) {
	b, n, _ := testBatch(t, true)
	b.process(n, &recordWriter{fail: true})
	if e, d := b.stats.writeErrors.Load(), b.stats.decapsulated.Load(); e != 7 || d != 0 {
		t.Errorf("write errors %d, decapsulated %d; want 7 (every inner packet), 0", e, d)
	}
}

func TestProcessRefreshesLocal(t *testing.T) {
	b, n, _ := testBatch(t, false)
	b.local = addrSet{}
	calls := 0
	b.refresh = func() (addrSet, error) { calls++; l, _ := testSets(); return l, nil }
	b.process(n, &countWriter{})
	if calls != 1 || b.stats.decapsulated.Load() != 7 || b.stats.notLocal.Load() != 0 {
		t.Fatalf("refresh called %d times, decapsulated %d, not local %d; want 1, 7, 0",
			calls, b.stats.decapsulated.Load(), b.stats.notLocal.Load())
	}
}

// TestProcessNoAllocs: a batch costs no allocation, with and without
// coalescing.
func TestProcessNoAllocs(t *testing.T) {
	for _, coalesce := range []bool{true, false} {
		b, n, _ := testBatch(t, coalesce)
		orig := make([][]byte, n)
		for i := range orig {
			orig[i] = bytes.Clone(b.bufs[i][:b.sizes[i]])
		}
		w := &countWriter{}
		allocs := testing.AllocsPerRun(100, func() {
			for i := range orig {
				copy(b.bufs[i], orig[i]) // coalescing rewrote the heads
			}
			b.process(n, w)
		})
		if allocs != 0 {
			t.Errorf("coalesce=%v: process allocates %v times per batch", coalesce, allocs)
		}
	}
}

func BenchmarkProcess(b *testing.B) {
	for _, coalesce := range []bool{true, false} {
		name := "plain"
		if coalesce {
			name = "coalesce"
		}
		b.Run(name, func(b *testing.B) {
			local, vips := testSets()
			batch := newDecapBatch(vips, coalesce)
			batch.local = local
			seq := make([]int, decapBatchSize)
			for i := range seq {
				seq[i] = 1448
			}
			for i, p := range build(b, segRun(flowA, 1, seq...)) {
				batch.sizes[i] = copy(batch.bufs[i], ipipPacket(b, testDir, testRIP, p))
			}
			orig := make([][]byte, decapBatchSize)
			for i := range orig {
				orig[i] = bytes.Clone(batch.bufs[i][:batch.sizes[i]])
			}
			w := &countWriter{}
			b.ReportAllocs()
			b.SetBytes(int64(decapBatchSize * 1448))
			for b.Loop() {
				for i := range orig {
					copy(batch.bufs[i], orig[i])
				}
				batch.process(decapBatchSize, w)
			}
			b.ReportMetric(float64(b.N)*decapBatchSize/b.Elapsed().Seconds(), "pps")
		})
	}
}
