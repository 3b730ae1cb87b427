package vrrp

import (
	"net/netip"
	"strings"
	"testing"
	"time"
)

// The fake clock is just time.Time values: t0 plus whatever a test adds.
var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func at(d time.Duration) time.Time { return t0.Add(d) }

var (
	vip      = netip.MustParseAddr("192.0.2.10")
	ourAddr  = netip.MustParseAddr("10.0.0.5")
	peerAddr = netip.MustParseAddr("10.0.0.9")
)

func testConfig(prio uint8) Config {
	return Config{
		VRID:      7,
		Priority:  prio,
		Interval:  time.Second,
		Preempt:   true,
		Primary:   ourAddr,
		Addresses: []netip.Addr{vip},
	}
}

func advert(prio uint8, interval time.Duration) Advert {
	return Advert{VRID: 7, Priority: prio, Interval: interval, Addresses: []netip.Addr{vip}}
}

// mustAction fails the test unless got equals want.
func mustAction(t *testing.T, what string, got, want Action) {
	t.Helper()
	if got != want {
		t.Fatalf("%s:\n got %+v\nwant %+v", what, got, want)
	}
}

func mustState(t *testing.T, m *Machine, want State) {
	t.Helper()
	if got := m.State(); got != want {
		t.Fatalf("state %v, want %v", got, want)
	}
}

func TestStateString(t *testing.T) {
	for s, want := range map[State]string{Initialize: "INIT", Backup: "BACKUP", Master: "MASTER", 0: "State(0)"} {
		if got := s.String(); got != want {
			t.Errorf("State(%d).String() = %q, want %q", int(s), got, want)
		}
	}
}

// TestTimerFormulas checks RFC 5798 section 6.1:
// Skew_Time = ((256 - Priority) * Master_Adver_Interval) / 256 and
// Master_Down_Interval = 3 * Master_Adver_Interval + Skew_Time.
func TestTimerFormulas(t *testing.T) {
	tests := []struct {
		prio     uint8
		interval time.Duration
		skew     time.Duration
		down     time.Duration
	}{
		{100, time.Second, 609375 * time.Microsecond, 3609375 * time.Microsecond},         // 156/256 s
		{1, time.Second, 996093750 * time.Nanosecond, 3996093750 * time.Nanosecond},       // 255/256 s
		{254, time.Second, 7812500 * time.Nanosecond, 3007812500 * time.Nanosecond},       // 2/256 s
		{128, 2 * time.Second, time.Second, 7 * time.Second},                              // 128/256 * 2 s
		{255, MinInterval, 39062 * time.Nanosecond, 30039062 * time.Nanosecond},           // 10 ms/256, truncated to ns
		{100, MaxInterval, 24953906250 * time.Nanosecond, 147803906250 * time.Nanosecond}, // 156 * 40.95 s / 256
	}
	for _, tt := range tests {
		c := testConfig(tt.prio)
		c.Interval = tt.interval
		m := NewMachine(c)
		if got := m.SkewTime(); got != tt.skew {
			t.Errorf("priority %d, interval %v: Skew_Time %v, want %v", tt.prio, tt.interval, got, tt.skew)
		}
		if got := m.MasterDownInterval(); got != tt.down {
			t.Errorf("priority %d, interval %v: Master_Down_Interval %v, want %v", tt.prio, tt.interval, got, tt.down)
		}
	}
}

func TestNoPeerBecomesMasterAfterMasterDownInterval(t *testing.T) {
	m := NewMachine(testConfig(100))
	mustState(t, m, Initialize)
	down := 3609375 * time.Microsecond
	mustAction(t, "Start", m.Start(t0), Action{BecomeBackup: true, NextTimer: at(down)})
	mustState(t, m, Backup)
	if m.MasterAddr().IsValid() {
		t.Errorf("MasterAddr %v before any advert, want none", m.MasterAddr())
	}
	mustAction(t, "Tick 1ns early", m.Tick(at(down-1)), Action{NextTimer: at(down)})
	mustState(t, m, Backup)
	mustAction(t, "Tick on time", m.Tick(at(down)),
		Action{SendAdvert: true, AdvertPriority: 100, BecomeMaster: true, NextTimer: at(down + time.Second)})
	mustState(t, m, Master)
	if m.MasterAddr() != ourAddr {
		t.Errorf("MasterAddr %v as master, want ours, %v", m.MasterAddr(), ourAddr)
	}
	// Adver_Timer: an advert every Interval, nothing in between.
	mustAction(t, "early Adver_Timer", m.Tick(at(down+time.Second/2)), Action{NextTimer: at(down + time.Second)})
	for i := time.Duration(1); i <= 3; i++ {
		mustAction(t, "Adver_Timer", m.Tick(at(down+i*time.Second)),
			Action{SendAdvert: true, AdvertPriority: 100, NextTimer: at(down + (i+1)*time.Second)})
	}
	if a := m.Advert(100); a.VRID != 7 || a.Priority != 100 || a.Interval != time.Second || len(a.Addresses) != 1 || a.Addresses[0] != vip {
		t.Errorf("Advert(100) = %+v", a)
	}
}

func TestOwnerStartsAsMaster(t *testing.T) {
	m := NewMachine(testConfig(PriorityOwner))
	mustAction(t, "Start", m.Start(t0),
		Action{SendAdvert: true, AdvertPriority: 255, BecomeMaster: true, NextTimer: at(time.Second)})
	mustState(t, m, Master)
	// A lower-priority advert is discarded by a master.
	mustAction(t, "lower advert", m.Receive(at(time.Second/2), peerAddr, advert(254, time.Second)), Action{NextTimer: at(time.Second)})
	mustState(t, m, Master)
}

func TestHigherPriorityPeerKeepsUsBackup(t *testing.T) {
	for _, preempt := range []bool{true, false} {
		c := testConfig(100)
		c.Preempt = preempt
		m := NewMachine(c)
		m.Start(t0)
		// Our Master_Down_Interval is 3.609375 s; the peer advertises every
		// second for a minute, so the timer never fires.
		for s := time.Duration(1); s <= 60; s++ {
			act := m.Receive(at(s*time.Second), peerAddr, advert(200, time.Second))
			mustAction(t, "advert", act, Action{NextTimer: at(s*time.Second + 3609375*time.Microsecond)})
			mustAction(t, "Tick between adverts", m.Tick(at(s*time.Second+time.Second/2)), act)
		}
		mustState(t, m, Backup)
		if m.MasterAddr() != peerAddr {
			t.Errorf("preempt %v: MasterAddr %v, want %v", preempt, m.MasterAddr(), peerAddr)
		}
		// An equal-priority master also holds us off: ">=" in section 6.4.2.
		m.Receive(at(61*time.Second), peerAddr, advert(100, time.Second))
		mustAction(t, "Tick", m.Tick(at(63*time.Second)), Action{NextTimer: at(61*time.Second + 3609375*time.Microsecond)})
		mustState(t, m, Backup)
	}
}

// TestLowerPriorityPeer: with preemption a backup discards a lower-priority
// master's adverts (RFC 5798 section 6.4.2), so its Master_Down_Timer runs
// out and it takes over; without preemption those adverts reset the timer.
func TestLowerPriorityPeer(t *testing.T) {
	down := 3007812500 * time.Nanosecond // priority 254: 3 s + 2/256 s
	t.Run("preempt", func(t *testing.T) {
		m := NewMachine(testConfig(254))
		m.Start(t0)
		for s := time.Duration(1); s <= 3; s++ {
			mustAction(t, "discarded advert", m.Receive(at(s*time.Second), peerAddr, advert(100, time.Second)), Action{NextTimer: at(down)})
		}
		mustAction(t, "Master_Down_Timer", m.Tick(at(down)),
			Action{SendAdvert: true, AdvertPriority: 254, BecomeMaster: true, NextTimer: at(down + time.Second)})
		mustState(t, m, Master)
		// As master it goes on discarding the lower priority.
		mustAction(t, "lower advert as master", m.Receive(at(4*time.Second), peerAddr, advert(100, time.Second)), Action{NextTimer: at(down + time.Second)})
		mustState(t, m, Master)
	})
	t.Run("no preempt", func(t *testing.T) {
		c := testConfig(254)
		c.Preempt = false
		m := NewMachine(c)
		m.Start(t0)
		for s := time.Duration(1); s <= 60; s++ {
			mustAction(t, "advert", m.Receive(at(s*time.Second), peerAddr, advert(100, time.Second)), Action{NextTimer: at(s*time.Second + down)})
			m.Tick(at(s*time.Second + time.Second/2))
		}
		mustState(t, m, Backup)
		if m.MasterAddr() != peerAddr {
			t.Errorf("MasterAddr %v, want %v", m.MasterAddr(), peerAddr)
		}
	})
}

func TestMasterYieldsToHigherPriority(t *testing.T) {
	m := NewMachine(testConfig(PriorityOwner - 1))
	m.Start(t0)
	m.Tick(at(10 * time.Second))
	mustState(t, m, Master)
	now := at(10*time.Second + time.Second/4)
	// The new master advertises every 2 s; our Master_Down_Interval follows it:
	// 3*2 s + (2*2 s)/256.
	want := Action{BecomeBackup: true, NextTimer: now.Add(6*time.Second + 15625*time.Microsecond)}
	mustAction(t, "higher advert", m.Receive(now, peerAddr, advert(PriorityOwner, 2*time.Second)), want)
	mustState(t, m, Backup)
	if m.MasterAddr() != peerAddr || m.MasterAdverInterval() != 2*time.Second {
		t.Errorf("MasterAddr %v, MasterAdverInterval %v; want %v, 2s", m.MasterAddr(), m.MasterAdverInterval(), peerAddr)
	}
}

// TestTieBreak: equal priorities are settled by the primary address, compared
// as an unsigned 32-bit integer (section 6.4.3).
func TestTieBreak(t *testing.T) {
	tests := []struct {
		ours, peer string
		yield      bool
	}{
		{"10.0.0.5", "10.0.0.9", true},
		{"10.0.0.5", "10.0.0.3", false},
		{"10.0.0.5", "200.0.0.1", true}, // above 2^31: a signed compare would get these two wrong
		{"200.0.0.1", "10.0.0.5", false},
		{"10.0.1.0", "10.0.0.255", false},
	}
	for _, tt := range tests {
		c := testConfig(100)
		c.Primary = netip.MustParseAddr(tt.ours)
		m := NewMachine(c)
		m.Start(t0)
		m.Tick(at(4 * time.Second))
		mustState(t, m, Master)
		act := m.Receive(at(5*time.Second), netip.MustParseAddr(tt.peer), advert(100, time.Second))
		if act.BecomeBackup != tt.yield || (m.State() == Backup) != tt.yield {
			t.Errorf("ours %s, peer %s: %+v, state %v; want yield=%v", tt.ours, tt.peer, act, m.State(), tt.yield)
		}
		if act.SendAdvert || act.BecomeMaster {
			t.Errorf("ours %s, peer %s: unexpected %+v", tt.ours, tt.peer, act)
		}
	}
}

func TestShutdown(t *testing.T) {
	m := NewMachine(testConfig(200))
	m.Start(t0)
	m.Tick(at(4 * time.Second))
	mustState(t, m, Master)
	mustAction(t, "Shutdown as master", m.Shutdown(at(5*time.Second)), Action{SendAdvert: true, AdvertPriority: PriorityStop, BecomeBackup: true})
	mustState(t, m, Initialize)
	mustAction(t, "Tick after Shutdown", m.Tick(at(10*time.Second)), Action{})
	mustAction(t, "Receive after Shutdown", m.Receive(at(10*time.Second), peerAddr, advert(100, time.Second)), Action{})

	b := NewMachine(testConfig(100))
	b.Start(t0)
	mustAction(t, "Shutdown as backup", b.Shutdown(at(time.Second)), Action{BecomeBackup: true})
	mustAction(t, "Shutdown twice", b.Shutdown(at(time.Second)), Action{})
	// Start again after Shutdown: a new Startup event.
	mustAction(t, "restart", b.Start(at(2*time.Second)), Action{BecomeBackup: true, NextTimer: at(2*time.Second + 3609375*time.Microsecond)})
	mustAction(t, "Start twice", b.Start(at(3*time.Second)), Action{NextTimer: at(2*time.Second + 3609375*time.Microsecond)})
}

// TestBackupTakesOverAfterSkewTime: a priority-0 advert from a resigning
// master makes the backup take over after Skew_Time, not
// Master_Down_Interval.
func TestBackupTakesOverAfterSkewTime(t *testing.T) {
	m := NewMachine(testConfig(100))
	m.Start(t0)
	m.Receive(at(time.Second), peerAddr, advert(200, time.Second))
	now := at(time.Second + time.Second/2)
	skew := 609375 * time.Microsecond
	mustAction(t, "priority 0", m.Receive(now, peerAddr, advert(PriorityStop, time.Second)), Action{NextTimer: now.Add(skew)})
	mustAction(t, "Tick early", m.Tick(now.Add(skew-1)), Action{NextTimer: now.Add(skew)})
	mustAction(t, "Tick", m.Tick(now.Add(skew)),
		Action{SendAdvert: true, AdvertPriority: 100, BecomeMaster: true, NextTimer: now.Add(skew + time.Second)})
	mustState(t, m, Master)
}

func TestMasterAnswersPriorityZero(t *testing.T) {
	m := NewMachine(testConfig(100))
	m.Start(t0)
	m.Tick(at(4 * time.Second))
	now := at(4*time.Second + 300*time.Millisecond)
	mustAction(t, "priority 0", m.Receive(now, peerAddr, advert(PriorityStop, time.Second)),
		Action{SendAdvert: true, AdvertPriority: 100, NextTimer: now.Add(time.Second)})
	mustState(t, m, Master)
}

// TestLearntMasterInterval: a backup times the master with the master's
// interval, not its own (RFC 5798 section 6.4.2).
func TestLearntMasterInterval(t *testing.T) {
	m := NewMachine(testConfig(100)) // our own interval is 1 s
	m.Start(t0)
	if m.MasterAdverInterval() != time.Second {
		t.Fatalf("MasterAdverInterval %v before any advert, want our 1s", m.MasterAdverInterval())
	}
	now := at(time.Second)
	// 3*3 s + 156*3 s/256 = 9 s + 1.828125 s.
	want := now.Add(10828125 * time.Microsecond)
	mustAction(t, "advert with 3 s", m.Receive(now, peerAddr, advert(200, 3*time.Second)), Action{NextTimer: want})
	if m.MasterAdverInterval() != 3*time.Second {
		t.Errorf("MasterAdverInterval %v, want 3s", m.MasterAdverInterval())
	}
	mustAction(t, "no takeover at our own 3.6 s", m.Tick(now.Add(3609375*time.Microsecond)), Action{NextTimer: want})
	mustAction(t, "takeover", m.Tick(want), Action{SendAdvert: true, AdvertPriority: 100, BecomeMaster: true, NextTimer: want.Add(time.Second)})
	if m.MasterAdverInterval() != time.Second {
		t.Errorf("MasterAdverInterval %v as master, want our own 1s", m.MasterAdverInterval())
	}
}

// TestPreemptDelay: keepalived's preempt_delay. During the delay a
// higher-priority backup accepts a lower-priority master's adverts as if
// Preempt were false; after it, it discards them and takes over one
// Master_Down_Interval after the last one it accepted.
func TestPreemptDelay(t *testing.T) {
	c := testConfig(128)
	c.PreemptDelay = 10 * time.Second
	m := NewMachine(c)
	m.Start(t0)
	down := 3500 * time.Millisecond // 3 s + 128/256 s
	for s := time.Duration(1); s <= 9; s++ {
		mustAction(t, "advert during delay", m.Receive(at(s*time.Second), peerAddr, advert(100, time.Second)), Action{NextTimer: at(s*time.Second + down)})
	}
	// At start+10 s the delay is over (now < start+PreemptDelay is false).
	last := at(9*time.Second + down)
	for s := time.Duration(10); s <= 12; s++ {
		mustAction(t, "advert after delay", m.Receive(at(s*time.Second), peerAddr, advert(100, time.Second)), Action{NextTimer: last})
	}
	mustAction(t, "takeover", m.Tick(last), Action{SendAdvert: true, AdvertPriority: 128, BecomeMaster: true, NextTimer: last.Add(time.Second)})

	// With Preempt off the delay changes nothing.
	c.Preempt = false
	m = NewMachine(c)
	m.Start(t0)
	for s := time.Duration(1); s <= 20; s++ {
		m.Receive(at(s*time.Second), peerAddr, advert(100, time.Second))
		m.Tick(at(s*time.Second + time.Second/2))
	}
	mustState(t, m, Backup)
}

func TestReceiveIgnores(t *testing.T) {
	m := NewMachine(testConfig(100))
	mustAction(t, "advert in Initialize", m.Receive(t0, peerAddr, advert(200, time.Second)), Action{})
	mustAction(t, "Tick in Initialize", m.Tick(t0), Action{})
	m.Start(t0)
	next := Action{NextTimer: at(3609375 * time.Microsecond)}
	other := advert(200, time.Second)
	other.VRID = 8
	mustAction(t, "other VRID", m.Receive(at(time.Second), peerAddr, other), next)
	mustAction(t, "zero interval", m.Receive(at(time.Second), peerAddr, advert(200, 0)), next)
	if m.MasterAddr().IsValid() {
		t.Errorf("ignored adverts set MasterAddr to %v", m.MasterAddr())
	}
}

func TestConfigValidate(t *testing.T) {
	if err := (&Config{VRID: 1, Priority: 1, Interval: time.Second, Primary: ourAddr, Addresses: []netip.Addr{vip}}).Validate(); err != nil {
		t.Errorf("valid config: %v", err)
	}
	bad := Config{Interval: 50 * time.Second, PreemptDelay: -1, Primary: netip.MustParseAddr("2001:db8::1"), Addresses: []netip.Addr{netip.MustParseAddr("2001:db8::2")}}
	err := bad.Validate()
	if err == nil {
		t.Fatal("invalid config passed")
	}
	for _, field := range []string{"vrid:", "priority:", "interval:", "preempt_delay:", "primary:", "addresses[0]:"} {
		if !strings.Contains(err.Error(), field) {
			t.Errorf("error does not mention %s: %v", field, err)
		}
	}
	defer func() {
		if recover() == nil {
			t.Error("NewMachine accepted an invalid config")
		}
	}()
	NewMachine(bad)
}

func TestNewMachineCopiesAddresses(t *testing.T) {
	c := testConfig(100)
	m := NewMachine(c)
	c.Addresses[0] = netip.MustParseAddr("192.0.2.99")
	if got := m.Advert(100).Addresses[0]; got != vip {
		t.Errorf("changing the caller's Config changed the machine's address to %v", got)
	}
}
