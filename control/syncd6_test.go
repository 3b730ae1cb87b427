package control

import (
	"net/netip"
	"testing"
	"time"

	"github.com/gvs-lb/gvs/conntrack"
	connsync "github.com/gvs-lb/gvs/control/sync"
	"github.com/gvs-lb/gvs/dataplane"
	"github.com/gvs-lb/gvs/dataplane/afpacket"
)

// TestSyncRecordRoundTrip6: an IPv6 entry becomes a struct ip_vs_sync_v6
// record as IPVS writes one, goes through the wire, and comes back on the
// backup as the entry Install6 expects.
func TestSyncRecordRoundTrip6(t *testing.T) {
	tm := conntrack.Timeouts{TCP: 15 * time.Minute, TCPFin: 2 * time.Minute, UDP: 5 * time.Minute}
	const now = int64(100 * time.Second)
	base := conntrack.Entry6{Client: netip.MustParseAddr("fd00:10::2").As16(), ClientPort: 40000,
		VIP: netip.MustParseAddr("fd00:20::100").As16(), VPort: 80,
		Real: netip.MustParseAddr("fd00:20::11").As16(), RPort: 8080, ClientMAC: [6]byte{2, 0, 0, 0, 0, 1}, RealID: 7}
	for _, tc := range []struct {
		name    string
		fwd     dataplane.Forward
		proto   uint8
		state   conntrack.State
		flags   uint32
		wstate  uint16
		timeout time.Duration
	}{
		{"dr established", dataplane.ForwardDR, 6, conntrack.TCPEstablished, connsync.FlagDRoute, 1, 900 * time.Second},
		{"nat fin_wait", dataplane.ForwardNAT, 6, conntrack.TCPFinWait, connsync.FlagMasq | connsync.FlagInactive, 4, 120 * time.Second},
		{"nat udp", dataplane.ForwardNAT, 17, conntrack.UDP, connsync.FlagMasq | connsync.FlagInactive, 0, 300 * time.Second},
		{"tun established", dataplane.ForwardTUN, 6, conntrack.TCPEstablished, connsync.FlagTunnel, 1, 900 * time.Second},
	} {
		e := base
		e.Forward, e.Proto, e.State = uint8(tc.fwd), tc.proto, tc.state
		e.Expires = now + int64(tc.timeout) - int64(300*time.Millisecond)
		c, ok := connOf6(&dataplane.SyncConn6{Entry: e}, now)
		if !ok || !c.Is6() || c.Flags != tc.flags || c.State != tc.wstate || c.Timeout != tc.timeout {
			t.Fatalf("%s: record %+v (ok %v)", tc.name, c, ok)
		}
		b, err := (&connsync.Message{Conns: []connsync.Conn{c}}).Marshal(nil)
		if err != nil || len(b) != connsync.HeaderLen+connsync.ConnLen6 {
			t.Fatalf("%s: %d bytes, %v", tc.name, len(b), err)
		}
		m, err := connsync.Parse(b)
		if err != nil {
			t.Fatal(err)
		}
		sc, ok := entryOf6(&m.Conns[0], &tm)
		back := sc.Entry
		if !ok || back.State != e.State || back.ForwardKey() != e.ForwardKey() || back.ReplyKey() != e.ReplyKey() ||
			back.Expires != int64(tc.timeout) || back.Flags != 0 {
			t.Fatalf("%s: back %+v", tc.name, back)
		}
	}
	e := base
	e.Forward, e.Proto, e.State, e.Expires = uint8(dataplane.ForwardDR), 6, conntrack.TCPEstablished, now
	if _, ok := connOf6(&dataplane.SyncConn6{Entry: e}, now); ok {
		t.Error("an expired entry became a record")
	}
	e.Expires = now + 1
	c, _ := connOf6(&dataplane.SyncConn6{Entry: e}, now)
	for _, bad := range []connsync.Conn{
		func() connsync.Conn { x := c; x.Flags |= connsync.FlagNoCport; return x }(),
		func() connsync.Conn { x := c; x.Local = netip.MustParseAddrPort("10.20.0.2:5001"); return x }(),
		func() connsync.Conn { x := c; x.Protocol = 132; return x }(),
		func() connsync.Conn { x := c; x.State = connsync.TCPStateLast; return x }(),
	} {
		if _, ok := entryOf6(&bad, &tm); ok {
			t.Errorf("installed %+v", bad)
		}
	}
	c.Timeout = 0
	if got, _ := entryOf6(&c, &tm); got.Entry.Expires != int64(tm.TCP) {
		t.Errorf("zero timeout: %v left, want the backup's tcp timeout", time.Duration(got.Entry.Expires))
	}
	// A template: FlagTemplate, client port 0, and back as a template.
	tpl := base
	tpl.ClientPort, tpl.Forward, tpl.Proto, tpl.Flags, tpl.Expires = 0, uint8(dataplane.ForwardDR), 6, dataplane.SyncTemplate, now+int64(300*time.Second)
	tc, ok := connOf6(&dataplane.SyncConn6{Entry: tpl}, now)
	if !ok || tc.Flags != connsync.FlagDRoute|connsync.FlagTemplate || tc.Client.Port() != 0 {
		t.Fatalf("template record %+v", tc)
	}
	if back, ok := entryOf6(&tc, &tm); !ok || back.Entry.Flags != dataplane.SyncTemplate || back.Entry.Client != tpl.Client {
		t.Fatalf("template back %+v", back)
	}
}

// TestSyncTranslatedRecords6 is TestSyncFullNATRecord,
// TestSyncProxyHeaderRecord and the SYN proxy's round trip for IPv6: a
// FULLNAT connection (its local address and port in the 18-byte OptLocal,
// its offsets), a SYN-proxied NAT or FULLNAT one (its deltas), and a NAT
// or FULLNAT one whose real got a PROXY header go out as struct
// ip_vs_sync_v6 records with their options, survive the wire, and come
// back as the connection the master had. A pending SYN-proxied one is not
// sent.
func TestSyncTranslatedRecords6(t *testing.T) {
	const now = int64(100 * time.Second)
	local := netip.MustParseAddrPort("[fd00:20::2]:5001")
	base := conntrack.Entry6{Client: netip.MustParseAddr("fd00:10::2").As16(), ClientPort: 40000,
		VIP: netip.MustParseAddr("fd00:20::100").As16(), VPort: 80,
		Real: netip.MustParseAddr("fd00:20::11").As16(), RPort: 8080,
		Proto: 6, State: conntrack.TCPEstablished, Expires: now + int64(900*time.Second)}
	for _, tc := range []struct {
		name string
		fwd  dataplane.Forward
		set  func(sc *dataplane.SyncConn6)
		want func(c *connsync.Conn) bool
	}{
		{"fullnat translated", dataplane.ForwardFullNAT,
			func(sc *dataplane.SyncConn6) { sc.SetFullNATOffsets(0x11223344, 0x55667788) },
			func(c *connsync.Conn) bool {
				return c.Flags == connsync.FlagMasq|connsync.FlagInSeq|connsync.FlagOutSeq && c.InSeq.Delta == 0x11223344 &&
					c.OutSeq.Delta == 0 && c.HasTSOffset && c.TSOffset == 0x55667788 && !c.ProxyHeader
			}},
		{"fullnat syn-proxied", dataplane.ForwardFullNAT,
			func(sc *dataplane.SyncConn6) { sc.SetSeqDeltas(0x01020304, 0xa0b0c0d0) },
			func(c *connsync.Conn) bool {
				return c.Flags == connsync.FlagMasq|connsync.FlagInSeq|connsync.FlagOutSeq && c.InSeq.Delta == 0x01020304 &&
					c.OutSeq.Delta == 0xa0b0c0d0 && !c.HasTSOffset
			}},
		{"nat syn-proxied", dataplane.ForwardNAT,
			func(sc *dataplane.SyncConn6) { sc.SetSeqDeltas(0x01020304, 0xa0b0c0d0) },
			func(c *connsync.Conn) bool {
				return c.InSeq.Delta == 0x01020304 && c.OutSeq.Delta == 0xa0b0c0d0 && !c.HasTSOffset
			}},
		{"nat proxy header", dataplane.ForwardNAT,
			func(sc *dataplane.SyncConn6) { sc.SetFullNATOffsets(28, 0); sc.SetProxyHeader() },
			func(c *connsync.Conn) bool { return c.InSeq.Delta == 28 && c.HasTSOffset && c.ProxyHeader }},
		{"fullnat proxy header", dataplane.ForwardFullNAT,
			func(sc *dataplane.SyncConn6) { sc.SetFullNATOffsets(0x11223344, 0x55667788); sc.SetProxyHeader() },
			func(c *connsync.Conn) bool { return c.InSeq.Delta == 0x11223344 && c.HasTSOffset && c.ProxyHeader }},
	} {
		var sc dataplane.SyncConn6
		sc.Entry = base
		sc.Entry.Forward = uint8(tc.fwd)
		if tc.fwd == dataplane.ForwardFullNAT {
			sc.Entry.Local, sc.Entry.LPort = local.Addr().As16(), local.Port()
		}
		tc.set(&sc)
		c, ok := connOf6(&sc, now)
		if !ok || !tc.want(&c) || (tc.fwd == dataplane.ForwardFullNAT) != (c.Local == local) {
			t.Fatalf("%s: record %+v (ok %v)", tc.name, c, ok)
		}
		b, err := (&connsync.Message{Conns: []connsync.Conn{c}}).Marshal(nil)
		if err != nil {
			t.Fatal(err)
		}
		m, err := connsync.Parse(b)
		if err != nil {
			t.Fatal(err)
		}
		back, ok := entryOf6(&m.Conns[0], &conntrack.Timeouts{})
		if !ok || back.Aux != sc.Aux || back.Entry.Flags != sc.Entry.Flags || back.Entry.Local != sc.Entry.Local ||
			back.Entry.LPort != sc.Entry.LPort || back.Entry.ReplyKey() != sc.Entry.ReplyKey() {
			t.Fatalf("%s: back %+v (ok %v), want %+v", tc.name, back, ok, sc)
		}
		in1, out1 := back.SeqDeltas()
		in0, out0 := sc.SeqDeltas()
		if in1 != in0 || out1 != out0 || back.TSOffset() != sc.TSOffset() {
			t.Fatalf("%s: back deltas %#x %#x ts %#x, want %#x %#x %#x", tc.name, in1, out1, back.TSOffset(), in0, out0, sc.TSOffset())
		}
	}
	var pending dataplane.SyncConn6
	pending.Entry = base
	pending.Entry.Forward = uint8(dataplane.ForwardNAT)
	pending.SetSeqDeltas(1, 2)
	pending.Entry.Flags |= 1 << 3 // flagSynPending
	if !pending.SynPending() {
		t.Fatal("flagSynPending moved: fix the test")
	}
	if _, ok := connOf6(&pending, now); ok {
		t.Error("a pending SYN-proxied connection became a record")
	}
}

// TestSyncOwnerMatchesSteering6: an IPv6 connection goes to the worker the
// IPv6 steering program sends its client's packets to.
func TestSyncOwnerMatchesSteering6(t *testing.T) {
	owner := syncOwner6(4)
	seen := map[int]bool{}
	for p := range uint16(64) {
		e := conntrack.Entry6{Client: netip.MustParseAddr("fd00:10::2").As16(), ClientPort: 40000 + p}
		want := int(afpacket.SteerHash6(e.Client, e.ClientPort) % 4)
		if got := owner(&e); got != want {
			t.Fatalf("owner %d, want %d", got, want)
		}
		seen[want] = true
	}
	if len(seen) != 4 {
		t.Fatalf("64 client ports reach %d of 4 workers", len(seen))
	}
	// FULLNAT: the reply to the local port reaches worker LPort % 4.
	for p := range uint16(64) {
		e := conntrack.Entry6{Client: netip.MustParseAddr("fd00:10::2").As16(), ClientPort: 40000 + p,
			Local: netip.MustParseAddr("fd00:20::2").As16(), LPort: 5000 + p}
		want := int(afpacket.SteerHash6(e.Client, e.ClientPort) % 4)
		if int(e.LPort%4) != want {
			want = -1
		}
		if got := owner(&e); got != want {
			t.Fatalf("FULLNAT owner %d, want %d", got, want)
		}
	}
}
