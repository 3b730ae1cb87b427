package vrrp

import (
	"net/netip"
	"testing"
	"time"
)

// sim runs several machines on one fake clock and one multicast segment that
// delivers every advert at once, through Marshal and Parse.
type sim struct {
	t     *testing.T
	now   time.Time
	ms    []*Machine
	addrs []netip.Addr
	next  []time.Time // each machine's NextTimer
	log   []string    // state changes, for failure messages
	cut   bool        // partitioned: adverts reach nobody
}

func newSim(t *testing.T, cs ...Config) *sim {
	s := &sim{t: t, now: t0}
	for _, c := range cs {
		s.ms = append(s.ms, NewMachine(c))
		s.addrs = append(s.addrs, c.Primary)
		s.next = append(s.next, time.Time{})
	}
	return s
}

func (s *sim) apply(i int, act Action) {
	s.t.Helper()
	s.next[i] = act.NextTimer
	if act.BecomeMaster || act.BecomeBackup {
		s.log = append(s.log, s.now.Sub(t0).String()+" "+s.addrs[i].String()+" "+s.ms[i].State().String())
	}
	if !act.SendAdvert || s.cut {
		return
	}
	a := s.ms[i].Advert(act.AdvertPriority)
	pkt, err := a.Marshal(nil, s.addrs[i], IPv4Group)
	if err != nil {
		s.t.Fatal(err)
	}
	got, err := Decode(pkt, s.addrs[i], IPv4Group, TTL)
	if err != nil {
		s.t.Fatal(err)
	}
	for j, m := range s.ms {
		if j != i && m.State() != Initialize {
			s.apply(j, m.Receive(s.now, s.addrs[i], got))
		}
	}
}

// run fires every timer due up to and including until, earliest first.
func (s *sim) run(until time.Time) {
	s.t.Helper()
	for {
		i := -1
		for j, n := range s.next {
			if !n.IsZero() && !n.After(until) && (i < 0 || n.Before(s.next[i])) {
				i = j
			}
		}
		if i < 0 {
			s.now = until
			return
		}
		s.now = s.next[i]
		s.apply(i, s.ms[i].Tick(s.now))
	}
}

func (s *sim) start(i int)    { s.apply(i, s.ms[i].Start(s.now)) }
func (s *sim) shutdown(i int) { s.apply(i, s.ms[i].Shutdown(s.now)) }

func (s *sim) wantStates(want ...State) {
	s.t.Helper()
	for i, m := range s.ms {
		if m.State() != want[i] {
			s.t.Fatalf("at %v: %v is %v, want %v\nlog: %q", s.now.Sub(t0), s.addrs[i], m.State(), want[i], s.log)
		}
	}
}

func simConfig(prio uint8, addr string) Config {
	c := testConfig(prio)
	c.Primary = netip.MustParseAddr(addr)
	return c
}

// TestSimFailover: two routers elect the higher priority, fail over on
// shutdown after Skew_Time, and the higher priority preempts on return.
func TestSimFailover(t *testing.T) {
	s := newSim(t, simConfig(200, "10.0.0.1"), simConfig(100, "10.0.0.2"))
	s.start(0)
	s.start(1)
	s.run(at(10 * time.Second))
	s.wantStates(Master, Backup)
	if s.ms[1].MasterAddr() != s.addrs[0] {
		t.Errorf("backup thinks the master is %v", s.ms[1].MasterAddr())
	}

	s.shutdown(0)
	skew := s.ms[1].SkewTime()
	s.run(s.now.Add(skew - 1))
	s.wantStates(Initialize, Backup)
	s.run(s.now.Add(1))
	s.wantStates(Initialize, Master)

	// The higher priority comes back: it discards the lower master's adverts
	// and takes over one Master_Down_Interval after starting.
	s.run(at(20 * time.Second))
	s.start(0)
	s.run(s.now.Add(s.ms[0].MasterDownInterval() - 1))
	s.wantStates(Backup, Master)
	s.run(s.now.Add(1))
	s.wantStates(Master, Backup)
	s.run(at(60 * time.Second))
	s.wantStates(Master, Backup)
}

// TestSimNoPreempt: without preemption the returning higher priority stays
// backup.
func TestSimNoPreempt(t *testing.T) {
	a := simConfig(200, "10.0.0.1")
	a.Preempt = false
	s := newSim(t, a, simConfig(100, "10.0.0.2"))
	s.start(1)
	s.run(at(10 * time.Second))
	s.wantStates(Initialize, Master)
	s.start(0)
	s.run(at(60 * time.Second))
	s.wantStates(Backup, Master)
}

// TestSimEqualPriority: three routers of one priority started together end
// with exactly one master, and keep it.
func TestSimEqualPriority(t *testing.T) {
	s := newSim(t, simConfig(100, "10.0.0.1"), simConfig(100, "10.0.0.3"), simConfig(100, "10.0.0.2"))
	for i := range s.ms {
		s.start(i)
	}
	for _, end := range []time.Duration{10 * time.Second, 60 * time.Second} {
		s.run(at(end))
		masters := 0
		for _, m := range s.ms {
			if m.State() == Master {
				masters++
			}
		}
		if masters != 1 {
			t.Fatalf("at %v: %d masters\nlog: %q", end, masters, s.log)
		}
	}
}

// TestSimPartitionHeals: two equal-priority routers that could not hear each
// other are both master; once they can, the higher primary address keeps
// the role (section 6.4.3) whichever advert comes first.
func TestSimPartitionHeals(t *testing.T) {
	for _, offset := range []time.Duration{0, 300 * time.Millisecond, 700 * time.Millisecond} {
		s := newSim(t, simConfig(100, "10.0.0.2"), simConfig(100, "10.0.0.1"))
		s.cut = true
		s.start(0)
		s.run(at(offset))
		s.start(1)
		s.run(at(10 * time.Second))
		s.wantStates(Master, Master)
		s.cut = false
		s.run(at(20 * time.Second))
		s.wantStates(Master, Backup)
	}
}

// TestSimV2 runs the failover of TestSimFailover in version 2 with a
// password, through Marshal and Decode, at a 2 s interval: the backup
// takes over Skew_Time = (256 - 100)/256 s after the master resigns, and
// within 3 * 2 s + Skew_Time of its last advert when it goes silent. A
// third router with another password never hears the others: it is master
// alongside them, the split brain the speaker reports.
func TestSimV2(t *testing.T) {
	v2 := func(prio uint8, addr, pass string) Config {
		c := simConfig(prio, addr)
		c.Version, c.Interval, c.AuthType, c.AuthPass = Version2, 2*time.Second, AuthPass, pass
		return c
	}
	s := newSim(t, v2(200, "10.0.0.1", "s3cr3t"), v2(100, "10.0.0.2", "s3cr3t"))
	s.start(0)
	s.start(1)
	s.run(at(20 * time.Second))
	s.wantStates(Master, Backup)
	s.shutdown(0)
	if skew := s.ms[1].SkewTime(); skew != 609375*time.Microsecond {
		t.Fatalf("Skew_Time %v, want 156/256 s", skew)
	}
	s.run(s.now.Add(609375*time.Microsecond - 1))
	s.wantStates(Initialize, Backup)
	s.run(s.now.Add(1))
	s.wantStates(Initialize, Master)

	s = newSim(t, v2(200, "10.0.0.1", "s3cr3t"), v2(100, "10.0.0.2", "s3cr3t"), v2(50, "10.0.0.3", "0ther"))
	for i := range s.ms {
		s.start(i)
	}
	s.run(at(60 * time.Second))
	s.wantStates(Master, Backup, Master)
}
