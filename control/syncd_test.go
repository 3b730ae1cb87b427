package control

import (
	"testing"
	"time"

	"github.com/gvs-lb/gvs/conntrack"
	"github.com/gvs-lb/gvs/control/config"
	connsync "github.com/gvs-lb/gvs/control/sync"
	"github.com/gvs-lb/gvs/dataplane"
	"github.com/gvs-lb/gvs/dataplane/afpacket"
)

// TestSyncRecordRoundTrip: an entry becomes a sync record as IPVS would
// write it (method flags, FlagInactive, state numbers, time left) and
// comes back on the backup as the entry Install expects.
func TestSyncRecordRoundTrip(t *testing.T) {
	tm := conntrack.Timeouts{TCP: 15 * time.Minute, TCPFin: 2 * time.Minute, UDP: 5 * time.Minute}
	const now = int64(100 * time.Second)
	base := conntrack.Entry4{Client: [4]byte{10, 10, 0, 2}, ClientPort: 40000, VIP: [4]byte{10, 20, 0, 100}, VPort: 80,
		Real: [4]byte{10, 20, 0, 11}, RPort: 8080, ClientMAC: [6]byte{2, 0, 0, 0, 0, 1}, RealID: 7}
	for _, tc := range []struct {
		name    string
		fwd     dataplane.Forward
		proto   uint8
		state   conntrack.State
		flags   uint32
		wstate  uint16
		local   bool
		timeout time.Duration
	}{
		{"dr established", dataplane.ForwardDR, 6, conntrack.TCPEstablished, connsync.FlagDRoute, 1, false, 900 * time.Second},
		{"tun syn_recv", dataplane.ForwardTUN, 6, conntrack.TCPSynRecv, connsync.FlagTunnel, 3, false, 60 * time.Second}, // active, as in current kernels
		{"nat fin_wait", dataplane.ForwardNAT, 6, conntrack.TCPFinWait, connsync.FlagMasq | connsync.FlagInactive, 4, false, 120 * time.Second},
		{"fullnat established", dataplane.ForwardFullNAT, 6, conntrack.TCPEstablished, connsync.FlagMasq, 1, true, 900 * time.Second},
		{"nat udp", dataplane.ForwardNAT, 17, conntrack.UDP, connsync.FlagMasq | connsync.FlagInactive, 0, false, 300 * time.Second},
	} {
		e := base
		e.Forward, e.Proto, e.State = uint8(tc.fwd), tc.proto, tc.state
		if tc.local {
			e.Local, e.LPort = [4]byte{10, 20, 0, 2}, 5001
		}
		e.Expires = now + int64(tc.timeout) - int64(300*time.Millisecond) // rounds up to tc.timeout
		c, ok := connOf(&dataplane.SyncConn{Entry: e}, now)
		if !ok || c.Flags != tc.flags || c.State != tc.wstate || c.Timeout != tc.timeout || c.Local.IsValid() != tc.local {
			t.Fatalf("%s: record %+v (ok %v)", tc.name, c, ok)
		}
		sc, ok := entryOf(&c, &tm)
		back := sc.Entry
		if !ok || back.State != e.State || back.ForwardKey() != e.ForwardKey() || back.ReplyKey() != e.ReplyKey() ||
			back.Expires != int64(tc.timeout) || sc.SynProxied() {
			t.Fatalf("%s: back %+v", tc.name, back)
		}
	}
	// Expired entries are not sent; connections without a client port,
	// SCTP and impossible states are not installed; a zero timeout takes
	// the backup's own.
	e := base
	e.Forward, e.Proto, e.State, e.Expires = uint8(dataplane.ForwardDR), 6, conntrack.TCPEstablished, now
	if _, ok := connOf(&dataplane.SyncConn{Entry: e}, now); ok {
		t.Error("an expired entry became a record")
	}
	c, _ := connOf(&dataplane.SyncConn{Entry: conntrack.Entry4{Forward: uint8(dataplane.ForwardDR), Proto: 6, State: conntrack.TCPEstablished, Expires: now + 1}}, now)
	for _, bad := range []connsync.Conn{
		func() connsync.Conn { x := c; x.Flags |= connsync.FlagNoCport; return x }(),
		func() connsync.Conn { x := c; x.Flags |= connsync.FlagTemplate; x.Protocol = 132; return x }(),
		func() connsync.Conn { x := c; x.Protocol = 132; return x }(),
		func() connsync.Conn { x := c; x.State = connsync.TCPStateLast; return x }(),
	} {
		if _, ok := entryOf(&bad, &tm); ok {
			t.Errorf("installed %+v", bad)
		}
	}
	c.Timeout = 0
	if got, _ := entryOf(&c, &tm); got.Entry.Expires != int64(tm.TCP) {
		t.Errorf("zero timeout: %v left, want the backup's tcp timeout", time.Duration(got.Entry.Expires))
	}
}

// TestSyncOwnerMatchesSteering: the worker a synced connection goes to is
// the one the steering program sends its client's packets to; a FULLNAT
// connection whose local port belongs to another worker is refused.
func TestSyncOwnerMatchesSteering(t *testing.T) {
	owner := syncOwner(4)
	e := conntrack.Entry4{Client: [4]byte{10, 10, 0, 2}, ClientPort: 40000}
	want := int(afpacket.SteerHash(e.Client, e.ClientPort) % 4)
	if got := owner(&e); got != want {
		t.Fatalf("owner %d, want %d", got, want)
	}
	e.Local, e.LPort = [4]byte{10, 20, 0, 2}, uint16(1024+want) // 1024 % 4 == 0
	if got := owner(&e); got != want {
		t.Fatalf("FULLNAT with the worker's port: owner %d, want %d", got, want)
	}
	e.LPort++
	if got := owner(&e); got != -1 {
		t.Fatalf("FULLNAT with another worker's port: owner %d, want -1", got)
	}
}

// TestSyncTemplateRecord: a persistence template goes out as IPVS writes
// one (FlagTemplate, client port 0, state 0) and comes back marked as a
// template.
func TestSyncTemplateRecord(t *testing.T) {
	const now = int64(100 * time.Second)
	e := conntrack.Entry4{Client: [4]byte{10, 10, 0, 0}, VIP: [4]byte{10, 20, 0, 100}, VPort: 80, Proto: 6,
		Real: [4]byte{10, 20, 0, 11}, RPort: 80, Forward: uint8(dataplane.ForwardDR), Flags: dataplane.SyncTemplate,
		PersistBits: 24, Expires: now + int64(300*time.Second)}
	c, ok := connOf(&dataplane.SyncConn{Entry: e}, now)
	if !ok || c.Flags != connsync.FlagDRoute|connsync.FlagTemplate || c.State != 0 || c.Client.Port() != 0 || c.Timeout != 300*time.Second {
		t.Fatalf("template record %+v (ok %v)", c, ok)
	}
	sc, ok := entryOf(&c, &conntrack.Timeouts{})
	back := sc.Entry
	if !ok || back.Flags != dataplane.SyncTemplate || back.Client != e.Client || back.Real != e.Real || back.Expires != int64(300*time.Second) {
		t.Fatalf("template back %+v (ok %v)", back, ok)
	}
}

// TestPreemptDelayWithSync: with sync, a director does not take the VIPs
// back before a refresh has taught it the master's connections.
func TestPreemptDelayWithSync(t *testing.T) {
	cfg := &config.Config{VRRP: config.VRRP{AdvertInterval: time.Second, PreemptDelay: 5 * time.Second}}
	if got := preemptDelay(cfg); got != 5*time.Second {
		t.Errorf("without sync: %v", got)
	}
	cfg.Sync = config.Sync{Enabled: true, Refresh: 30 * time.Second}
	if got := preemptDelay(cfg); got != 32*time.Second {
		t.Errorf("with sync: %v, want refresh + 2 adverts", got)
	}
	cfg.VRRP.PreemptDelay = time.Minute
	if got := preemptDelay(cfg); got != time.Minute {
		t.Errorf("a longer preempt_delay: %v", got)
	}
	cfg.Sync.Refresh = 0
	cfg.VRRP.PreemptDelay = 0
	if got := preemptDelay(cfg); got != 0 {
		t.Errorf("sync without refresh: %v", got)
	}
}

// TestSyncSeqRecord: a spliced SYN-proxied connection goes out with IPVS's
// sequence data (FlagInSeq, FlagOutSeq, init_seq 0, previous_delta =
// delta), survives the wire, and comes back with the same offsets; one
// still waiting for its real is not sent.
func TestSyncSeqRecord(t *testing.T) {
	const now = int64(100 * time.Second)
	var sc dataplane.SyncConn
	sc.Entry = conntrack.Entry4{Client: [4]byte{10, 10, 0, 2}, ClientPort: 40000, VIP: [4]byte{10, 20, 0, 100}, VPort: 80,
		Real: [4]byte{10, 20, 0, 11}, RPort: 8080, Local: [4]byte{10, 20, 0, 2}, LPort: 5001, Forward: uint8(dataplane.ForwardFullNAT),
		Proto: 6, State: conntrack.TCPEstablished, Expires: now + int64(900*time.Second)}
	sc.SetSeqDeltas(0x11223344, 0xfedcba98)
	c, ok := connOf(&sc, now)
	if !ok || c.Flags != connsync.FlagMasq|connsync.FlagInSeq|connsync.FlagOutSeq ||
		c.InSeq != (connsync.Seq{InitSeq: 0, Delta: 0x11223344, PreviousDelta: 0x11223344}) ||
		c.OutSeq != (connsync.Seq{InitSeq: 0, Delta: 0xfedcba98, PreviousDelta: 0xfedcba98}) {
		t.Fatalf("record %+v (ok %v)", c, ok)
	}
	b, err := (&connsync.Message{Conns: []connsync.Conn{c}}).Marshal(nil)
	if err != nil {
		t.Fatal(err)
	}
	m, err := connsync.Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	back, ok := entryOf(&m.Conns[0], &conntrack.Timeouts{})
	if !ok || !back.SynProxied() || back.SynPending() || back.Aux != sc.Aux || back.Entry.ReplyKey() != sc.Entry.ReplyKey() {
		t.Fatalf("back %+v (ok %v), want Aux %#x", back, ok, sc.Aux)
	}
	if in, out := back.SeqDeltas(); in != 0x11223344 || out != 0xfedcba98 {
		t.Fatalf("back deltas %#x %#x", in, out)
	}
	// Only the in direction flagged: no out delta.
	c.Flags &^= connsync.FlagOutSeq
	if back, _ := entryOf(&c, &conntrack.Timeouts{}); !back.SynProxied() {
		t.Fatal("FlagInSeq alone: not translated")
	} else if in, out := back.SeqDeltas(); in != 0x11223344 || out != 0 {
		t.Fatalf("FlagInSeq alone: deltas %#x %#x", in, out)
	}
	// UDP with seq flags means nothing.
	c.Protocol, c.State = 17, 0
	if back, _ := entryOf(&c, &conntrack.Timeouts{UDP: time.Minute}); back.SynProxied() {
		t.Fatal("a UDP record became SYN-proxied")
	}
	// A connection whose real has not answered yet is not sent (see
	// connOf); the dataplane says so through SynPending.
	pending := sc
	pending.Entry.Flags |= 1 << 3 // flagSynPending
	if !pending.SynPending() {
		t.Fatal("flagSynPending moved: update this test")
	}
	if _, ok := connOf(&pending, now); ok {
		t.Fatal("a pending SYN-proxied connection became a record")
	}
}

// TestSyncFullNATRecord: a FULLNAT connection whose numbers the director
// translates goes out with its client offset as IPVS's in_seq (out_seq's
// delta 0) and its timestamp offset in gvs's OptTSOffset, survives the
// wire, and comes back translated the same way, not as SYN-proxied; a
// record without OptTSOffset stays SYN-proxied.
func TestSyncFullNATRecord(t *testing.T) {
	const now = int64(100 * time.Second)
	var sc dataplane.SyncConn
	sc.Entry = conntrack.Entry4{Client: [4]byte{10, 10, 0, 2}, ClientPort: 40000, VIP: [4]byte{10, 20, 0, 100}, VPort: 80,
		Real: [4]byte{10, 20, 0, 11}, RPort: 8080, Local: [4]byte{10, 20, 0, 2}, LPort: 5001, Forward: uint8(dataplane.ForwardFullNAT),
		Proto: 6, State: conntrack.TCPEstablished, Expires: now + int64(900*time.Second)}
	sc.SetFullNATOffsets(0x11223344, 0x55667788)
	c, ok := connOf(&sc, now)
	if !ok || c.Flags != connsync.FlagMasq|connsync.FlagInSeq|connsync.FlagOutSeq || c.InSeq.Delta != 0x11223344 ||
		c.OutSeq.Delta != 0 || !c.HasTSOffset || c.TSOffset != 0x55667788 {
		t.Fatalf("record %+v (ok %v)", c, ok)
	}
	b, err := (&connsync.Message{Conns: []connsync.Conn{c}}).Marshal(nil)
	if err != nil {
		t.Fatal(err)
	}
	m, err := connsync.Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	back, ok := entryOf(&m.Conns[0], &conntrack.Timeouts{})
	if !ok || !back.SeqTranslated() || back.SynProxied() || back.Aux != sc.Aux || back.TSOffset() != 0x55667788 {
		t.Fatalf("back %+v (ok %v), want Aux %#x", back, ok, sc.Aux)
	}
	if in, out := back.SeqDeltas(); in != 0x11223344 || out != 0 {
		t.Fatalf("back deltas %#x %#x", in, out)
	}
	m.Conns[0].HasTSOffset = false
	if back, _ := entryOf(&m.Conns[0], &conntrack.Timeouts{}); back.SeqTranslated() || !back.SynProxied() {
		t.Fatalf("without OptTSOffset: %+v, want SYN-proxied", back)
	}
}

// TestSyncProxyHeaderRecord: a FULLNAT or NAT connection whose real got a
// PROXY header goes out with its offset as in_seq, its timestamp offset,
// and gvs's OptProxyHeader, survives the wire and comes back translated
// the same way and flagged, so a backup never sends the header again.
func TestSyncProxyHeaderRecord(t *testing.T) {
	const now = int64(100 * time.Second)
	for _, f := range []dataplane.Forward{dataplane.ForwardFullNAT, dataplane.ForwardNAT} {
		var sc dataplane.SyncConn
		sc.Entry = conntrack.Entry4{Client: [4]byte{10, 10, 0, 2}, ClientPort: 40000, VIP: [4]byte{10, 20, 0, 100}, VPort: 80,
			Real: [4]byte{10, 20, 0, 11}, RPort: 8080, Forward: uint8(f),
			Proto: 6, State: conntrack.TCPEstablished, Expires: now + int64(900*time.Second)}
		if f == dataplane.ForwardFullNAT {
			sc.Entry.Local, sc.Entry.LPort = [4]byte{10, 20, 0, 2}, 5001
		}
		sc.SetFullNATOffsets(0x11223344, 0x55667788)
		sc.SetProxyHeader()
		c, ok := connOf(&sc, now)
		if !ok || !c.ProxyHeader || c.InSeq.Delta != 0x11223344 || !c.HasTSOffset {
			t.Fatalf("%v: record %+v (ok %v)", f, c, ok)
		}
		b, err := (&connsync.Message{Conns: []connsync.Conn{c}}).Marshal(nil)
		if err != nil {
			t.Fatal(err)
		}
		m, err := connsync.Parse(b)
		if err != nil {
			t.Fatal(err)
		}
		back, ok := entryOf(&m.Conns[0], &conntrack.Timeouts{})
		if !ok || !back.SeqTranslated() || !back.ProxyHeader() || back.SynProxied() || back.Aux != sc.Aux {
			t.Fatalf("%v: back %+v (ok %v), want Aux %#x and the header flag", f, back, ok, sc.Aux)
		}
		m.Conns[0].ProxyHeader = false
		if back, _ := entryOf(&m.Conns[0], &conntrack.Timeouts{}); back.ProxyHeader() {
			t.Fatalf("%v: without OptProxyHeader, flagged", f)
		}
	}
}
