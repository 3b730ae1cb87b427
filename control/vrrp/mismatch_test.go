package vrrp

import (
	"net/netip"
	"slices"
	"testing"
	"time"
)

// TestMismatchTable: a peer's Mismatch opens (and is reported) on its first
// mismatched advert, stays open while it goes on or falls silent, is
// reported again for another reason, and closes when it resigns (priority
// 0) or sends an advert we accept; the table holds a bounded number of
// peers.
func TestMismatchTable(t *testing.T) {
	var tab mismatchTable
	other := netip.MustParseAddr("10.0.0.10")
	m := func(d time.Duration, peer netip.Addr, r DropReason) Mismatch {
		return Mismatch{Peer: peer, Reason: r, Version: Version2, Interval: time.Second, Since: at(d), At: at(d)}
	}
	type step struct {
		name            string
		do              func() (report, changed bool)
		report, changed bool
		open            []netip.Addr
	}
	heard := func(mm Mismatch, prio uint8) func() (bool, bool) {
		return func() (bool, bool) { return tab.heard(mm, prio) }
	}
	accepted := func(peer netip.Addr) func() (bool, bool) {
		return func() (bool, bool) { return false, tab.accepted(peer) }
	}
	for _, s := range []step{
		{"first advert", heard(m(0, peerAddr, DropVersion), 200), true, true, []netip.Addr{peerAddr}},
		{"the next", heard(m(time.Second, peerAddr, DropVersion), 200), false, true, []netip.Addr{peerAddr}},
		{"an hour later", heard(m(time.Hour, peerAddr, DropVersion), 200), false, true, []netip.Addr{peerAddr}},
		{"another peer", heard(m(time.Hour, other, DropAuth), 100), true, true, []netip.Addr{peerAddr, other}},
		{"another reason", heard(m(time.Hour, peerAddr, DropAuth), 200), true, true, []netip.Addr{peerAddr, other}},
		{"resigns", heard(m(time.Hour, peerAddr, DropAuth), PriorityStop), false, true, []netip.Addr{other}},
		{"resigns again", heard(m(time.Hour, peerAddr, DropAuth), PriorityStop), false, false, []netip.Addr{other}},
		{"fixed", accepted(other), false, true, nil},
		{"accepted, not open", accepted(other), false, false, nil},
		{"back", heard(m(2*time.Hour, peerAddr, DropVersion), 200), true, true, []netip.Addr{peerAddr}},
	} {
		report, changed := s.do()
		var open []netip.Addr
		for _, o := range tab.list() {
			open = append(open, o.Peer)
		}
		if report != s.report || changed != s.changed || !slices.Equal(open, s.open) {
			t.Errorf("%s: report %v, changed %v, open %v; want %v, %v, %v", s.name, report, changed, open, s.report, s.changed, s.open)
		}
	}
	// Since is when the peer was first heard for its reason; At the last.
	tab = mismatchTable{}
	tab.heard(m(0, peerAddr, DropVersion), 200)
	tab.heard(m(5*time.Second, peerAddr, DropVersion), 200)
	if l := tab.list(); len(l) != 1 || !l[0].Since.Equal(at(0)) || !l[0].At.Equal(at(5*time.Second)) {
		t.Errorf("list %+v, want one heard since 0, last at 5s", l)
	}
	tab.heard(m(6*time.Second, peerAddr, DropAuth), 200)
	if l := tab.list(); len(l) != 1 || !l[0].Since.Equal(at(6*time.Second)) {
		t.Errorf("list %+v, want one heard for auth since 6s", l)
	}

	// Full: a new peer is neither kept nor reported, until one closes.
	tab = mismatchTable{}
	for i := range maxMismatches {
		if report, _ := tab.heard(m(0, netip.AddrFrom4([4]byte{10, 1, 0, byte(i)}), DropVersion), 100); !report {
			t.Fatalf("peer %d not reported", i)
		}
	}
	if report, changed := tab.heard(m(0, other, DropVersion), 100); report || changed {
		t.Error("a peer past the bound was kept")
	}
	tab.accepted(netip.AddrFrom4([4]byte{10, 1, 0, 7}))
	if report, _ := tab.heard(m(0, other, DropVersion), 100); !report {
		t.Error("a new peer was not reported once another had closed")
	}
}
