package dataplane

import (
	"bytes"
	"net/netip"
	"sync/atomic"
	"testing"

	"github.com/gvs-lb/gvs/dataplane/header"
)

// discardLink is a Link that sends nowhere and receives nothing.
type discardLink struct{}

func (discardLink) Read([][]byte, []int, []header.Offload, int) (int, error) { return 0, nil }
func (discardLink) Write(b [][]byte, _ []header.Offload) (int, error)        { return len(b), nil }

// captureWorker is a worker on a link that discards, with a capture slot
// as a Dataplane gives it.
func captureWorker(tbl *Table) (*Worker, *atomic.Pointer[Capture]) {
	var ptr atomic.Pointer[Table]
	ptr.Store(tbl)
	w := newWorker(0, 1, discardLink{}, &ptr, 1024)
	slot := new(atomic.Pointer[Capture])
	w.capture = slot
	return w, slot
}

// runBatch puts frames into w's buffers and handles them as one batch.
func runBatch(w *Worker, tbl *Table, frames ...[]byte) {
	for i, f := range frames {
		w.sizes[i] = copy(w.bufs[i][Headroom:], f)
	}
	w.batch(tbl, len(frames), 1)
}

func drain(c *Capture) []CapturedFrame {
	var out []CapturedFrame
	for {
		select {
		case f := <-c.Frames():
			out = append(out, f)
		default:
			return out
		}
	}
}

// TestCapture: a capture records the frames its filter selects, as they
// came in and as they went out, with the verdict, the service and the
// real; the rest pass unrecorded.
func TestCapture(t *testing.T) {
	tbl := testTable(ForwardNAT, header.ProtoTCP)
	w, slot := captureWorker(tbl)
	syn := client(header.ProtoTCP)
	syn.syn, syn.payload = true, nil
	other := client(header.ProtoUDP) // to no UDP service
	broken := []byte{1, 2, 3}
	svc := ServiceKey{Proto: header.ProtoTCP, VIP: ipVIP.As4(), Port: vport}

	for _, tc := range []struct {
		name   string
		filter CaptureFilter
		want   []Verdict
	}{
		{"everything", CaptureFilter{}, []Verdict{VerdictForward, VerdictNoService, VerdictMalformed}},
		{"tcp", CaptureFilter{Proto: header.ProtoTCP}, []Verdict{VerdictForward}},
		{"service", CaptureFilter{Service: &svc}, []Verdict{VerdictForward}},
		{"real", CaptureFilter{Real: netip.AddrPortFrom(ipRS1, 0)}, []Verdict{VerdictForward}},
		{"another real", CaptureFilter{Real: netip.AddrPortFrom(ipRS1, 1)}, nil},
		{"client prefix", CaptureFilter{Host: netip.MustParsePrefix("10.10.0.0/24")}, []Verdict{VerdictForward, VerdictNoService}},
		{"port", CaptureFilter{Port: 53}, nil},
		{"verdicts", CaptureFilter{Verdicts: 1<<VerdictNoService | 1<<VerdictMalformed}, []Verdict{VerdictNoService, VerdictMalformed}},
	} {
		c := &Capture{filter: tc.filter, frames: make(chan CapturedFrame, 16)}
		slot.Store(c)
		syn.sport++ // a new connection each time
		in := syn.bytes(t)
		runBatch(w, tbl, in, other.bytes(t), broken)
		slot.Store(nil)
		got := drain(c)
		if len(got) != len(tc.want) {
			t.Fatalf("%s: %d frames, want %d", tc.name, len(got), len(tc.want))
		}
		for i, f := range got {
			if f.Verdict != tc.want[i] {
				t.Errorf("%s: frame %d verdict %v, want %v", tc.name, i, f.Verdict, tc.want[i])
			}
			if f.Verdict != VerdictForward {
				if f.Out != nil || f.Real.IsValid() {
					t.Errorf("%s: dropped frame %d has output or real: %+v", tc.name, i, f)
				}
				continue
			}
			if !bytes.Equal(f.In, in) || f.Real != netip.AddrPortFrom(ipRS1, natPort) || f.Forward != ForwardNAT || f.Service != svc {
				t.Errorf("%s: forwarded frame %+v", tc.name, f)
			}
			// The output is the NAT rewrite: to the real, from the director.
			if eth := header.Ethernet(f.Out); eth.Destination() != macRS1 || header.IPv4(f.Out[header.EthernetLen:]).Destination() != ipRS1.As4() {
				t.Errorf("%s: output frame is not the rewrite: % x", tc.name, f.Out[:34])
			}
		}
		if c.Matched() != uint64(len(tc.want)) {
			t.Errorf("%s: Matched %d", tc.name, c.Matched())
		}
	}
}

// TestCaptureBounded: a full queue drops and counts; the limit caps what
// is recorded; StartCapture refuses a second capture.
func TestCaptureBounded(t *testing.T) {
	tbl := testTable(ForwardDR, header.ProtoUDP)
	d, err := New([]Link{&fakeLink{}}, 1024)
	if err != nil {
		t.Fatal(err)
	}
	d.Publish(tbl)
	w := d.workers[0]
	c, err := d.StartCapture(CaptureFilter{}, 5, 2)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d.StartCapture(CaptureFilter{}, 0, 1); err != ErrCaptureRunning {
		t.Fatalf("second capture: %v", err)
	}
	f := client(header.ProtoUDP).bytes(t)
	runBatch(w, tbl, f, f, f, f, f, f, f, f)
	if got := len(drain(c)); got != 2 || c.Matched() != 5 || c.Dropped() != 3 {
		t.Fatalf("queue of 2, limit 5, 8 frames: %d recorded, matched %d, dropped %d", got, c.Matched(), c.Dropped())
	}
	d.StopCapture(c)
	runBatch(w, tbl, f)
	if len(drain(c)) != 0 {
		t.Fatal("a stopped capture recorded a frame")
	}
	if _, err := d.StartCapture(CaptureFilter{}, 0, 1); err != nil {
		t.Fatalf("capture after stop: %v", err)
	}
}

// TestBatchNoCaptureAllocs: without a capture, a batch of established
// traffic allocates nothing.
func TestBatchNoCaptureAllocs(t *testing.T) {
	tbl := testTable(ForwardDR, header.ProtoUDP)
	w, _ := captureWorker(tbl)
	f := client(header.ProtoUDP).bytes(t)
	runBatch(w, tbl, f)
	if n := testing.AllocsPerRun(100, func() { runBatch(w, tbl, f, f, f, f) }); n != 0 {
		t.Fatalf("%v allocations a batch", n)
	}
}
