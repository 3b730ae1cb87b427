package vrrp

import (
	"errors"
	"fmt"
	"net/netip"
	"time"
)

// State is a VRRP router state (RFC 5798 section 6.4). The zero value is
// invalid; a new Machine is in Initialize.
type State int

const (
	_          State = iota
	Initialize       // not running: before Start and after Shutdown
	Backup           // watching the master, ready to take over
	Master           // owning the virtual addresses and advertising
)

func (s State) String() string {
	switch s {
	case Initialize:
		return "INIT"
	case Backup:
		return "BACKUP"
	case Master:
		return "MASTER"
	}
	return fmt.Sprintf("State(%d)", int(s))
}

// Priorities with a meaning of their own (RFC 5798 section 5.2.4).
const (
	PriorityStop  = 0   // sent by a master that is shutting down
	PriorityOwner = 255 // the router that owns the virtual addresses
)

// Config is one virtual router as this machine runs it.
type Config struct {
	Version      Version // Version2 or Version3; the other version's adverts are dropped
	VRID         uint8
	Priority     uint8         // 1..255 (255 = address owner)
	Interval     time.Duration // our Advertisement_Interval: Version.ValidInterval
	Preempt      bool          // Preempt_Mode; RFC 5798's default is true
	PreemptDelay time.Duration // keepalived's preempt_delay: after Start, behave as if Preempt were false for this long
	Primary      netip.Addr    // our primary IPv4 address: the source of our IPv4 adverts and their tie break
	// Primary6 is our IPv6 link-local address: the source of our IPv6
	// adverts and their tie break (RFC 5798 section 5.1.2.1).
	Primary6 netip.Addr
	// Addresses are the virtual addresses we advertise: IPv4 ones in
	// IPv4 adverts from Primary, IPv6 ones (version 3 only) in IPv6
	// adverts from Primary6. A router with both runs one virtual router
	// in both families at once, as keepalived runs two instances of one
	// VRID in a vrrp_sync_group: an advert of either family counts, and
	// the state is one.
	Addresses []netip.Addr
	// AuthType and AuthPass are VRRPv2's authentication, as keepalived's
	// authentication { auth_type PASS; auth_pass ... }: AuthNone, or
	// AuthPass with a password of 1..AuthDataLen bytes. Version 3 has none.
	AuthType AuthType
	AuthPass string
}

// Validate reports every problem with c at once.
func (c *Config) Validate() error {
	var errs []error
	if c.Version != Version2 && c.Version != Version3 {
		errs = append(errs, fmt.Errorf("version: %d is neither 2 nor 3", c.Version))
	}
	if c.VRID == 0 {
		errs = append(errs, errors.New("vrid: 0 is not a virtual router ID (1..255)"))
	}
	if c.Priority == PriorityStop {
		errs = append(errs, errors.New("priority: 0 is reserved for a resigning master (1..255)"))
	}
	switch {
	case c.Version == Version2 && !c.Version.ValidInterval(c.Interval):
		errs = append(errs, fmt.Errorf("interval: %v is not whole seconds in %v..%v (VRRPv2)", c.Interval, MinIntervalV2, MaxIntervalV2))
	case c.Version != Version2 && !Version3.ValidInterval(c.Interval):
		errs = append(errs, fmt.Errorf("interval: %v is not whole centiseconds in %v..%v", c.Interval, MinInterval, MaxInterval))
	}
	switch {
	case c.AuthType == AuthNone && c.AuthPass != "":
		errs = append(errs, errors.New("auth_pass: set, but auth_type is none"))
	case c.AuthType == AuthNone:
	case c.Version != Version2:
		errs = append(errs, fmt.Errorf("auth_type: %v needs VRRPv2: RFC 5798 removed authentication", c.AuthType))
	case c.AuthType == AuthAH:
		errs = append(errs, errors.New("auth_type: ah is not supported"))
	case c.AuthType != AuthPass:
		errs = append(errs, fmt.Errorf("auth_type: %v is not an authentication type", c.AuthType))
	case len(c.AuthPass) < 1 || len(c.AuthPass) > AuthDataLen:
		errs = append(errs, fmt.Errorf("auth_pass: %d bytes, want 1..%d", len(c.AuthPass), AuthDataLen))
	}
	if c.PreemptDelay < 0 {
		errs = append(errs, fmt.Errorf("preempt_delay: %v is negative", c.PreemptDelay))
	}
	v4, v6 := SplitFamilies(c.Addresses)
	if len(v4) > 0 && !c.Primary.Unmap().Is4() {
		errs = append(errs, fmt.Errorf("primary: %v is not an IPv4 address", c.Primary))
	}
	if len(v6) > 0 {
		if !is6(c.Primary6) || !c.Primary6.IsLinkLocalUnicast() {
			errs = append(errs, fmt.Errorf("primary6: %v is not an IPv6 link-local address", c.Primary6))
		}
		if c.Version != Version3 {
			errs = append(errs, fmt.Errorf("addresses: IPv6 addresses need VRRPv3 (RFC 3768 is IPv4 only)"))
		}
	}
	if len(c.Addresses) == 0 || len(v4) > MaxAddresses || len(v6) > MaxAddresses {
		errs = append(errs, fmt.Errorf("addresses: %d IPv4 and %d IPv6, want 1..%d of a family and at least one", len(v4), len(v6), MaxAddresses))
	}
	for i, ip := range c.Addresses {
		if !ip.IsValid() {
			errs = append(errs, fmt.Errorf("addresses[%d]: not an address", i))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("vrrp: vrid %d: %w", c.VRID, err)
	}
	return nil
}

// Match checks a decoded advert against c: the VRID first (ErrVRID), then
// the version (ErrOtherVersion) and, in version 2, the Auth Type and
// password (ErrAuth) and the interval (ErrOtherInterval: RFC 3768 section
// 7.1 says to drop an advert whose Adver Int is not ours, as keepalived
// does). The VRID goes first, as keepalived looks its instance up by it:
// adverts of another virtual router are none of our business, whatever
// their version or password.
func (c *Config) Match(a *Advert) error {
	if a.VRID != c.VRID {
		return ErrVRID
	}
	if a.Version != c.Version {
		return ErrOtherVersion
	}
	if c.Version != Version2 {
		return nil
	}
	// Without authentication the data is ignored on receipt (RFC 3768
	// section 5.3.10), as keepalived does.
	if a.AuthType != c.AuthType || c.AuthType == AuthPass && !authEqual(a.AuthData, c.authData()) {
		return ErrAuth
	}
	if a.Interval != c.Interval {
		return ErrOtherInterval
	}
	return nil
}

// authData is the Authentication Data of our version 2 adverts.
func (c *Config) authData() [AuthDataLen]byte {
	if c.AuthType == AuthPass {
		return Password(c.AuthPass)
	}
	return [AuthDataLen]byte{}
}

// Action is what the caller must do after an event.
type Action struct {
	SendAdvert     bool  // send an advert with AdvertPriority (see Machine.Advert)
	AdvertPriority uint8 // our priority, or PriorityStop on shutdown
	BecomeMaster   bool  // add VIPs, gratuitous ARP, start forwarding
	BecomeBackup   bool  // remove VIPs, stop forwarding; also set on Start into Backup and on Shutdown
	// NextTimer is when Tick must be called next: the Adver_Timer of a master
	// or the Master_Down_Timer of a backup. It is set after every event, so
	// the caller can simply re-arm its one timer; zero means none (Initialize).
	NextTimer time.Time
}

// Machine is the RFC 5798 section 6.4 state machine of one virtual router.
// It is pure: it reads no clock and does no I/O, so it is driven by events
// that carry the time. It is not safe for concurrent use; one goroutine owns
// it.
type Machine struct {
	cfg   Config
	state State

	start               time.Time     // when Start was called, for PreemptDelay
	timer               time.Time     // Adver_Timer (Master) or Master_Down_Timer (Backup)
	masterAdverInterval time.Duration // Master_Adver_Interval: learnt from the master's adverts
	masterAddr          netip.Addr    // the master's primary address as far as we know
}

// NewMachine returns a machine in Initialize. The config must have passed
// Validate; an invalid one is a programmer error and panics.
func NewMachine(c Config) *Machine {
	if err := c.Validate(); err != nil {
		panic(err)
	}
	c.Primary = c.Primary.Unmap()
	c.Primary6 = c.Primary6.WithZone("")
	c.Addresses = append([]netip.Addr(nil), c.Addresses...)
	return &Machine{cfg: c, state: Initialize, masterAdverInterval: c.Interval}
}

// State returns the current state.
func (m *Machine) State() State { return m.state }

// MasterAddr returns the current master's primary address as far as we know:
// our own when we are master, the source of the last accepted advert when we
// are backup, and the zero Addr when no master is known.
func (m *Machine) MasterAddr() netip.Addr { return m.masterAddr }

// MasterAdverInterval returns Master_Adver_Interval: the interval learnt from
// the master's adverts, or our own Interval until one is learnt.
func (m *Machine) MasterAdverInterval() time.Duration { return m.masterAdverInterval }

// Advert returns the advertisement to send with the given priority (an
// Action's AdvertPriority), in our version, with our authentication. The
// Addresses slice is shared with the machine and must not be modified.
func (m *Machine) Advert(priority uint8) Advert {
	return Advert{Version: m.cfg.Version, VRID: m.cfg.VRID, Priority: priority, Interval: m.cfg.Interval, Addresses: m.cfg.Addresses,
		AuthType: m.cfg.AuthType, AuthData: m.cfg.authData()}
}

// SkewTime is Skew_Time. In version 3 it is RFC 5798 section 6.1's
// ((256 - Priority) * Master_Adver_Interval) / 256, which scales with the
// interval; it is computed in nanoseconds, not truncated to the RFC's
// centiseconds (keepalived computes it in microseconds). In version 2 it is
// RFC 3768 section 6.1's (256 - Priority) / 256 seconds, whatever the
// interval, as keepalived has it too: at an interval of 1 s the two agree,
// at 2 s and more version 3's would be longer than a VRRPv2 peer's.
func (m *Machine) SkewTime() time.Duration {
	if m.cfg.Version == Version2 {
		return time.Duration(256-int64(m.cfg.Priority)) * time.Second / 256
	}
	return time.Duration(256-int64(m.cfg.Priority)) * m.masterAdverInterval / 256
}

// MasterDownInterval is Master_Down_Interval: 3 * Master_Adver_Interval +
// Skew_Time (RFC 5798 section 6.1). In version 2 the interval is our own
// Advertisement_Interval, which Match makes sure the master's equals (RFC
// 3768 section 6.1 has no Master_Adver_Interval).
func (m *Machine) MasterDownInterval() time.Duration {
	return 3*m.masterAdverInterval + m.SkewTime()
}

// Start is the Startup event (section 6.4.1). The address owner becomes
// master at once; any other router becomes backup and waits one
// Master_Down_Interval for a master to be heard. Start outside Initialize
// does nothing.
func (m *Machine) Start(now time.Time) Action {
	if m.state != Initialize {
		return m.idle()
	}
	m.start = now
	m.masterAdverInterval = m.cfg.Interval
	if m.cfg.Priority == PriorityOwner {
		return m.becomeMaster(now)
	}
	m.state = Backup
	m.masterAddr = netip.Addr{}
	m.timer = now.Add(m.MasterDownInterval())
	return Action{BecomeBackup: true, NextTimer: m.timer}
}

// Receive handles a valid advert from src for our VRID (sections 6.4.2 and
// 6.4.3). Adverts that Config.Match refuses (another VRID, version,
// password or, in version 2, interval), with no interval, or received in
// Initialize are ignored.
func (m *Machine) Receive(now time.Time, src netip.Addr, a Advert) Action {
	if m.cfg.Match(&a) != nil || a.Interval <= 0 {
		return m.idle()
	}
	src = src.Unmap()
	switch m.state {
	case Backup:
		switch {
		case a.Priority == PriorityStop:
			// The master is resigning: take over after Skew_Time, so that
			// the highest-priority backup goes first.
			m.timer = now.Add(m.SkewTime())
		case !m.preempt(now) || a.Priority >= m.cfg.Priority:
			m.learnInterval(a.Interval)
			m.masterAddr = src
			m.timer = now.Add(m.MasterDownInterval())
		default:
			// Preempting a lower-priority master: ignore it until the
			// Master_Down_Timer fires.
		}
		return m.idle()
	case Master:
		switch {
		case a.Priority == PriorityStop:
			// Another master resigned: make sure the backups hear us at once.
			m.timer = now.Add(m.cfg.Interval)
			return Action{SendAdvert: true, AdvertPriority: m.cfg.Priority, NextTimer: m.timer}
		case a.Priority > m.cfg.Priority ||
			a.Priority == m.cfg.Priority && addrGreater(src, m.primaryFor(src)):
			m.state = Backup
			m.learnInterval(a.Interval)
			m.masterAddr = src
			m.timer = now.Add(m.MasterDownInterval())
			return Action{BecomeBackup: true, NextTimer: m.timer}
		default:
			// Lower priority, or equal from a lower address: discard, as
			// RFC 5798 says. RFC 9568 changes this case; it is not
			// implemented here.
			return m.idle()
		}
	}
	return m.idle()
}

// Tick handles the expiry of the one running timer: Adver_Timer as master
// (send an advert) or Master_Down_Timer as backup (become master). A Tick
// before the timer is due does nothing and returns the same NextTimer.
func (m *Machine) Tick(now time.Time) Action {
	if m.state == Initialize || now.Before(m.timer) {
		return m.idle()
	}
	if m.state == Backup {
		return m.becomeMaster(now)
	}
	m.timer = now.Add(m.cfg.Interval)
	return Action{SendAdvert: true, AdvertPriority: m.cfg.Priority, NextTimer: m.timer}
}

// Shutdown is the Shutdown event: a master sends an advert with priority 0
// so that a backup takes over after Skew_Time rather than
// Master_Down_Interval. Either way the machine returns to Initialize and
// the caller drops the virtual addresses.
func (m *Machine) Shutdown(now time.Time) Action {
	was := m.state
	m.state = Initialize
	m.timer = time.Time{}
	m.masterAddr = netip.Addr{}
	switch was {
	case Master:
		return Action{SendAdvert: true, AdvertPriority: PriorityStop, BecomeBackup: true}
	case Backup:
		return Action{BecomeBackup: true}
	}
	return Action{}
}

func (m *Machine) becomeMaster(now time.Time) Action {
	m.state = Master
	m.masterAddr = m.cfg.Primary
	if v4, _ := SplitFamilies(m.cfg.Addresses); len(v4) == 0 {
		m.masterAddr = m.cfg.Primary6
	}
	m.masterAdverInterval = m.cfg.Interval
	m.timer = now.Add(m.cfg.Interval)
	return Action{SendAdvert: true, AdvertPriority: m.cfg.Priority, BecomeMaster: true, NextTimer: m.timer}
}

// learnInterval sets Master_Adver_Interval from the master's advert: in
// version 3 a backup times the master with the master's interval (RFC 5798
// section 6.4.2); version 2 has only our own, which Match made sure the
// advert carries.
func (m *Machine) learnInterval(d time.Duration) {
	if m.cfg.Version == Version3 {
		m.masterAdverInterval = d
	}
}

// preempt is the effective Preempt_Mode: off during PreemptDelay after Start.
func (m *Machine) preempt(now time.Time) bool {
	return m.cfg.Preempt && !now.Before(m.start.Add(m.cfg.PreemptDelay))
}

// idle is the Action of an event that changes nothing the caller sees.
func (m *Machine) idle() Action { return Action{NextTimer: m.timer} }

// addrGreater compares two IPv4 addresses as unsigned 32-bit integers, or
// two IPv6 addresses as 128-bit ones (section 6.4.3).
func addrGreater(a, b netip.Addr) bool { return a.WithZone("").Compare(b.WithZone("")) > 0 }

// primaryFor is our primary address of src's family, the one a tie with
// an advert from src compares.
func (m *Machine) primaryFor(src netip.Addr) netip.Addr {
	if is6(src) {
		return m.cfg.Primary6
	}
	return m.cfg.Primary
}

// SplitFamilies returns the IPv4 addresses of addrs (unmapped) and the
// IPv6 ones, each in the order given.
func SplitFamilies(addrs []netip.Addr) (v4, v6 []netip.Addr) {
	for _, a := range addrs {
		if is6(a) {
			v6 = append(v6, a)
		} else if a.IsValid() {
			v4 = append(v4, a.Unmap())
		}
	}
	return v4, v6
}
