package vrrp

import (
	"net/netip"
	"reflect"
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
		Version:   Version3,
		VRID:      7,
		Priority:  prio,
		Interval:  time.Second,
		Preempt:   true,
		Primary:   ourAddr,
		Addresses: []netip.Addr{vip},
	}
}

func advert(prio uint8, interval time.Duration) Advert {
	return Advert{Version: Version3, VRID: 7, Priority: prio, Interval: interval, Addresses: []netip.Addr{vip}}
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
	for _, c := range []Config{
		{Version: Version3, VRID: 1, Priority: 1, Interval: time.Second, Primary: ourAddr, Addresses: []netip.Addr{vip}},
		{Version: Version3, VRID: 1, Priority: 1, Interval: 30 * time.Millisecond, Primary: ourAddr, Addresses: []netip.Addr{vip}},
		{Version: Version2, VRID: 1, Priority: 1, Interval: time.Second, Primary: ourAddr, Addresses: []netip.Addr{vip}},
		{Version: Version2, VRID: 1, Priority: 1, Interval: 255 * time.Second, Primary: ourAddr, Addresses: []netip.Addr{vip}, AuthType: AuthPass, AuthPass: "12345678"},
	} {
		if err := c.Validate(); err != nil {
			t.Errorf("valid config %+v: %v", c, err)
		}
	}
	// An IPv6 primary for an IPv4 address, and a zero address.
	bad := Config{Interval: 50 * time.Second, PreemptDelay: -1, Primary: netip.MustParseAddr("2001:db8::1"), Addresses: []netip.Addr{{}, vip},
		AuthPass: "x"}
	err := bad.Validate()
	if err == nil {
		t.Fatal("invalid config passed")
	}
	for _, field := range []string{"version:", "vrid:", "priority:", "interval:", "auth_pass:", "preempt_delay:", "primary:", "addresses[0]:"} {
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

// TestConfigValidateV2 checks what version 2 adds: whole seconds, and
// authentication (PASS only, 1..8 bytes) that version 3 does not have.
func TestConfigValidateV2(t *testing.T) {
	base := func(v Version, interval time.Duration, auth AuthType, pass string) Config {
		return Config{Version: v, VRID: 1, Priority: 100, Interval: interval, Primary: ourAddr, Addresses: []netip.Addr{vip}, AuthType: auth, AuthPass: pass}
	}
	for _, tt := range []struct {
		name string
		c    Config
		want string
	}{
		{"v2 100ms", base(Version2, 100*time.Millisecond, AuthNone, ""), "interval: 100ms is not whole seconds in 1s..4m15s (VRRPv2)"},
		{"v2 1.5s", base(Version2, 1500*time.Millisecond, AuthNone, ""), "interval: 1.5s is not whole seconds"},
		{"v2 256s", base(Version2, 256*time.Second, AuthNone, ""), "interval: 4m16s is not whole seconds"},
		{"v3 60s", base(Version3, 60*time.Second, AuthNone, ""), "interval: 1m0s is not whole centiseconds in 10ms..40.95s"},
		{"v3 with pass", base(Version3, time.Second, AuthPass, "secret"), "auth_type: pass needs VRRPv2"},
		{"ah", base(Version2, time.Second, AuthAH, "secret"), "auth_type: ah is not supported"},
		{"auth type 7", base(Version2, time.Second, 7, "secret"), "auth_type: AuthType(7) is not an authentication type"},
		{"empty password", base(Version2, time.Second, AuthPass, ""), "auth_pass: 0 bytes, want 1..8"},
		{"long password", base(Version2, time.Second, AuthPass, "123456789"), "auth_pass: 9 bytes, want 1..8"},
		{"password without pass", base(Version2, time.Second, AuthNone, "secret"), "auth_pass: set, but auth_type is none"},
	} {
		err := tt.c.Validate()
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: Validate() = %v, want %q", tt.name, err, tt.want)
		}
	}
}

// TestMatch: the VRID first, then the version, then version 2's
// authentication and interval.
func TestMatch(t *testing.T) {
	v2 := testConfig(100)
	v2.Version = Version2
	v2pass := v2
	v2pass.AuthType, v2pass.AuthPass = AuthPass, "secret"
	v3 := testConfig(100)
	ad := func(v Version, vrid uint8, interval time.Duration, auth AuthType, data [8]byte) Advert {
		return Advert{Version: v, VRID: vrid, Priority: 200, Interval: interval, Addresses: []netip.Addr{vip}, AuthType: auth, AuthData: data}
	}
	none := [8]byte{}
	secret := Password("secret")
	for _, tt := range []struct {
		name string
		c    Config
		a    Advert
		want error
	}{
		{"v3", v3, ad(Version3, 7, time.Second, AuthNone, none), nil},
		{"v3, another interval: learnt, not refused", v3, ad(Version3, 7, 3*time.Second, AuthNone, none), nil},
		{"v3, another VRID", v3, ad(Version3, 8, time.Second, AuthNone, none), ErrVRID},
		{"v3 hears v2", v3, ad(Version2, 7, time.Second, AuthNone, none), ErrOtherVersion},
		{"v3 hears v2 of another VRID", v3, ad(Version2, 8, time.Second, AuthPass, secret), ErrVRID},
		{"v2", v2, ad(Version2, 7, time.Second, AuthNone, none), nil},
		{"v2 ignores auth data without auth", v2, ad(Version2, 7, time.Second, AuthNone, Password("junk")), nil},
		{"v2 hears v3", v2, ad(Version3, 7, time.Second, AuthNone, none), ErrOtherVersion},
		{"v2 hears PASS", v2, ad(Version2, 7, time.Second, AuthPass, secret), ErrAuth},
		{"v2 hears another interval", v2, ad(Version2, 7, 2*time.Second, AuthNone, none), ErrOtherInterval},
		{"v2 PASS", v2pass, ad(Version2, 7, time.Second, AuthPass, secret), nil},
		{"v2 PASS, no auth", v2pass, ad(Version2, 7, time.Second, AuthNone, none), ErrAuth},
		{"v2 PASS, another password", v2pass, ad(Version2, 7, time.Second, AuthPass, Password("secreT")), ErrAuth},
		{"v2 PASS, a longer password cut to 8", v2pass, ad(Version2, 7, time.Second, AuthPass, Password("secret12")), ErrAuth},
		{"v2 PASS, AH", v2pass, ad(Version2, 7, time.Second, AuthAH, secret), ErrAuth},
		{"v2 PASS, another VRID and password", v2pass, ad(Version2, 9, time.Second, AuthPass, Password("other")), ErrVRID},
		{"v2 PASS, wrong password and interval: auth first", v2pass, ad(Version2, 7, 5*time.Second, AuthPass, none), ErrAuth},
	} {
		if got := tt.c.Match(&tt.a); got != tt.want {
			t.Errorf("%s: Match = %v, want %v", tt.name, got, tt.want)
		}
	}
}

// TestTimerFormulasV2 checks RFC 3768 section 6.1: Skew_Time =
// (256 - Priority) / 256 seconds whatever the interval, and
// Master_Down_Interval = 3 * Advertisement_Interval + Skew_Time.
func TestTimerFormulasV2(t *testing.T) {
	for _, tt := range []struct {
		prio     uint8
		interval time.Duration
		skew     time.Duration
		down     time.Duration
	}{
		{100, time.Second, 609375 * time.Microsecond, 3609375 * time.Microsecond},     // 156/256 s, as version 3 at 1 s
		{100, 3 * time.Second, 609375 * time.Microsecond, 9609375 * time.Microsecond}, // version 3 would say 1.828125 s of skew
		{200, time.Second, 218750 * time.Microsecond, 3218750 * time.Microsecond},     // 56/256 s
		{1, 10 * time.Second, 996093750 * time.Nanosecond, 30996093750 * time.Nanosecond},
		{254, 255 * time.Second, 7812500 * time.Nanosecond, 765007812500 * time.Nanosecond},
	} {
		c := testConfig(tt.prio)
		c.Version, c.Interval = Version2, tt.interval
		m := NewMachine(c)
		if got := m.SkewTime(); got != tt.skew {
			t.Errorf("v2 priority %d, interval %v: Skew_Time %v, want %v", tt.prio, tt.interval, got, tt.skew)
		}
		if got := m.MasterDownInterval(); got != tt.down {
			t.Errorf("v2 priority %d, interval %v: Master_Down_Interval %v, want %v", tt.prio, tt.interval, got, tt.down)
		}
	}
}

// TestMachineV2: a version 2 backup times the master with its own
// interval, takes over Master_Down_Interval after the last advert, and
// after a priority-0 advert within Skew_Time; adverts of the other version,
// with another password or another interval change nothing.
func TestMachineV2(t *testing.T) {
	c := testConfig(100)
	c.Version, c.Interval, c.AuthType, c.AuthPass = Version2, 2*time.Second, AuthPass, "secret"
	m := NewMachine(c)
	down := 6*time.Second + 609375*time.Microsecond // 3 * 2 s + 156/256 s
	mustAction(t, "Start", m.Start(t0), Action{BecomeBackup: true, NextTimer: at(down)})
	good := Advert{Version: Version2, VRID: 7, Priority: 200, Interval: 2 * time.Second, Addresses: []netip.Addr{vip}, AuthType: AuthPass, AuthData: Password("secret")}
	mustAction(t, "advert", m.Receive(at(time.Second), peerAddr, good), Action{NextTimer: at(time.Second + down)})
	if m.MasterAdverInterval() != 2*time.Second || m.MasterAddr() != peerAddr {
		t.Errorf("MasterAdverInterval %v, MasterAddr %v", m.MasterAdverInterval(), m.MasterAddr())
	}
	for _, bad := range []func(a *Advert){
		func(a *Advert) { a.Version = Version3 },
		func(a *Advert) { a.AuthData = Password("Secret") },
		func(a *Advert) { a.AuthType = AuthNone },
		func(a *Advert) { a.Interval = time.Second },
		func(a *Advert) { a.Priority = PriorityStop; a.AuthData = Password("x") },
	} {
		a := good
		bad(&a)
		mustAction(t, "mismatched advert", m.Receive(at(2*time.Second), peerAddr, a), Action{NextTimer: at(time.Second + down)})
	}
	mustState(t, m, Backup)
	stop := good
	stop.Priority = PriorityStop
	skew := 609375 * time.Microsecond
	mustAction(t, "priority 0", m.Receive(at(3*time.Second), peerAddr, stop), Action{NextTimer: at(3*time.Second + skew)})
	mustAction(t, "takeover", m.Tick(at(3*time.Second+skew)),
		Action{SendAdvert: true, AdvertPriority: 100, BecomeMaster: true, NextTimer: at(3*time.Second + skew + 2*time.Second)})
	want := good
	want.Priority = 100
	if a := m.Advert(100); !reflect.DeepEqual(a, want) {
		t.Errorf("Advert(100) = %+v, want %+v", a, want)
	}
	// A higher version 2 master: the machine yields, keeping its own interval.
	mustAction(t, "higher master", m.Receive(at(4*time.Second), peerAddr, good), Action{BecomeBackup: true, NextTimer: at(4*time.Second + down)})
	if m.MasterAdverInterval() != 2*time.Second {
		t.Errorf("MasterAdverInterval %v, want our 2s", m.MasterAdverInterval())
	}
}

func TestNewMachineCopiesAddresses(t *testing.T) {
	c := testConfig(100)
	m := NewMachine(c)
	c.Addresses[0] = netip.MustParseAddr("192.0.2.99")
	if got := m.Advert(100).Addresses[0]; got != vip {
		t.Errorf("changing the caller's Config changed the machine's address to %v", got)
	}
}
