package realserver

import (
	"bytes"
	"io"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gvs-lb/gvs/arpctl"
)

// TestDecapDeliversTCP hands a TCP connection's packets, IPIP-encapsulated,
// to the decapsulator's batch processing and checks that the real server's
// kernel takes them from the TUN device: the handshake completes and the
// listener reads a burst of data segments whole and in order. With
// offloads the burst is written as one GSO frame, which the kernel would
// drop if its virtio_net_hdr, lengths or partial checksum were wrong.
// Without them (the fallback) each segment is written alone.
func TestDecapDeliversTCP(t *testing.T) {
	for _, offloads := range []bool{true, false} {
		name := "offloads"
		if !offloads {
			name = "fallback"
		}
		t.Run(name, func(t *testing.T) { testDecapDeliversTCP(t, offloads) })
	}
}

func testDecapDeliversTCP(t *testing.T, offloads bool) {
	l := newLab(t)
	tun := testName(t, "t")
	vipPort := netip.AddrPortFrom(testVIP, 8080)
	capt := l.capture(t)

	defer func(old bool) { tunOffloads = old }(tunOffloads)
	tunOffloads = offloads
	var d *decap
	var ln *net.TCPListener
	l.b.Do(t, func() {
		var err error
		if d, err = newDecap(tun, []netip.Addr{testVIP}); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { d.close() })
		restore, err := arpctl.Apply(arpctl.RealServerSysctls(l.nameB, tun))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { restore() })
		if _, err := arpctl.AddVIP(loopback, testVIP); err != nil {
			t.Fatal(err)
		}
		if ln, err = net.ListenTCP("tcp4", net.TCPAddrFromAddrPort(vipPort)); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { ln.Close() })
	})
	if got := d.offloadErr == nil; got != offloads {
		t.Fatalf("TUN offloads on = %v (%v), want %v", got, d.offloadErr, offloads)
	}

	// feed runs one batch of inner packets through the decapsulator.
	feed := func(inner ...[]byte) {
		t.Helper()
		for i, p := range inner {
			d.batch.sizes[i] = copy(d.batch.bufs[i], ipipPacket(t, testDir, testRIP, p))
		}
		d.batch.process(len(inner), d.tun)
	}
	client := seg{src: testClient, dst: vipPort, seq: 1000, syn: true, noACK: true}
	feed(tcpSeg(t, client))
	var isn uint32
	isSynAck := func(p gopacket.Packet) bool {
		tcp, ok := p.Layer(layers.LayerTypeTCP).(*layers.TCP)
		if ok && tcp.SYN && tcp.ACK && tcp.Ack == 1001 {
			isn = tcp.Seq
			return true
		}
		return false
	}
	if ok, _ := capt.watch(t, 2*time.Second, isSynAck); !ok {
		t.Fatal("no SYN-ACK from the real server: the SYN did not arrive through the TUN device")
	}
	client = seg{src: testClient, dst: vipPort, seq: 1001, ack: isn + 1, tsval: 0}
	feed(tcpSeg(t, client))

	const segs, size = 8, 1000
	var want []byte
	var burst [][]byte
	for i := range segs {
		s := client
		s.seq += uint32(i * size)
		s.payload = bytes.Repeat([]byte{byte('A' + i)}, size)
		s.psh = i == segs-1
		want = append(want, s.payload...)
		burst = append(burst, tcpSeg(t, s))
	}
	feed(burst...)

	ln.SetDeadline(time.Now().Add(2 * time.Second))
	c, err := ln.Accept()
	if err != nil {
		t.Fatalf("accept: %v", err)
	}
	defer c.Close()
	c.SetReadDeadline(time.Now().Add(2 * time.Second))
	got := make([]byte, len(want))
	if _, err := io.ReadFull(c, got); err != nil {
		t.Fatalf("read %d bytes: %v", len(want), err)
	}
	if !bytes.Equal(got, want) {
		t.Fatal("the listener read other bytes than were sent")
	}

	s := &d.batch.stats
	wantFrames, wantSegs := uint64(1), uint64(segs)
	if !offloads {
		wantFrames, wantSegs = 0, 0
	}
	if f, n := s.coalescedFrames.Load(), s.coalescedSegments.Load(); f != wantFrames || n != wantSegs {
		t.Errorf("coalesced %d frames of %d segments, want %d of %d", f, n, wantFrames, wantSegs)
	}
	if n, e := s.decapsulated.Load(), s.writeErrors.Load(); n != segs+2 || e != 0 {
		t.Errorf("decapsulated %d, write errors %d; want %d, 0", n, e, segs+2)
	}
}
