package realserver

import (
	"sync/atomic"
	"time"

	"github.com/gvs-lb/gvs/dataplane/header"
)

// decapBatchSize is how many outer packets one read takes from the raw
// socket. The director cuts each GSO frame of a bulk TCP stream into up
// to 45 MTU-sized segments that arrive back to back: 64 takes a whole
// frame's worth in one recvmmsg(2), so its segments can be merged again,
// while the buffers (64 × 64 KiB) stay a few MiB.
const decapBatchSize = 64

// localRefreshEvery bounds how often a packet to an address not in the
// local-address snapshot makes the decapsulator re-read the host's
// addresses: often enough to follow an address added at run time within a
// second, rarely enough that a flood of stray packets costs one netlink
// dump per second.
const localRefreshEvery = time.Second

// tunWriter writes frames to the TUN device: the TUN device itself
// (tunDevice) and fakes in tests.
type tunWriter interface {
	// writeFrame writes one frame made of parts, in order: the head
	// packet, then the payloads merged after it. A device without
	// virtio_net_hdr ignores vnet and gets one part.
	writeFrame(vnet header.Offload, parts [][]byte) error
}

// decapStats are the decapsulator's counters, read by another goroutine.
type decapStats struct {
	decapsulated, bad, notLocal, notVIP, writeErrors atomic.Uint64
	// coalescedFrames are GSO frames written, coalescedSegments the inner
	// packets merged into them.
	coalescedFrames, coalescedSegments atomic.Uint64
}

// decapBatch is the buffers and state of the decapsulation loop. The
// reader fills bufs[:n] and sizes[:n]; process does the rest.
type decapBatch struct {
	bufs  [][]byte // receive buffers of maxPacket bytes, allocated once
	sizes []int    // bytes received in each buffer

	vips  addrSet
	local addrSet // snapshot of the host's addresses
	// vips6 is set for a batch of IPv6-in-IPv6 payloads (newDecapBatch6):
	// process takes them with decapsulate6, and vips, local and refresh
	// are unused (the kernel delivered only packets to this host).
	vips6 addrSet6
	// refresh re-reads the host's addresses (nil: never). It is called
	// at most once per localRefreshEvery.
	refresh     func() (addrSet, error)
	lastRefresh time.Time

	// coalesce merges TCP segments into GSO frames; false without
	// virtio_net_hdr on the TUN device.
	coalesce bool
	gro      *coalescer
	inner    [][]byte // inner packets of the batch
	parts    [][]byte // one frame's parts for writeFrame

	stats decapStats
}

// newDecapBatch allocates the buffers of a batch of decapBatchSize.
func newDecapBatch(vips addrSet, coalesce bool) *decapBatch {
	b := &decapBatch{
		bufs:     make([][]byte, decapBatchSize),
		sizes:    make([]int, decapBatchSize),
		vips:     vips,
		local:    addrSet{},
		coalesce: coalesce,
		gro:      newCoalescer(decapBatchSize),
		inner:    make([][]byte, 0, decapBatchSize),
		parts:    make([][]byte, 0, decapBatchSize),
	}
	for i := range b.bufs {
		b.bufs[i] = make([]byte, maxPacket)
	}
	return b
}

// newDecapBatch6 is newDecapBatch for the payloads of IPv6-in-IPv6
// packets to the VIPs vips.
func newDecapBatch6(vips addrSet6, coalesce bool) *decapBatch {
	b := newDecapBatch(nil, coalesce)
	b.vips6 = vips
	return b
}

// process decapsulates the n packets received and writes their inner
// packets to w: merged into GSO frames when b.coalesce, else one write
// each. It allocates nothing (unless it refreshes the local addresses).
func (b *decapBatch) process(n int, w tunWriter) {
	var bad, notLocal, notVIP uint64
	b.inner = b.inner[:0]
	for i := range n {
		pkt := b.bufs[i][:b.sizes[i]]
		var inner []byte
		var v verdict
		if b.vips6 != nil {
			inner, v = decapsulate6(pkt, b.vips6)
		} else {
			inner, v = decapsulate(pkt, b.local, b.vips)
		}
		if v == verdictNotLocal && b.refresh != nil && time.Since(b.lastRefresh) >= localRefreshEvery {
			b.lastRefresh = time.Now()
			if local, err := b.refresh(); err == nil {
				b.local = local
				inner, v = decapsulate(pkt, b.local, b.vips)
			}
		}
		switch v {
		case verdictDecap:
			b.inner = append(b.inner, inner)
		case verdictNotLocal:
			notLocal++
		case verdictNotVIP:
			notVIP++
		default:
			bad++
		}
	}
	b.stats.bad.Add(bad)
	b.stats.notLocal.Add(notLocal)
	b.stats.notVIP.Add(notVIP)

	var done, failed, frames, segs uint64
	if !b.coalesce {
		for _, p := range b.inner {
			b.parts = append(b.parts[:0], p)
			if w.writeFrame(header.Offload{}, b.parts) != nil {
				failed++
				continue
			}
			done++
		}
	} else {
		for _, f := range b.gro.coalesce(b.inner) {
			b.parts = b.parts[:0]
			for j := f.head; j >= 0; j = b.gro.next[j] {
				p := b.inner[j]
				if j != f.head {
					p = p[f.hdrLen:]
				}
				b.parts = append(b.parts, p)
			}
			if w.writeFrame(f.vnet, b.parts) != nil {
				failed += uint64(f.segs)
				continue
			}
			done += uint64(f.segs)
			if f.segs > 1 {
				frames++
				segs += uint64(f.segs)
			}
		}
	}
	b.stats.decapsulated.Add(done)
	b.stats.writeErrors.Add(failed)
	b.stats.coalescedFrames.Add(frames)
	b.stats.coalescedSegments.Add(segs)
}
