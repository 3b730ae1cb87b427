package afpacket

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gvs-lb/gvs/dataplane/header"
	"github.com/vishvananda/netlink"
	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"
)

var txModes = []TxMode{TxSendmmsg, TxRing}

func mustFilter(t testing.TB, m *Match) []bpf.RawInstruction {
	t.Helper()
	p, err := FilterProgram(m)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// sender opens a link on tn.a that only sends: its filter takes nothing.
func (tn *testNet) sender(t testing.TB, mode TxMode) *Link {
	return tn.open(t, Config{Interface: tn.a, TxMode: mode, Filter: mustFilter(t, &Match{})})
}

// readFor reads from l until it has want frames or d has passed, and
// returns copies of what it read.
func readFor(t testing.TB, l *Link, want int, d time.Duration) [][]byte {
	t.Helper()
	got, _ := readOffloads(t, l, want, d)
	return got
}

// readOffloads is readFor that also returns each frame's offloads; it
// takes frames of up to 64 KiB.
func readOffloads(t testing.TB, l *Link, want int, d time.Duration) ([][]byte, []header.Offload) {
	t.Helper()
	bufs := make([][]byte, 32)
	for i := range bufs {
		bufs[i] = make([]byte, 1<<16)
	}
	sizes := make([]int, len(bufs))
	offs := make([]header.Offload, len(bufs))
	var got [][]byte
	var gotOffs []header.Offload
	for deadline := time.Now().Add(d); len(got) < want && time.Now().Before(deadline); {
		n, err := l.Read(bufs, sizes, offs, 0)
		if err != nil {
			t.Fatalf("Read: %v", err)
		}
		for i := range n {
			got = append(got, bytes.Clone(bufs[i][:sizes[i]]))
			gotOffs = append(gotOffs, offs[i])
		}
	}
	return got, gotOffs
}

// ours keeps the frames built by ipv4Frame (they carry its payload).
func ours(frames [][]byte) [][]byte {
	var out [][]byte
	for _, f := range frames {
		if bytes.Contains(f, []byte("gvs afpacket test")) {
			out = append(out, f)
		}
	}
	return out
}

// sameFrames reports whether got and want hold the same frames, in any order.
func sameFrames(got, want [][]byte) bool {
	if len(got) != len(want) {
		return false
	}
	left := map[string]int{}
	for _, f := range want {
		left[string(f)]++
	}
	for _, f := range got {
		if left[string(f)] == 0 {
			return false
		}
		left[string(f)]--
	}
	return true
}

func TestLinkFilterAndStats(t *testing.T) {
	for _, mode := range txModes {
		t.Run(mode.String(), func(t *testing.T) {
			tn := newTestNet(t)
			rx := tn.open(t, Config{Interface: tn.b, Filter: mustFilter(t, testMatch())})
			tx := tn.sender(t, mode)

			accepted := [][]byte{
				ipv4Frame(t, protoTCP, client, 40000, vip, 80),
				ipv4Frame(t, protoUDP, client, 40001, vip, 53),
				ipv4Frame(t, protoTCP, client, 40002, vip, 80, withIPOptions),
				ipv4Frame(t, protoTCP, natReal, 8080, client, 40003),
				ipv4Frame(t, protoUDP, natReal, 53, lip, 20000),
				ipv4Frame(t, protoTCP, natReal, 80, lip, 20999),
				ipv4Frame(t, protoUDP, client, 40000, vip, 53, withFragment(185, false)),
			}
			rejected := [][]byte{
				ipv4Frame(t, protoTCP, client, 40000, vip, 81),
				ipv4Frame(t, protoUDP, client, 40000, vip, 80),
				ipv4Frame(t, protoTCP, client, 40000, other, 80),
				ipv4Frame(t, protoUDP, client, 40000, other, 53, withFragment(185, false)),
				ipv4Frame(t, protoTCP, natReal, 80, lip, 21000),
				ipv4Frame(t, 1, client, 0, vip, 80),
				vlanFrame(t),
				arpFrame(t),
				ipv6Frame(t),
			}
			var all [][]byte
			for i := range max(len(accepted), len(rejected)) {
				if i < len(rejected) {
					all = append(all, rejected[i])
				}
				if i < len(accepted) {
					all = append(all, accepted[i])
				}
			}
			n, err := tx.Write(all, nil)
			if err != nil || n != len(all) {
				t.Fatalf("Write = %d, %v; want %d, nil", n, err, len(all))
			}
			got := readFor(t, rx, len(accepted), 2*time.Second)
			got = append(got, readFor(t, rx, 1, 50*time.Millisecond)...) // anything extra?
			if !sameFrames(got, accepted) {
				t.Fatalf("read %d frames, want exactly the %d accepted ones", len(got), len(accepted))
			}

			st, err := rx.Stats()
			if err != nil {
				t.Fatal(err)
			}
			if st.Packets != uint64(len(accepted)) || st.Drops != 0 || st.Truncated != 0 {
				t.Errorf("rx stats %+v, want %d packets, no drops", st, len(accepted))
			}
			// The kernel resets its counters on read; ours accumulate.
			if st2, _ := rx.Stats(); st2.Packets != st.Packets {
				t.Errorf("second Stats: %d packets, want %d", st2.Packets, st.Packets)
			}
			txst, err := tx.Stats()
			if err != nil {
				t.Fatal(err)
			}
			if txst.TxPackets != uint64(len(all)) || txst.TxErrors != 0 || txst.Packets != 0 {
				t.Errorf("tx stats %+v, want %d sent, no errors, nothing received", txst, len(all))
			}
		})
	}
}

func TestLinkSetFilter(t *testing.T) {
	tn := newTestNet(t)
	rx := tn.open(t, Config{Interface: tn.b, Filter: mustFilter(t, &Match{})})
	tx := tn.sender(t, TxDefault)
	f80 := ipv4Frame(t, protoTCP, client, 40000, vip, 80)
	f53 := ipv4Frame(t, protoUDP, client, 40000, vip, 53)
	if _, err := tx.Write([][]byte{f80, f53}, nil); err != nil {
		t.Fatal(err)
	}
	if got := readFor(t, rx, 1, 100*time.Millisecond); len(got) != 0 {
		t.Fatalf("reject-all filter let %d frames through", len(got))
	}
	if err := rx.SetFilter(mustFilter(t, &Match{VIPs: []Endpoint{{Proto: protoUDP, Addr: vip, Port: 53}}})); err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Write([][]byte{f80, f53}, nil); err != nil {
		t.Fatal(err)
	}
	got := readFor(t, rx, 1, 2*time.Second)
	got = append(got, readFor(t, rx, 1, 50*time.Millisecond)...)
	if !sameFrames(got, [][]byte{f53}) {
		t.Fatalf("after SetFilter read %d frames, want only the UDP one", len(got))
	}
	if err := rx.SetFilter(nil); err != nil { // nil: everything but our own
		t.Fatal(err)
	}
	if _, err := tx.Write([][]byte{f80, f53}, nil); err != nil {
		t.Fatal(err)
	}
	if got := ours(readFor(t, rx, 2, 2*time.Second)); !sameFrames(got, [][]byte{f80, f53}) {
		t.Fatalf("accept-all read %d of our frames, want 2", len(got))
	}
}

// TestLinkIgnoresOutgoing checks that frames sent out of the interface, by
// the link itself or by another socket, are not read back, while frames
// coming in are.
func TestLinkIgnoresOutgoing(t *testing.T) {
	for _, fanout := range []bool{false, true} {
		t.Run(fmt.Sprintf("fanout=%v", fanout), func(t *testing.T) {
			tn := newTestNet(t)
			cfg := Config{Interface: tn.a} // nil filter: nothing but the outgoing test
			if fanout {
				cfg.FanoutGroup = 0x4741 // PACKET_FANOUT_HASH
			}
			l := tn.open(t, cfg)
			other := tn.sender(t, TxSendmmsg) // another socket on the same interface
			peer := tn.open(t, Config{Interface: tn.b})

			mine := ipv4Frame(t, protoTCP, client, 1, vip, 80)
			theirs := ipv4Frame(t, protoTCP, client, 2, vip, 80)
			incoming := ipv4Frame(t, protoTCP, client, 3, vip, 80)
			for _, w := range []struct {
				l *Link
				f []byte
			}{{l, mine}, {other, theirs}, {peer, incoming}} {
				if n, err := w.l.Write([][]byte{w.f}, nil); n != 1 || err != nil {
					t.Fatalf("Write = %d, %v", n, err)
				}
			}
			got := ours(readFor(t, l, 2, 300*time.Millisecond))
			if !sameFrames(got, [][]byte{incoming}) {
				t.Fatalf("read %d of our frames, want only the incoming one", len(got))
			}
			// The peer saw both outgoing frames arrive.
			if got := ours(readFor(t, peer, 2, 2*time.Second)); !sameFrames(got, [][]byte{mine, theirs}) {
				t.Fatalf("peer read %d frames, want 2", len(got))
			}
		})
	}
}

// TestLinkFanoutSteering opens two workers in one CBPF fanout group and
// checks each receives exactly the frames the steering program assigns it.
func TestLinkFanoutSteering(t *testing.T) {
	const workers = 2
	tn := newTestNet(t)
	m := testMatch()
	steer, err := SteeringProgram(m, workers)
	if err != nil {
		t.Fatal(err)
	}
	filter := mustFilter(t, m)
	var links [workers]*Link
	for i := range links { // join order is the worker index
		links[i] = tn.open(t, Config{Interface: tn.b, FanoutGroup: 0x4742, Steering: steer, Filter: filter})
	}
	tx := tn.sender(t, TxDefault)

	rng := rand.New(rand.NewPCG(7, 8))
	var want [workers][][]byte
	var frames [][]byte
	for i := range 40 {
		var c [4]byte
		binary.BigEndian.PutUint32(c[:], rng.Uint32())
		cport := uint16(1024 + i)
		req := ipv4Frame(t, protoTCP, c, cport, vip, 80)
		rep := ipv4Frame(t, protoTCP, natReal, 8080, c, cport)
		w := SteerHash(c, cport) % workers
		want[w] = append(want[w], req, rep)
		lport := uint16(20000 + rng.UintN(1000))
		full := ipv4Frame(t, protoUDP, natReal, 53, lip, lport)
		want[lport%workers] = append(want[lport%workers], full)
		frames = append(frames, req, rep, full)
	}
	if n, err := tx.Write(frames, nil); n != len(frames) || err != nil {
		t.Fatalf("Write = %d, %v", n, err)
	}
	for i, l := range links {
		got := readFor(t, l, len(want[i]), 2*time.Second)
		got = append(got, readFor(t, l, 1, 50*time.Millisecond)...)
		if !sameFrames(got, want[i]) {
			t.Errorf("worker %d read %d frames, want its %d", i, len(got), len(want[i]))
		}
	}
	if len(want[0]) == 0 || len(want[1]) == 0 {
		t.Fatalf("test frames all steered to one worker (%d, %d)", len(want[0]), len(want[1]))
	}
	// Replacing the program moves traffic: steer everything to worker 1.
	one, _ := bpf.Assemble([]bpf.Instruction{bpf.RetConstant{Val: 1}})
	if err := links[0].SetSteering(one); err != nil {
		t.Fatal(err)
	}
	if n, err := tx.Write(frames[:10], nil); n != 10 || err != nil {
		t.Fatalf("Write = %d, %v", n, err)
	}
	if got := readFor(t, links[1], 10, 2*time.Second); len(got) != 10 {
		t.Errorf("after SetSteering worker 1 read %d frames, want 10", len(got))
	}
	if got := readFor(t, links[0], 1, 50*time.Millisecond); len(got) != 0 {
		t.Errorf("after SetSteering worker 0 read %d frames, want 0", len(got))
	}
}

// TestLinkFanoutSteering6 runs the IPv6 sections in the kernel: the
// filter takes IPv6 requests to a VIP and NAT replies, also behind
// extension headers (and leaves a frame with an authentication header),
// and the fanout program, which reads through
// the kernel's header marks, puts a request and its reply on one worker.
func TestLinkFanoutSteering6(t *testing.T) {
	const workers = 2
	tn := newTestNet(t)
	m := testMatch6()
	steer, err := SteeringProgram(m, workers)
	if err != nil {
		t.Fatal(err)
	}
	filter := mustFilter(t, m)
	var links [workers]*Link
	for i := range links {
		links[i] = tn.open(t, Config{Interface: tn.b, FanoutGroup: 0x4743, Steering: steer, Filter: filter})
	}
	tx := tn.sender(t, TxDefault)

	rng := rand.New(rand.NewPCG(7, 9))
	var want [workers][][]byte
	var frames [][]byte
	for i := range 40 {
		c := client6
		binary.BigEndian.PutUint32(c[12:], rng.Uint32())
		cport := uint16(1024 + i)
		req := ipv6L4Frame(t, protoTCP, c, cport, vip6, 80)
		rep := ipv6L4Frame(t, protoUDP, natReal6, 5353, c, cport)
		w := SteerHash6(c, cport) % workers
		ext := ipv6L4Frame(t, protoTCP, c, cport, vip6, 80, withHopByHop, withDstOpts)
		extRep := ipv6L4Frame(t, protoUDP, natReal6, 5353, c, cport, withDstOpts, withRouting)
		want[w] = append(want[w], req, rep, ext, extRep)
		frames = append(frames, req, rep, ext, extRep, ipv6L4Frame(t, protoTCP, c, cport, vip6, 80, withAH))
	}
	if n, err := tx.Write(frames, nil); n != len(frames) || err != nil {
		t.Fatalf("Write = %d, %v", n, err)
	}
	for i, l := range links {
		got := ours(readFor(t, l, len(want[i]), 2*time.Second))
		got = append(got, ours(readFor(t, l, 1, 50*time.Millisecond))...)
		if !sameFrames(got, want[i]) {
			t.Errorf("worker %d read %d frames, want its %d", i, len(got), len(want[i]))
		}
	}
	if len(want[0]) == 0 || len(want[1]) == 0 {
		t.Fatalf("test frames all steered to one worker (%d, %d)", len(want[0]), len(want[1]))
	}
}

// rawReceiver is a plain AF_PACKET socket (recvfrom, no ring): an
// independent check of what reached the interface.
func rawReceiver(t *testing.T, tn *testNet, ifname string) int {
	t.Helper()
	var fd int
	tn.do(t, func() error {
		var err error
		fd, err = unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, ethPAll)
		if err != nil {
			return err
		}
		ifi, err := net.InterfaceByName(ifname)
		if err != nil {
			return err
		}
		if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, 4<<20); err != nil {
			return err
		}
		tv := unix.NsecToTimeval(int64(50 * time.Millisecond))
		if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
			return err
		}
		return unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: ethPAll, Ifindex: ifi.Index})
	})
	t.Cleanup(func() { unix.Close(fd) })
	return fd
}

func rawRecv(t *testing.T, fd int, want int, d time.Duration) [][]byte {
	t.Helper()
	buf := make([]byte, 1<<16)
	var got [][]byte
	for deadline := time.Now().Add(d); len(got) < want && time.Now().Before(deadline); {
		n, _, err := unix.Recvfrom(fd, buf, 0)
		if errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			t.Fatalf("recvfrom: %v", err)
		}
		if bytes.Contains(buf[:n], []byte("gvs afpacket test")) {
			got = append(got, bytes.Clone(buf[:n]))
		}
	}
	return got
}

// TestLinkWriteDelivers checks Write with a raw socket on the peer, with bad
// frames in the batch: they are counted and the others still go.
func TestLinkWriteDelivers(t *testing.T) {
	for _, mode := range txModes {
		t.Run(mode.String(), func(t *testing.T) {
			tn := newTestNet(t)
			fd := rawReceiver(t, tn, tn.b)
			tx := tn.sender(t, mode)
			if tx.TxMode() != mode {
				t.Fatalf("TxMode() = %v, want %v", tx.TxMode(), mode)
			}
			var good [][]byte
			for i := range 300 { // more than one sendmmsg batch
				good = append(good, ipv4Frame(t, protoUDP, client, uint16(i), vip, 53))
			}
			tooBig := append(ipv4Frame(t, protoUDP, client, 1, vip, 53), make([]byte, 1600)...)
			tooShort := make([]byte, 10)
			batch := append([][]byte{}, good[:100]...)
			batch = append(batch, tooBig, tooShort)
			batch = append(batch, good[100:150]...)
			batch = append(batch, tooBig)
			batch = append(batch, good[150:]...)
			batch = append(batch, tooBig)

			n, err := tx.Write(batch, nil)
			if err != nil || n != len(good) {
				t.Fatalf("Write = %d, %v; want %d, nil", n, err, len(good))
			}
			got := rawRecv(t, fd, len(good), 3*time.Second)
			if !sameFrames(got, good) {
				t.Fatalf("peer received %d frames, want the %d good ones", len(got), len(good))
			}
			st, _ := tx.Stats()
			if st.TxPackets != uint64(len(good)) || st.TxErrors != 4 {
				t.Errorf("stats %+v, want %d sent, 4 errors", st, len(good))
			}
			// The link keeps working after the errors, in order.
			if n, err := tx.Write(good[:3], nil); n != 3 || err != nil {
				t.Fatalf("Write after errors = %d, %v", n, err)
			}
			if got := rawRecv(t, fd, 3, 2*time.Second); len(got) != 3 || !bytes.Equal(got[0], good[0]) || !bytes.Equal(got[2], good[2]) {
				t.Fatalf("after errors the peer received %d frames, want 3 in order", len(got))
			}
		})
	}
}

// l4Frame builds Ethernet/IPv4/UDP-or-TCP (an ACK) with complete checksums
// and a payload of payloadLen bytes that starts with ipv4Frame's marker.
func l4Frame(t testing.TB, proto uint8, srcMAC, dstMAC net.HardwareAddr, src [4]byte, sport uint16, dst [4]byte, dport uint16, payloadLen int) []byte {
	t.Helper()
	payload := make([]byte, payloadLen)
	copy(payload, "gvs afpacket test")
	eth := &layers.Ethernet{SrcMAC: srcMAC, DstMAC: dstMAC, EthernetType: layers.EthernetTypeIPv4}
	ip := &layers.IPv4{Version: 4, TTL: 64, Protocol: layers.IPProtocol(proto), SrcIP: net.IP(src[:]), DstIP: net.IP(dst[:])}
	var l4 gopacket.SerializableLayer
	if proto == protoTCP {
		tcp := &layers.TCP{SrcPort: layers.TCPPort(sport), DstPort: layers.TCPPort(dport), ACK: true, Seq: 1, Ack: 1, Window: 1024}
		_ = tcp.SetNetworkLayerForChecksum(ip)
		l4 = tcp
	} else {
		udp := &layers.UDP{SrcPort: layers.UDPPort(sport), DstPort: layers.UDPPort(dport)}
		_ = udp.SetNetworkLayerForChecksum(ip)
		l4 = udp
	}
	buf := gopacket.NewSerializeBuffer()
	so := gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}
	if err := gopacket.SerializeLayers(buf, so, eth, ip, l4, gopacket.Payload(payload)); err != nil {
		t.Fatalf("serialize: %v", err)
	}
	return bytes.Clone(buf.Bytes())
}

// udpFrame is a UDP datagram from client:sport to vip:53 between
// ipv4Frame's MAC addresses, size bytes from the Ethernet header on.
func udpFrame(t testing.TB, sport uint16, size int) []byte {
	src, dst := net.HardwareAddr{0x02, 0, 0, 0, 0, 1}, net.HardwareAddr{0x02, 0, 0, 0, 0, 2}
	return l4Frame(t, protoUDP, src, dst, client, sport, vip, 53, size-ethHdrLen-20-8)
}

// naiveSum is the RFC 1071 ones' complement sum of b added to sum, folded
// to 16 bits: the reference for the checksums the kernel computes.
func naiveSum(sum uint32, b []byte) uint16 {
	for i := 0; i < len(b); i += 2 {
		w := uint32(b[i]) << 8
		if i+1 < len(b) {
			w |= uint32(b[i+1])
		}
		sum += w
	}
	for sum > 0xffff {
		sum = sum&0xffff + sum>>16
	}
	return uint16(sum)
}

// pseudoSum is the folded, uncomplemented sum of the IPv4 pseudo-header of
// ip (an IPv4 packet without options): what a partial checksum's field
// holds (CHECKSUM_PARTIAL).
func pseudoSum(ip []byte) uint16 {
	var ph [12]byte
	copy(ph[:8], ip[12:20]) // source and destination
	ph[9] = ip[9]           // protocol
	binary.BigEndian.PutUint16(ph[10:], uint16(len(ip)-20))
	return naiveSum(0, ph[:])
}

// l4ChecksumOK reports whether the TCP or UDP checksum of ip (an IPv4
// packet without options) verifies.
func l4ChecksumOK(ip []byte) bool {
	return naiveSum(uint32(pseudoSum(ip)), ip[20:]) == 0xffff
}

// makePartial turns the complete checksum of frame (Ethernet/IPv4 without
// options/TCP or UDP) into a partial one, as the kernel leaves it for a
// device with checksum offload, and returns the offloads that say so.
func makePartial(frame []byte) header.Offload {
	ip := frame[ethHdrLen:]
	o := header.Offload{Flags: header.OffloadNeedsCsum, CsumStart: ethHdrLen + 20, CsumOffset: header.UDPChecksumOffset}
	if ip[9] == protoTCP {
		o.CsumOffset = header.TCPChecksumOffset
	}
	binary.BigEndian.PutUint16(frame[o.CsumStart+o.CsumOffset:], pseudoSum(ip))
	return o
}

// TestLinkTruncated reads frames of every size at a link whose interface
// MTU went from 1500 to 9000 after it opened, so its ring slots hold
// frames of up to 1514 bytes: a frame of that size comes through the ring,
// larger ones whole through the kernel's copy path (TP_STATUS_COPY), and
// frames the filter cut short or that do not fit the caller's buffer are
// counted as truncated, the copies of the latter consumed so that the
// frames after them still come in order.
func TestLinkTruncated(t *testing.T) {
	tn := newTestNet(t)
	const cutLen = 700 // the filter captures 64 bytes of frames this long
	filter, err := bpf.Assemble([]bpf.Instruction{
		bpf.LoadAbsolute{Off: 36, Size: 2}, // UDP (or TCP) destination port
		bpf.JumpIf{Cond: bpf.JumpEqual, Val: 53, SkipFalse: 4},
		bpf.LoadExtension{Num: bpf.ExtLen},
		bpf.JumpIf{Cond: bpf.JumpEqual, Val: cutLen, SkipFalse: 1},
		bpf.RetConstant{Val: 64},
		bpf.RetConstant{Val: Snaplen},
		bpf.RetConstant{Val: 0},
	})
	if err != nil {
		t.Fatal(err)
	}
	rx := tn.open(t, Config{Interface: tn.b, Filter: filter})
	tn.do(t, func() error {
		for _, name := range []string{tn.a, tn.b} {
			l, err := netlink.LinkByName(name)
			if err != nil {
				return err
			}
			if err := netlink.LinkSetMTU(l, 9000); err != nil {
				return err
			}
		}
		return nil
	})
	tx := tn.sender(t, TxSendmmsg)
	const headroom = 16
	read := func(bufs [][]byte, want int) [][]byte {
		t.Helper()
		sizes := make([]int, len(bufs))
		var got [][]byte
		for deadline := time.Now().Add(2 * time.Second); len(got) < want && time.Now().Before(deadline); {
			k := len(got)
			n, err := rx.Read(bufs[k:], sizes[k:], nil, headroom)
			if err != nil {
				t.Fatal(err)
			}
			for i := k; i < k+n; i++ {
				if !bytes.Equal(bufs[i][:headroom], make([]byte, headroom)) {
					t.Errorf("frame %d: Read wrote into the headroom", i)
				}
				got = append(got, bytes.Clone(bufs[i][headroom:headroom+sizes[i]]))
			}
		}
		return got
	}

	small, full, cut := udpFrame(t, 1, 60), udpFrame(t, 2, 1514), udpFrame(t, 3, cutLen)
	jumbo := udpFrame(t, 4, 6000)
	if n, err := tx.Write([][]byte{small, full, cut, jumbo}, nil); n != 4 || err != nil {
		t.Fatalf("Write = %d, %v", n, err)
	}
	bufs := [][]byte{make([]byte, 9100), make([]byte, 9100), make([]byte, 9100), make([]byte, 9100)}
	if got := read(bufs, 3); !sameFrames(got, [][]byte{small, full, jumbo}) {
		t.Fatalf("read %d frames, want the small, the full-size and the jumbo one", len(got))
	}
	st, _ := rx.Stats()
	if st.Truncated != 1 || st.Copied != 1 || st.Packets != 4 {
		t.Errorf("stats %+v, want 4 packets, 1 copied (the jumbo frame), 1 truncated (cut by the filter)", st)
	}

	// Into a 1000-byte buffer (984 bytes after the headroom), then a big
	// one: a frame from the ring and one from the copy path that do not
	// fit are counted and skipped, and the next frames take their place.
	mid, jumbo2 := udpFrame(t, 5, 1200), udpFrame(t, 6, 7000)
	if n, err := tx.Write([][]byte{mid, jumbo, small, jumbo2}, nil); n != 4 || err != nil {
		t.Fatalf("Write = %d, %v", n, err)
	}
	got := read([][]byte{make([]byte, 1000), make([]byte, 9100)}, 2)
	if len(got) != 2 || !bytes.Equal(got[0], small) || !bytes.Equal(got[1], jumbo2) {
		t.Fatalf("read %d frames, want the small one, then the second jumbo one", len(got))
	}
	st, _ = rx.Stats()
	if st.Truncated != 3 || st.Copied != 2 || st.Packets != 8 {
		t.Errorf("stats %+v, want 8 packets, 2 copied, 3 truncated", st)
	}
}

// TestLinkReadPartialChecksum: a UDP datagram the kernel sends out of a
// veth with tx checksumming on (the default) leaves its checksum to the
// device (CHECKSUM_PARTIAL), and the link on the peer reads it with
// OffloadNeedsCsum, CsumStart at the UDP header and CsumOffset at its
// checksum field, which holds the pseudo-header sum: finishing it gives a
// checksum that verifies.
func TestLinkReadPartialChecksum(t *testing.T) {
	tn := newTestNet(t)
	dst := [4]byte{10, 99, 0, 2} // not local: the datagram leaves through gvsaf-a
	rx := tn.open(t, Config{Interface: tn.b, Filter: mustFilter(t, &Match{VIPs: []Endpoint{{Proto: protoUDP, Addr: dst, Port: 5353}}})})
	payload := []byte("gvs afpacket test: a datagram of the kernel's")
	tn.do(t, func() error {
		a, err := netlink.LinkByName(tn.a)
		if err != nil {
			return err
		}
		addr, _ := netlink.ParseAddr("10.99.0.1/24")
		if err := netlink.AddrAdd(a, addr); err != nil {
			return err
		}
		neigh := &netlink.Neigh{LinkIndex: a.Attrs().Index, Family: netlink.FAMILY_V4, State: netlink.NUD_PERMANENT, IP: net.IP(dst[:]), HardwareAddr: tn.bMAC}
		if err := netlink.NeighAdd(neigh); err != nil {
			return err
		}
		c, err := net.DialUDP("udp4", nil, &net.UDPAddr{IP: net.IP(dst[:]), Port: 5353})
		if err != nil {
			return err
		}
		defer c.Close()
		_, err = c.Write(payload)
		return err
	})
	got, offs := readOffloads(t, rx, 1, 2*time.Second)
	if len(got) != 1 {
		t.Fatalf("read %d frames, want the datagram", len(got))
	}
	f, o := got[0], offs[0]
	want := header.Offload{Flags: header.OffloadNeedsCsum, CsumStart: ethHdrLen + 20, CsumOffset: header.UDPChecksumOffset}
	if o != want || !bytes.HasSuffix(f, payload) {
		t.Fatalf("read %d bytes with offloads %+v, want the datagram with %+v", len(f), o, want)
	}
	field := int(o.CsumStart + o.CsumOffset)
	if sum := binary.BigEndian.Uint16(f[field:]); sum != pseudoSum(f[ethHdrLen:]) {
		t.Errorf("checksum field %#04x, want the pseudo-header sum %#04x", sum, pseudoSum(f[ethHdrLen:]))
	}
	if !header.FinishChecksum(f, &o, true) || !l4ChecksumOK(f[ethHdrLen:]) {
		t.Errorf("the finished checksum %#04x does not verify", binary.BigEndian.Uint16(f[field:]))
	}
}

// TestLinkWritePartialChecksum writes a UDP datagram whose checksum field
// holds only the pseudo-header sum, with OffloadNeedsCsum. A veth never
// finishes a partial checksum (its peer's stack trusts CHECKSUM_PARTIAL, so
// a socket there would take the datagram whatever its checksum), so the
// peer forwards it to a TUN device, which has no checksum offload: there
// the kernel must finish the checksum (skb_checksum_help), and the datagram
// read from the TUN device must verify. The same frame written without
// offloads arrives with its checksum as written, wrong: it was the
// virtio_net_hdr that made the kernel finish it.
//
//	link on gvsaf-a -> gvsaf-b 10.99.0.2/24 (forwarding) -> gvsaf-t (TUN) 10.98.0.0/24
func TestLinkWritePartialChecksum(t *testing.T) {
	for _, mode := range txModes {
		t.Run(mode.String(), func(t *testing.T) {
			tn := newTestNet(t)
			tun := tn.tunRoute(t, "10.99.0.2/24", "10.98.0.0/24")
			tx := tn.sender(t, mode)
			frame := l4Frame(t, protoUDP, tn.aMAC, tn.bMAC, [4]byte{10, 99, 0, 1}, 40000, [4]byte{10, 98, 0, 7}, 5353, 300)
			o := makePartial(frame)

			for _, offload := range []bool{true, false} {
				var offs []header.Offload
				if offload {
					offs = []header.Offload{o}
				}
				if n, err := tx.Write([][]byte{frame}, offs); n != 1 || err != nil {
					t.Fatalf("Write = %d, %v", n, err)
				}
				ip := readTUN(t, tun, 2*time.Second)
				if ip == nil {
					t.Fatalf("offload %v: nothing reached the TUN device", offload)
				}
				if !bytes.Equal(ip[20:26], frame[ethHdrLen+20:ethHdrLen+26]) || !bytes.Equal(ip[28:], frame[ethHdrLen+28:]) {
					t.Fatalf("offload %v: the TUN device read another datagram", offload)
				}
				if ok := l4ChecksumOK(ip); ok != offload {
					t.Errorf("offload %v: checksum %#04x verifies: %v, want %v", offload, binary.BigEndian.Uint16(ip[26:]), ok, offload)
				}
			}
			if st, _ := tx.Stats(); st.TxPackets != 2 || st.TxErrors != 0 {
				t.Errorf("stats %+v, want 2 sent", st)
			}
		})
	}
}

// tunRoute gives gvsaf-b the address bAddr, creates the TUN device gvsaf-t
// with a route to dst through it, turns forwarding on and reverse-path
// filtering off in the namespace, and returns the TUN device's file
// (IFF_TUN|IFF_NO_PI: each read is one IP packet).
func (tn *testNet) tunRoute(t *testing.T, bAddr, dst string) *os.File {
	t.Helper()
	var fd int
	tn.do(t, func() error {
		b, err := netlink.LinkByName(tn.b)
		if err != nil {
			return err
		}
		addr, _ := netlink.ParseAddr(bAddr)
		if err := netlink.AddrAdd(b, addr); err != nil {
			return err
		}
		fd, err = unix.Open("/dev/net/tun", unix.O_RDWR|unix.O_CLOEXEC|unix.O_NONBLOCK, 0)
		if err != nil {
			return fmt.Errorf("open /dev/net/tun: %w", err)
		}
		ifr, err := unix.NewIfreq("gvsaf-t")
		if err != nil {
			return err
		}
		ifr.SetUint16(unix.IFF_TUN | unix.IFF_NO_PI)
		if err := unix.IoctlIfreq(fd, unix.TUNSETIFF, ifr); err != nil {
			return fmt.Errorf("TUNSETIFF: %w", err)
		}
		tun, err := netlink.LinkByName("gvsaf-t")
		if err != nil {
			return err
		}
		if err := netlink.LinkSetUp(tun); err != nil {
			return err
		}
		_, dstNet, _ := net.ParseCIDR(dst)
		if err := netlink.RouteAdd(&netlink.Route{LinkIndex: tun.Attrs().Index, Dst: dstNet}); err != nil {
			return fmt.Errorf("route to %s: %w", dst, err)
		}
		for f, v := range map[string]string{
			"/proc/sys/net/ipv4/ip_forward":                  "1",
			"/proc/sys/net/ipv4/conf/all/rp_filter":          "0",
			"/proc/sys/net/ipv4/conf/" + tn.b + "/rp_filter": "0",
		} {
			if err := os.WriteFile(f, []byte(v), 0o644); err != nil {
				return err
			}
		}
		return nil
	})
	f := os.NewFile(uintptr(fd), "gvsaf-t")
	t.Cleanup(func() { f.Close() })
	return f
}

// readTUN returns the next UDP packet read from tun within d, or nil.
func readTUN(t *testing.T, tun *os.File, d time.Duration) []byte {
	t.Helper()
	buf := make([]byte, 1<<16)
	for deadline := time.Now().Add(d); ; {
		if err := tun.SetReadDeadline(deadline); err != nil {
			t.Fatal(err)
		}
		n, err := tun.Read(buf)
		if errors.Is(err, os.ErrDeadlineExceeded) {
			return nil
		}
		if err != nil {
			t.Fatalf("read TUN: %v", err)
		}
		if n >= 28 && buf[0]>>4 == 4 && buf[9] == protoUDP {
			return bytes.Clone(buf[:n])
		}
	}
}

// TestLinkGSO writes a 20 KB TCP super-frame with GSO offloads (TSO: cut
// into 1448-byte segments, partial checksum). Over a veth (TSO on, the
// default) the kernel hands it to the peer whole, not cut into segments,
// and the link on the peer reads it whole, through the copy path (it is
// far larger than a ring slot), with the GSO offloads; a TX ring cannot
// take it and counts it.
func TestLinkGSO(t *testing.T) {
	for _, mode := range txModes {
		t.Run(mode.String(), func(t *testing.T) {
			tn := newTestNet(t)
			rx := tn.open(t, Config{Interface: tn.b, Filter: mustFilter(t, testMatch())})
			tx := tn.sender(t, mode)
			frame := l4Frame(t, protoTCP, tn.aMAC, tn.bMAC, client, 40000, vip, 80, 20000)
			o := makePartial(frame)
			o.GSOType, o.GSOSize, o.HdrLen = header.GSOTCPv4, 1448, ethHdrLen+20+20
			n, err := tx.Write([][]byte{frame}, []header.Offload{o})
			if err != nil {
				t.Fatal(err)
			}
			txst, _ := tx.Stats()
			if mode == TxRing {
				if n != 0 || txst.TxErrors != 1 {
					t.Fatalf("Write = %d, stats %+v; want the frame refused and counted", n, txst)
				}
				return
			}
			if n != 1 || txst.TxErrors != 0 {
				t.Fatalf("Write = %d, stats %+v; want the frame sent", n, txst)
			}
			got, offs := readOffloads(t, rx, 1, 2*time.Second)
			got2, _ := readOffloads(t, rx, 1, 50*time.Millisecond) // anything more?
			if len(got) != 1 || len(got2) != 0 || !bytes.Equal(got[0], frame) {
				t.Fatalf("read %d frames, then %d (%d bytes first); want the %d-byte frame whole", len(got), len(got2), len(got[0]), len(frame))
			}
			if offs[0] != o {
				t.Errorf("offloads %+v, want %+v", offs[0], o)
			}
			if st, _ := rx.Stats(); st.Packets != 1 || st.Copied != 1 || st.Truncated != 0 {
				t.Errorf("stats %+v, want 1 packet, copied", st)
			}
		})
	}
}

func TestLinkDropsCounted(t *testing.T) {
	tn := newTestNet(t)
	rx := tn.open(t, Config{Interface: tn.b, BlockSize: 4096, NumBlocks: 2, Filter: mustFilter(t, testMatch())})
	tx := tn.sender(t, TxDefault)
	frames := make([][]byte, 200)
	for i := range frames {
		frames[i] = append(ipv4Frame(t, protoUDP, client, uint16(i), vip, 53), make([]byte, 400)...)
	}
	if n, err := tx.Write(frames, nil); n != len(frames) || err != nil {
		t.Fatalf("Write = %d, %v", n, err)
	}
	time.Sleep(20 * time.Millisecond)
	st, err := rx.Stats()
	if err != nil {
		t.Fatal(err)
	}
	if st.Packets != uint64(len(frames)) || st.Drops == 0 || st.Drops >= st.Packets {
		t.Fatalf("stats %+v: want %d packets, some but not all dropped by the two-block ring", st, len(frames))
	}
	got := readFor(t, rx, int(st.Packets-st.Drops), time.Second)
	if len(got) != int(st.Packets-st.Drops) {
		t.Errorf("read %d frames, want the %d the ring kept", len(got), st.Packets-st.Drops)
	}
	if st2, _ := rx.Stats(); st2.Drops != st.Drops || st2.Packets != st.Packets {
		t.Errorf("counters changed without traffic: %+v then %+v", st, st2)
	}
}

func TestLinkClose(t *testing.T) {
	tn := newTestNet(t)
	// Nothing passes the filter, so Read can only time out or be woken.
	l := tn.open(t, Config{Interface: tn.b, Filter: mustFilter(t, &Match{})})
	type result struct {
		n   int
		err error
		at  time.Time
	}
	done := make(chan result, 1)
	bufs, sizes := [][]byte{make([]byte, 2048)}, []int{0}
	started := make(chan time.Time, 1)
	go func() {
		started <- time.Now()
		n, err := l.Read(bufs, sizes, nil, 0)
		done <- result{n, err, time.Now()}
	}()
	start := <-started
	time.Sleep(10 * time.Millisecond) // let Read block in poll
	closeAt := time.Now()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	// Closing a packet socket waits for an RCU grace period; only a hang
	// is a failure.
	if d := time.Since(closeAt); d > 2*time.Second {
		t.Errorf("Close took %v", d)
	}
	r := <-done
	if !errors.Is(r.err, net.ErrClosed) {
		t.Fatalf("Read blocked across Close = %d, %v; want net.ErrClosed", r.n, r.err)
	}
	// Without the close event Read would sleep out its 100 ms poll.
	if d := r.at.Sub(start); d > 70*time.Millisecond {
		t.Errorf("Read returned %v after it started (Close came after 10 ms); the close event should wake it at once", d)
	}
	if _, err := l.Read(bufs, sizes, nil, 0); !errors.Is(err, net.ErrClosed) {
		t.Errorf("Read after Close: %v", err)
	}
	if _, err := l.Write(bufs, nil); !errors.Is(err, net.ErrClosed) {
		t.Errorf("Write after Close: %v", err)
	}
	if err := l.SetFilter(nil); !errors.Is(err, net.ErrClosed) {
		t.Errorf("SetFilter after Close: %v", err)
	}
	if _, err := l.Stats(); err != nil {
		t.Errorf("Stats after Close: %v", err)
	}
	if err := l.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

func TestOpenErrors(t *testing.T) {
	for _, tc := range []struct {
		cfg  Config
		want string
	}{
		{Config{}, "no interface"},
		{Config{Interface: "x", BlockSize: 1000}, "block size"},
		{Config{Interface: "x", NumBlocks: -1}, "-1 blocks"},
		{Config{Interface: "x", SYNBlocks: 1 << 20}, "SYN ring blocks"},
		{Config{Interface: "x", TxMode: 9}, "TxMode(9)"},
		{Config{Interface: "x", Steering: rejectAll}, "fanout group"},
	} {
		if _, err := Open(tc.cfg); err == nil || !bytes.Contains([]byte(err.Error()), []byte(tc.want)) {
			t.Errorf("Open(%+v) = %v, want an error about %q", tc.cfg, err, tc.want)
		}
	}
	tn := newTestNet(t)
	tn.do(t, func() error {
		_, err := Open(Config{Interface: "gvsaf-none"})
		if err == nil || !errors.Is(err, unix.ENODEV) {
			return fmt.Errorf("Open of a missing interface: %v, want ENODEV", err)
		}
		// The ring slot follows the MTU: a 9000-byte MTU needs 9104-byte
		// slots, which one page cannot hold.
		b, err := netlink.LinkByName(tn.b)
		if err != nil {
			return err
		}
		if err := netlink.LinkSetMTU(b, 9000); err != nil {
			return err
		}
		_, err = Open(Config{Interface: tn.b, BlockSize: 4096})
		if want := "block size 4096 is smaller than one 9104-byte frame slot (MTU 9000)"; err == nil || !strings.Contains(err.Error(), want) {
			return fmt.Errorf("Open with a block smaller than a slot: %v, want an error saying %q", err, want)
		}
		return nil
	})
}

// TestLinkNoAllocs checks that Write and Read do not allocate in steady
// state, for both TX modes, with offloads each way: a frame with a partial
// checksum, a plain one and, over sendmmsg, a GSO super-frame that Read
// takes through the copy path.
func TestLinkNoAllocs(t *testing.T) {
	for _, mode := range txModes {
		t.Run(mode.String(), func(t *testing.T) {
			tn := newTestNet(t)
			rx := tn.open(t, Config{Interface: tn.b, Filter: mustFilter(t, testMatch())})
			tx := tn.sender(t, mode)
			partial := l4Frame(t, protoUDP, tn.aMAC, tn.bMAC, client, 1, vip, 53, 100)
			out := [][]byte{partial, ipv4Frame(t, protoUDP, client, 2, vip, 53)}
			offs := []header.Offload{makePartial(partial), {}}
			if mode == TxSendmmsg {
				gso := l4Frame(t, protoTCP, tn.aMAC, tn.bMAC, client, 3, vip, 80, 8000)
				o := makePartial(gso)
				o.GSOType, o.GSOSize = header.GSOTCPv4, 1448
				out, offs = append(out, gso), append(offs, o)
			}
			bufs := [][]byte{make([]byte, 1<<14), make([]byte, 1<<14), make([]byte, 1<<14), make([]byte, 1<<14)}
			sizes := make([]int, len(bufs))
			rxOffs := make([]header.Offload, len(bufs))
			lost := 0
			step := func() {
				if n, err := tx.Write(out, offs); n != len(out) || err != nil {
					lost++
					return
				}
				for got, tries := 0, 0; got < len(out) && tries < 10; tries++ {
					n, err := rx.Read(bufs[got:], sizes[got:], rxOffs[got:], 0)
					if err != nil {
						lost++
						return
					}
					got += n
				}
				if rxOffs[0] != offs[0] {
					lost++
				}
			}
			step() // warm up
			if allocs := testing.AllocsPerRun(200, step); allocs != 0 {
				t.Errorf("Write+Read allocate %.1f times per batch", allocs)
			}
			if lost != 0 {
				t.Errorf("%d steps failed", lost)
			}
			st, _ := rx.Stats()
			if want := uint64(len(out) * 202); st.Packets != want {
				t.Errorf("read side counted %d packets, want %d", st.Packets, want)
			}
			if want := uint64(len(out)-2) * 202; st.Copied != want {
				t.Errorf("read side copied %d frames, want %d", st.Copied, want)
			}
		})
	}
}

// BenchmarkWrite compares the TX modes over a veth pair, in batches of 64
// frames of 64 bytes (the brief's comparison) and of 1514 bytes, with and
// without PACKET_QDISC_BYPASS. Nobody reads the peer; its stack drops the
// frames (they are addressed to another MAC). Compare the modes with
//
//	go test -run X -bench Write -count 6 ./dataplane/afpacket/
func BenchmarkWrite(b *testing.B) {
	for _, size := range []int{64, 1514} {
		for _, keepQdisc := range []bool{false, true} {
			for _, mode := range txModes {
				qdisc := "bypass"
				if keepQdisc {
					qdisc = "qdisc"
				}
				b.Run(fmt.Sprintf("%d/%s/%v", size, qdisc, mode), func(b *testing.B) {
					benchWrite(b, mode, keepQdisc, size)
				})
			}
		}
	}
}

func benchWrite(b *testing.B, mode TxMode, keepQdisc bool, size int) {
	tn := newTestNet(b)
	tx := tn.open(b, Config{Interface: tn.a, TxMode: mode, KeepQdisc: keepQdisc, Filter: mustFilter(b, &Match{})})
	frame := ipv4Frame(b, protoUDP, client, 1, vip, 53)
	frame = append(frame, make([]byte, max(0, size-len(frame)))...)[:size]
	batch := make([][]byte, 64)
	for i := range batch {
		batch[i] = bytes.Clone(frame)
	}
	b.ReportAllocs()
	b.SetBytes(int64(size * len(batch)))
	sent := 0
	for b.Loop() {
		n, err := tx.Write(batch, nil)
		if err != nil {
			b.Fatal(err)
		}
		sent += n
	}
	b.ReportMetric(float64(sent)/b.Elapsed().Seconds(), "pps")
	if st, _ := tx.Stats(); st.TxErrors > uint64(sent)/100 {
		b.Errorf("%d of %d frames failed", st.TxErrors, sent+int(st.TxErrors))
	}
}

// TestLinkConcurrentClose runs Read, Write, Stats and SetFilter in their own
// goroutines with traffic flowing and closes the link under them: every
// goroutine must see net.ErrClosed (run with -race).
func TestLinkConcurrentClose(t *testing.T) {
	for _, mode := range txModes {
		t.Run(mode.String(), func(t *testing.T) {
			tn := newTestNet(t)
			l := tn.open(t, Config{Interface: tn.b, TxMode: mode, Filter: mustFilter(t, testMatch())})
			peer := tn.open(t, Config{Interface: tn.a, TxMode: mode, Filter: mustFilter(t, testMatch())})
			in := [][]byte{ipv4Frame(t, protoUDP, client, 1, vip, 53), ipv4Frame(t, protoUDP, client, 2, vip, 53)}
			out := [][]byte{ipv4Frame(t, protoTCP, natReal, 8080, client, 1)}
			errs := make(chan error, 4)
			loop := func(f func() error) {
				for range 100000 { // bounded; ends at Close
					if err := f(); err != nil {
						errs <- err
						return
					}
				}
				errs <- nil
			}
			bufs, sizes := [][]byte{make([]byte, 2048), make([]byte, 2048)}, []int{0, 0}
			go loop(func() error { _, err := l.Read(bufs, sizes, nil, 0); return err })
			go loop(func() error { _, err := l.Write(out, nil); return err })
			go loop(func() error { _, err := peer.Write(in, nil); return err }) // traffic in; peer stays open
			filter := mustFilter(t, testMatch())
			go loop(func() error {
				if _, err := l.Stats(); err != nil {
					return err
				}
				return l.SetFilter(filter)
			})
			time.Sleep(50 * time.Millisecond)
			if err := l.Close(); err != nil {
				t.Fatal(err)
			}
			closedErrs := 0
			for range 3 { // Read, Write and Stats/SetFilter end; the peer writer runs out its loop
				select {
				case err := <-errs:
					if errors.Is(err, net.ErrClosed) {
						closedErrs++
					} else if err != nil {
						t.Errorf("unexpected error: %v", err)
					}
				case <-time.After(5 * time.Second):
					t.Fatal("a goroutine did not stop after Close")
				}
			}
			if closedErrs != 3 {
				t.Errorf("%d goroutines saw net.ErrClosed, want 3", closedErrs)
			}
			_ = peer.Close()
			select {
			case err := <-errs:
				if !errors.Is(err, net.ErrClosed) && err != nil {
					t.Errorf("peer writer: %v", err)
				}
			case <-time.After(5 * time.Second):
				t.Fatal("peer writer did not stop")
			}
			st, err := l.Stats()
			if err != nil || st.Packets == 0 || st.TxPackets == 0 {
				t.Errorf("final stats %+v, %v: want traffic both ways", st, err)
			}
		})
	}
}

// TestKernelAcceptsPrograms loads big generated programs into the kernel,
// whose classic BPF checker is stricter than x/net/bpf's (scratch memory
// must be written before it is read, jumps must stay in the program).
func TestKernelAcceptsPrograms(t *testing.T) {
	tn := newTestNet(t)
	m := &Match{Locals: []LocalRange{{Addr: lip, PortLo: 1024, PortHi: 32767}, {Addr: vip2, PortLo: 0, PortHi: 65535}}}
	for a := range 60 {
		for p := range 20 {
			m.VIPs = append(m.VIPs, Endpoint{Proto: protoTCP, Addr: [4]byte{10, 1, 0, byte(a)}, Port: uint16(1000 + p)})
			m.NATReals = append(m.NATReals, Endpoint{Proto: protoUDP, Addr: [4]byte{10, 2, 0, byte(a)}, Port: uint16(2000 + p)})
		}
	}
	// IPv6 endpoints beside them: the IPv6 section comes last, after the
	// IPv4 fragment code, and must store what it reads itself.
	for a := range 20 {
		for p := range 5 {
			addr, real := vip6, natReal6
			addr[14], real[14] = byte(a), byte(a)
			m.VIPs6 = append(m.VIPs6, Endpoint6{Proto: protoTCP, Addr: addr, Port: uint16(1000 + p)})
			m.NATReals6 = append(m.NATReals6, Endpoint6{Proto: protoUDP, Addr: real, Port: uint16(2000 + p)})
		}
	}
	for a := range 4 { // a handful of IPv6 FULLNAT local addresses
		lip := vip6
		lip[13] = byte(a)
		m.Locals6 = append(m.Locals6, LocalRange6{Addr: lip, PortLo: 1024, PortHi: 32767})
	}
	filter := mustFilter(t, m)
	for _, workers := range []int{1, 3, 64} {
		steer, err := SteeringProgram(m, workers)
		if err != nil {
			t.Fatal(err)
		}
		steerSYN, err := SteeringProgramSYN(m, workers)
		if err != nil {
			t.Fatal(err)
		}
		l := tn.open(t, Config{Interface: tn.b, FanoutGroup: uint16(100 + workers), Steering: steer, Filter: filter})
		if err := l.SetSteering(steer); err != nil {
			t.Errorf("SetSteering: %v", err)
		}
		if err := l.SetSteering(steerSYN); err != nil {
			t.Errorf("SetSteering (SYN rings): %v", err)
		}
		if err := l.SetFilter(filter); err != nil {
			t.Errorf("SetFilter: %v", err)
		}
	}
	t.Logf("filter %d instructions", len(filter))
}

func (tn *testNet) setUp(t *testing.T, name string, up bool) {
	t.Helper()
	tn.do(t, func() error {
		l, err := netlink.LinkByName(name)
		if err != nil {
			return err
		}
		if up {
			return netlink.LinkSetUp(l)
		}
		return netlink.LinkSetDown(l)
	})
}

// TestLinkInterfaceDown takes the interfaces down under open links: Write
// fails with ENETDOWN and counts the frames, Read reports ENETDOWN once, and
// both work again when the interfaces come back.
func TestLinkInterfaceDown(t *testing.T) {
	for _, mode := range txModes {
		t.Run(mode.String(), func(t *testing.T) {
			tn := newTestNet(t)
			rx := tn.open(t, Config{Interface: tn.b, Filter: mustFilter(t, testMatch())})
			tx := tn.sender(t, mode)
			frames := [][]byte{ipv4Frame(t, protoUDP, client, 1, vip, 53), ipv4Frame(t, protoUDP, client, 2, vip, 53)}

			tn.setUp(t, tn.a, false)
			n, err := tx.Write(frames, nil)
			if n != 0 || !errors.Is(err, unix.ENETDOWN) {
				t.Fatalf("Write on a down interface = %d, %v; want 0, ENETDOWN", n, err)
			}
			if st, _ := tx.Stats(); st.TxErrors != 2 || st.TxPackets != 0 {
				t.Errorf("stats %+v, want 2 errors", st)
			}
			tn.setUp(t, tn.a, true)

			tn.setUp(t, tn.b, false)
			bufs, sizes := [][]byte{make([]byte, 2048)}, []int{0}
			if _, err := rx.Read(bufs, sizes, nil, 0); !errors.Is(err, unix.ENETDOWN) {
				t.Errorf("Read on a downed interface: %v, want ENETDOWN", err)
			}
			if n, err := rx.Read(bufs, sizes, nil, 0); n != 0 || err != nil {
				t.Errorf("second Read = %d, %v; want a quiet timeout", n, err)
			}
			tn.setUp(t, tn.b, true)

			// Both links resume; the TX ring sends in order from where it
			// stopped.
			var got [][]byte
			for deadline := time.Now().Add(3 * time.Second); len(got) < 2 && time.Now().Before(deadline); {
				if n, err := tx.Write(frames, nil); n != 2 || err != nil {
					time.Sleep(10 * time.Millisecond) // the veth carrier may take a moment
					continue
				}
				got = readFor(t, rx, 2, 500*time.Millisecond)
			}
			if !sameFrames(got, frames) {
				t.Fatalf("after the interfaces came back read %d frames, want 2", len(got))
			}
		})
	}
}

// TestLinkSYNRing: with SYN rings, a burst of SYNs that overflows a
// worker's SYN ring costs no frame of an established connection, and Read
// hands over the main ring's frames before any SYN.
func TestLinkSYNRing(t *testing.T) {
	const workers = 2
	tn := newTestNet(t)
	m := testMatch()
	steer, err := SteeringProgramSYN(m, workers)
	if err != nil {
		t.Fatal(err)
	}
	filter := mustFilter(t, m)
	var links [workers]*Link
	for i := range links {
		links[i] = tn.open(t, Config{Interface: tn.b, FanoutGroup: 0x4743, Steering: steer, Filter: filter,
			BlockSize: 4096, NumBlocks: 16, SYNBlocks: 2})
	}
	tx := tn.sender(t, TxDefault)

	rng := rand.New(rand.NewPCG(9, 10))
	var syns, acks [workers][][]byte
	var frames [][]byte
	for i := range 40 {
		var c [4]byte
		binary.BigEndian.PutUint32(c[:], rng.Uint32())
		cport := uint16(1024 + i)
		w := SteerHash(c, cport) % workers
		for range 10 { // the flood: far more than two 4 KiB blocks hold
			syn := withTCPFlags(append(ipv4Frame(t, protoTCP, c, cport, vip, 80), make([]byte, 400)...), tcpSYN)
			syns[w] = append(syns[w], syn)
			frames = append(frames, syn)
		}
		ack := withTCPFlags(ipv4Frame(t, protoTCP, c, cport, vip, 80), tcpACK)
		acks[w] = append(acks[w], ack)
		frames = append(frames, ack)
	}
	if n, err := tx.Write(frames, nil); n != len(frames) || err != nil {
		t.Fatalf("Write = %d, %v", n, err)
	}
	time.Sleep(50 * time.Millisecond)
	for i, l := range links {
		st, err := l.Stats()
		if err != nil {
			t.Fatal(err)
		}
		if st.Drops != 0 || st.Packets != uint64(len(acks[i])) {
			t.Errorf("worker %d main ring: %d packets, %d dropped; want its %d ACKs and no drop", i, st.Packets, st.Drops, len(acks[i]))
		}
		if st.SYNPackets != uint64(len(syns[i])) || st.SYNDrops == 0 {
			t.Errorf("worker %d SYN ring: %d packets, %d dropped; want its %d SYNs, some dropped", i, st.SYNPackets, st.SYNDrops, len(syns[i]))
		}
		bufs := make([][]byte, 64)
		for j := range bufs {
			bufs[j] = make([]byte, 2048)
		}
		sizes := make([]int, len(bufs))
		n, err := l.Read(bufs, sizes, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		var first [][]byte
		for j := range min(n, len(acks[i])) {
			first = append(first, bytes.Clone(bufs[j][:sizes[j]]))
		}
		if !sameFrames(first, acks[i]) {
			t.Errorf("worker %d: the first %d frames read are not its %d ACKs: the SYN ring was read first", i, len(first), len(acks[i]))
		}
		if n <= len(acks[i]) {
			t.Errorf("worker %d: Read returned %d frames, want its ACKs and then SYNs", i, n)
		}
	}
	for i, l := range links {
		if err := l.Close(); err != nil {
			t.Errorf("close %d: %v", i, err)
		}
		if st, _ := l.Stats(); st.SYNPackets != uint64(len(syns[i])) {
			t.Errorf("worker %d: after Close the SYN ring counters are %+v", i, st)
		}
	}
}

// BenchmarkPingPong measures the round trip of one frame through two links
// over a veth pair, the latency a lone request gains in the dataplane: A
// writes it, B (a goroutine of its own, blocked in Read as an idle worker
// is) reads it and writes a reply, and A reads that. Both links have
// default-sized rings.
func BenchmarkPingPong(b *testing.B) {
	tn := newTestNet(b)
	filter := mustFilter(b, testMatch())
	la := tn.open(b, Config{Interface: tn.a, Filter: filter, BlockSize: DefaultBlockSize, NumBlocks: DefaultNumBlocks})
	lb := tn.open(b, Config{Interface: tn.b, Filter: filter, BlockSize: DefaultBlockSize, NumBlocks: DefaultNumBlocks})
	ping := [][]byte{ipv4Frame(b, protoUDP, client, 40000, vip, 53)}
	pong := [][]byte{ipv4Frame(b, protoUDP, natReal, 53, lip, 20000)}
	echoed := make(chan error, 1)
	go func() { echoed <- echo(lb, pong) }()

	bufs, sizes := [][]byte{make([]byte, 2048)}, []int{0}
	b.ReportAllocs()
	for b.Loop() {
		if n, err := la.Write(ping, nil); n != 1 || err != nil {
			b.Fatalf("Write = %d, %v", n, err)
		}
		n := 0
		for tries := 0; n == 0 && tries < 10; tries++ { // each empty Read is a 100 ms timeout
			var err error
			if n, err = la.Read(bufs, sizes, nil, 0); err != nil {
				b.Fatalf("Read: %v", err)
			}
		}
		if n != 1 {
			b.Fatal("no reply")
		}
	}
	b.StopTimer()
	_ = lb.Close()
	if err := <-echoed; !errors.Is(err, net.ErrClosed) {
		b.Errorf("echo: %v", err)
	}
}

// echo answers every frame l reads with reply, until l is closed.
func echo(l *Link, reply [][]byte) error {
	bufs, sizes := [][]byte{make([]byte, 2048)}, []int{0}
	for {
		n, err := l.Read(bufs, sizes, nil, 0)
		if err != nil {
			return err
		}
		if n > 0 {
			if _, err := l.Write(reply, nil); err != nil {
				return err
			}
		}
	}
}

// TestLinkHoldP reads with HoldP on a locked thread while GOMAXPROCS is 2,
// as gvsd runs (one P for each waiting worker, and the rest for everything
// else): frames arrive, a garbage collection still stops the world (the
// runtime's preemption signal ends the wait), and Close wakes the reader.
// With GOMAXPROCS 1 the same test passes, slowly: the test goroutine then
// runs only when the runtime preempts the reader, every 10 ms, and a GC
// takes 150 ms instead of 2 ms.
func TestLinkHoldP(t *testing.T) {
	tn := newTestNet(t)
	rx := tn.open(t, Config{Interface: tn.b, Filter: mustFilter(t, testMatch()), HoldP: true})
	tx := tn.sender(t, TxSendmmsg)
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(2))

	type result struct {
		frames [][]byte
		err    error
	}
	done := make(chan result, 1)
	want := 3
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		bufs, sizes := [][]byte{make([]byte, 2048)}, []int{0}
		var r result
		for {
			n, err := rx.Read(bufs, sizes, nil, 0)
			if err != nil {
				r.err = err
				done <- r
				return
			}
			for i := range n {
				r.frames = append(r.frames, bytes.Clone(bufs[i][:sizes[i]]))
			}
		}
	}()
	time.Sleep(20 * time.Millisecond) // let the reader block in ppoll
	for i := range 5 {
		start := time.Now()
		runtime.GC()
		if d := time.Since(start); d > 2*time.Second {
			t.Fatalf("GC %d took %v while a HoldP reader waited", i, d)
		} else {
			t.Logf("GC %d: %v", i, d)
		}
	}
	var sent [][]byte
	for i := range want {
		f := ipv4Frame(t, protoTCP, client, uint16(40000+i), vip, 80)
		sent = append(sent, f)
		if n, err := tx.Write([][]byte{f}, nil); err != nil || n != 1 {
			t.Fatalf("Write = %d, %v", n, err)
		}
	}
	// The reader has the frames when its stats say so; then Close ends it.
	deadline := time.Now().Add(5 * time.Second)
	for {
		st, err := rx.Stats()
		if err != nil {
			t.Fatal(err)
		}
		if st.Packets >= uint64(want) || time.Now().After(deadline) {
			break
		}
		time.Sleep(time.Millisecond)
	}
	time.Sleep(20 * time.Millisecond)
	if err := rx.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case r := <-done:
		if !errors.Is(r.err, net.ErrClosed) {
			t.Errorf("Read ended with %v, want net.ErrClosed", r.err)
		}
		if !sameFrames(r.frames, sent) {
			t.Errorf("read %d frames, want the %d sent", len(r.frames), len(sent))
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not end a HoldP Read")
	}
}

// TestLinkBusyPoll reads with BusyPoll: frames sent in bursts with pauses
// between them all arrive, an idle link spins only BusyPoll per wait (the
// thread's CPU time stays far below the time that passed), and Close ends
// a spinning Read.
func TestLinkBusyPoll(t *testing.T) {
	tn := newTestNet(t)
	rx := tn.open(t, Config{Interface: tn.b, Filter: mustFilter(t, testMatch()), BusyPoll: time.Millisecond})
	tx := tn.sender(t, TxSendmmsg)

	type result struct {
		frames  [][]byte
		err     error
		idleCPU time.Duration // thread CPU time of the first 300 ms, without frames
	}
	done := make(chan result, 1)
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		bufs, sizes := [][]byte{make([]byte, 2048), make([]byte, 2048)}, []int{0, 0}
		var r result
		start, cpu0 := time.Now(), threadCPU(t)
		for time.Since(start) < 300*time.Millisecond {
			if n, err := rx.Read(bufs, sizes, nil, 0); n != 0 || err != nil {
				r.err = fmt.Errorf("idle Read = %d, %v", n, err)
				done <- r
				return
			}
		}
		r.idleCPU = threadCPU(t) - cpu0
		for {
			n, err := rx.Read(bufs, sizes, nil, 0)
			if err != nil {
				r.err = err
				done <- r
				return
			}
			for i := range n {
				r.frames = append(r.frames, bytes.Clone(bufs[i][:sizes[i]]))
			}
		}
	}()
	time.Sleep(350 * time.Millisecond)
	var sent [][]byte
	for burst := range 20 {
		var b [][]byte
		for i := range 3 {
			b = append(b, ipv4Frame(t, protoTCP, client, uint16(40000+3*burst+i), vip, 80))
		}
		if n, err := tx.Write(b, nil); err != nil || n != len(b) {
			t.Fatalf("Write = %d, %v", n, err)
		}
		sent = append(sent, b...)
		time.Sleep(time.Duration(burst%4) * 300 * time.Microsecond) // within and beyond the spin
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		st, err := rx.Stats()
		if err != nil {
			t.Fatal(err)
		}
		if st.Packets >= uint64(len(sent)) || time.Now().After(deadline) {
			break
		}
		time.Sleep(time.Millisecond)
	}
	time.Sleep(20 * time.Millisecond) // the last frames from the ring into the reader
	closeAt := time.Now()
	if err := rx.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case r := <-done:
		if !errors.Is(r.err, net.ErrClosed) {
			t.Fatalf("Read ended with %v, want net.ErrClosed", r.err)
		}
		if d := time.Since(closeAt); d > 2*time.Second {
			t.Errorf("Read ended %v after Close", d)
		}
		if !sameFrames(r.frames, sent) {
			t.Errorf("read %d frames, want the %d sent", len(r.frames), len(sent))
		}
		// 1 ms of spinning per 100 ms poll: about 3 ms in 300 ms, and
		// 300 ms if it spun all the time.
		if r.idleCPU > 100*time.Millisecond {
			t.Errorf("an idle reader used %v of CPU in 300 ms with BusyPoll 1ms", r.idleCPU)
		}
		t.Logf("idle reader CPU time in 300 ms: %v", r.idleCPU)
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not end a BusyPoll Read")
	}
}

// threadCPU is the calling thread's CPU time (RUSAGE_THREAD).
func threadCPU(t testing.TB) time.Duration {
	var ru unix.Rusage
	if err := unix.Getrusage(unix.RUSAGE_THREAD, &ru); err != nil {
		t.Error(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
