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
		func() connsync.Conn { x := c; x.Flags |= connsync.FlagInSeq; return x }(),
		func() connsync.Conn { x := c; x.Local = netip.MustParseAddrPort("[fd00:20::2]:5001"); return x }(),
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
}
