package config

import (
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"time"
)

// Protocol is the transport protocol of a service (ipvsadm -t / -u). The zero value is
// invalid.
type Protocol uint8

const (
	TCP Protocol = iota + 1
	UDP
)

// String returns "tcp" or "udp", as written in the config file.
func (p Protocol) String() string {
	switch p {
	case TCP:
		return "tcp"
	case UDP:
		return "udp"
	}
	return "Protocol(" + strconv.Itoa(int(p)) + ")"
}

func (p Protocol) valid() bool { return p == TCP || p == UDP }

// ParseProtocol parses "tcp" or "udp".
func ParseProtocol(s string) (Protocol, error) {
	switch s {
	case "tcp":
		return TCP, nil
	case "udp":
		return UDP, nil
	}
	return 0, fmt.Errorf("config: %q is not a protocol (want tcp or udp)", s)
}

// Forward is an LVS forwarding method (ipvsadm -g / -i / -m / -b). The zero value is
// invalid.
type Forward uint8

const (
	DR      Forward = iota + 1 // direct routing (gatewaying): rewrite the MACs only
	TUN                        // IPIP tunnelling
	NAT                        // masquerading: rewrite the destination, replies come back through the director
	FullNAT                    // rewrite destination and source (to a local address and port)
)

var forwardNames = [...]string{DR: "dr", TUN: "tun", NAT: "nat", FullNAT: "fullnat"}

// String returns "dr", "tun", "nat" or "fullnat", as written in the config file.
func (f Forward) String() string {
	if f.valid() {
		return forwardNames[f]
	}
	return "Forward(" + strconv.Itoa(int(f)) + ")"
}

func (f Forward) valid() bool { return f >= DR && f <= FullNAT }

// ParseForward parses "dr", "tun", "nat" or "fullnat".
func ParseForward(s string) (Forward, error) {
	for f := DR; f <= FullNAT; f++ {
		if forwardNames[f] == s {
			return f, nil
		}
	}
	return 0, fmt.Errorf("config: %q is not a forwarding method (want dr, tun, nat or fullnat)", s)
}

// PortRange is an inclusive range of ports, written "LO-HI".
type PortRange struct{ Lo, Hi uint16 }

// String returns the range as written in the config file, e.g. "1024-32767".
func (r PortRange) String() string {
	return strconv.Itoa(int(r.Lo)) + "-" + strconv.Itoa(int(r.Hi))
}

// ParsePortRange parses "LO-HI" with 1 <= LO <= HI <= 65535.
func ParsePortRange(s string) (PortRange, error) {
	r, ok := parsePortRange(s)
	if !ok || !r.valid() {
		return PortRange{}, fmt.Errorf("config: %q %s", s, portRangeWant)
	}
	return r, nil
}

const portRangeWant = `is not a port range (want "LO-HI" with 1 <= LO <= HI <= 65535)`

// parsePortRange parses the syntax only; valid checks the bounds.
func parsePortRange(s string) (PortRange, bool) {
	for i := 0; i < len(s); i++ {
		if s[i] != '-' {
			continue
		}
		lo, err1 := strconv.ParseUint(s[:i], 10, 16)
		hi, err2 := strconv.ParseUint(s[i+1:], 10, 16)
		if err1 != nil || err2 != nil {
			return PortRange{}, false
		}
		return PortRange{Lo: uint16(lo), Hi: uint16(hi)}, true
	}
	return PortRange{}, false
}

func (r PortRange) valid() bool { return r.Lo >= 1 && r.Lo <= r.Hi }

// Config is a decoded, defaulted and validated configuration file.
type Config struct {
	Director Director
	Timeouts Timeouts
	Limits   Limits
	Services []Service
	VRRP     VRRP
	Sync     Sync
	BGP      BGP
}

// BGP is the [bgp] table: the director announces each VIP as a /32 (an IPv6 VIP as a
// /128, RFC 4760 IPv6 unicast over the same sessions) to its BGP peers while it can
// serve it (RFC 4271), so that routers spread the VIPs'
// traffic over every director that announces them (ECMP). A [bgp] table in the file
// turns it on (Enabled). gvsd only dials out to its peers; it does not listen.
type BGP struct {
	Enabled  bool       // set by the presence of [bgp]; `enabled = false` turns it off
	LocalAS  int        // 1..4294967295; required
	RouterID netip.Addr // BGP identifier; unset = the director interface's address
	// HoldTime is proposed to every peer (the session uses the smaller of the two):
	// 0 (no keepalives) or 3s..65535s in whole seconds (RFC 4271 section 4.2). The
	// default is 9s, keepalives every 3s, rather than BGP's usual 90s: a director that
	// dies then leaves its routers' ECMP sets within 9 seconds instead of a minute and a
	// half of black-holed flows.
	HoldTime time.Duration
	NextHop  netip.Addr // the next hop announced; unset = the director interface's address
	// NextHop6 is the IPv6 next hop of the IPv6 VIPs (/128, MP-BGP IPv6 unicast over
	// the same sessions, RFC 4760); unset = the interface's first global IPv6 address.
	NextHop6 netip.Addr
	Drain    time.Duration // on a clean stop, forwarding goes on this long after the withdraw; default 5s
	MED      int           // MULTI_EXIT_DISC sent with each VIP, 0..4294967295; -1 (the default) = none
	// Communities are RFC 1997 communities sent with each VIP, "ASN:VALUE" with both
	// halves 0..65535 (see ParseCommunity).
	Communities []string
	Peers       []BGPPeer // [[bgp.peer]]; at least one
	// PeerLocalAddresses are the other directors' FULLNAT local addresses.
	// With them, this director announces its own local_addresses as /32s
	// (the reals reach them through the router) and the others' with a
	// worse MED, and takes the replies to the others' addresses: when a
	// director goes, the routers send its replies to the rest, which have
	// its connections from sync. Needs director.local_addresses.
	PeerLocalAddresses []netip.Addr
}

// BGPPeer is one [[bgp.peer]]: a router the director opens a BGP session to.
type BGPPeer struct {
	Address netip.Addr // IPv4; required, unique
	AS      int        // 1..4294967295; required; the local AS makes it iBGP
	// Password is the TCP MD5 signature key (RFC 2385), at most 80 bytes; "" = none.
	Password string
}

// ParseCommunity parses a BGP community written "ASN:VALUE" (RFC 1997), each half
// 0..65535, into its 32-bit value.
func ParseCommunity(s string) (uint32, error) {
	for i := 0; i < len(s); i++ {
		if s[i] != ':' {
			continue
		}
		hi, err1 := strconv.ParseUint(s[:i], 10, 16)
		lo, err2 := strconv.ParseUint(s[i+1:], 10, 16)
		if err1 != nil || err2 != nil {
			break
		}
		return uint32(hi)<<16 | uint32(lo), nil
	}
	return 0, fmt.Errorf("config: %q %s", s, communityWant)
}

const communityWant = `is not a community (want "ASN:VALUE", each 0..65535)`

// Sync is the [sync] table: connection synchronisation between directors over the IPVS
// sync protocol (version 1). A [sync] table in the file turns it on (Enabled); the
// director then sends its connections while it holds the VIPs and installs those of its
// peer while it does not, so that established connections survive a VRRP takeover.
type Sync struct {
	Enabled   bool          // set by the presence of [sync]; `enabled = false` turns it off
	Interface string        // default: the director's interface
	Peer      netip.Addr    // unicast peer, IPv4 or IPv6; unset = multicast to Group
	Group     netip.Addr    // multicast group, IPv4 or IPv6 (ipvsadm --mcast-group); unset = 224.0.0.81
	TTL       int           // multicast TTL or hop limit, 1..255; default 1 (the link only)
	Port      int           // UDP port, default 8848
	SyncID    int           // 0..255; 0 accepts every sync ID, else only this one
	Refresh   time.Duration // resend every connection this often (a late backup catches up); 0 = off, default 30s
}

// VRRP is the [vrrp] table: VRRP between this director and its peers, which decides who
// holds the VIPs. RouterID 0 (the default) turns it off: the director always holds them.
type VRRP struct {
	RouterID int // VRID 1..255; 0 = off
	// Version is the VRRP version spoken: 2 (RFC 3768, the default, as keepalived's) or 3
	// (RFC 5798). Adverts of the other version are dropped, so every router of the
	// virtual router must speak the same one.
	Version        int
	Interface      string        // default: the director's interface
	Priority       int           // 1..254; default 100
	AdvertInterval time.Duration // version 2: whole seconds, 1s..255s; version 3: 10ms..40.95s in centiseconds; default 1s
	// AuthType and AuthPass are VRRPv2's authentication, as keepalived's authentication
	// block: "none" (the default) or "pass" with AuthPass of 1..8 bytes (keepalived's
	// auth_type PASS, auth_pass). keepalived's "ah" (IPsec AH) is not supported.
	AuthType     string
	AuthPass     string
	Preempt      bool          // default true
	PreemptDelay time.Duration // no preemption this long after start
	UnicastPeers []netip.Addr  // empty = multicast 224.0.0.18
	Addresses    []netip.Addr  // the VIPs it advertises and holds; default: every service VIP
	Notify       []string      // a command run on each transition, with the new state (MASTER, BACKUP) appended
	// Gratuitous ARP for each VIP on becoming master: GARPRepeat of them, and as many again
	// GARPDelay later (0 = no second round), as keepalived's vrrp_garp_master_repeat and
	// vrrp_garp_master_delay; every GARPRefresh while master (0 = off).
	GARPRepeat  int           // 1..100, default 5
	GARPDelay   time.Duration // default 5s
	GARPRefresh time.Duration // default 0 (off)
}

// Director is the [director] table: the host gvsd runs on.
type Director struct {
	Interface      string       // the interface that carries VIP traffic; required
	Workers        int          // 0 = runtime.NumCPU() is applied by the daemon, kept 0 here
	LocalAddresses []netip.Addr // FULLNAT source addresses, IPv4 and IPv6; empty = the interface's addresses (resolved by the daemon)
	LocalPorts     PortRange    // FULLNAT source ports
	Metrics        string       // host:port of the metrics listener; empty = off
	// DisableGRO turns GRO and LRO off on the interface while gvsd runs (restored at
	// exit). Off by default: merged frames are forwarded as GSO frames, so the offloads
	// are left as gvsd found them.
	DisableGRO bool
	// WorkerPolicy is the Linux scheduling policy of the worker threads: "batch"
	// (SCHED_BATCH, the default) or "normal" (SCHED_OTHER). A batch thread that a
	// frame wakes does not preempt the task running on its CPU: it runs when that
	// task's slice ends or it sleeps, and by then more frames wait, so a busy
	// worker reads bigger batches and wakes less often.
	WorkerPolicy string
	// BusyPoll is how long a worker that finds its ring empty keeps
	// looking at it before it sleeps in ppoll(2): a frame that comes in
	// that time is taken without a wakeup, at the price of a CPU that
	// spins while traffic pauses. 0 (the default) never spins; it pays on
	// CPUs given to gvsd alone (isolcpus, taskset), up to 1ms.
	BusyPoll time.Duration
}

// Timeouts is the [timeouts] table: idle timeouts of connection entries, as ipvsadm --set,
// and how long a removed real server keeps its connections.
type Timeouts struct {
	TCP, TCPFin, UDP time.Duration
	// Drain bounds how long a real removed from a service that remains keeps forwarding
	// its established connections (it takes no new ones); 0 = until they end, as IPVS
	// keeps a removed destination while connections use it.
	Drain time.Duration
}

// Limits is the [limits] table.
type Limits struct {
	Connections int // capacity of the connection table
}

// Service is one [[service]]: a virtual service (ipvsadm -A).
type Service struct {
	Name               string         // unique; default "<proto>/<address>", e.g. "tcp/10.20.0.100:80"
	Protocol           Protocol       // default TCP
	Address            netip.AddrPort // VIP:port; required
	Scheduler          string         // one of Schedulers(); default "wlc"
	SchedulerFlags     []string       // ipvsadm -b: sh-fallback, sh-port (sh), mh-fallback, mh-port (mh)
	Forward            Forward        // default for the reals; default DR
	Persistence        time.Duration  // > 0: same client, same real, for this long after its last connection
	PersistenceNetmask int            // prefix length of clients that share persistence; default 32 (IPv4), 128 (IPv6)
	OPS                bool           // one-packet scheduling; UDP only
	// SynProxy answers client SYNs with SYN cookies from the director and opens a
	// connection to a real only for a client that completes the handshake (DPVS's
	// synproxy): TCP only, and every real nat or fullnat.
	SynProxy bool
	// ProxyProtocol is the PROXY protocol header ("v1" or "v2"; "" = none) every real of
	// the service gets at the start of each TCP connection, with the client's address and
	// the VIP (HAProxy's proxy-protocol.txt): TCP only, and every real nat or fullnat. A
	// real's own proxy_protocol overrides it.
	ProxyProtocol string
	Reals         []Real
	// Check is the health check of the service's reals ([service.check]); Type "none"
	// (the default) checks nothing and every real counts as healthy.
	Check Check
	// Sorry, if set, is the real that takes the service's new connections while every
	// other real is down or quiesced ([service] sorry = "ip:port"); it is never checked.
	Sorry netip.AddrPort
}

// Check is a [service.check] table: how gvsd checks each real of the service.
type Check struct {
	Type     string        // none (default; "" in code means none) | tcp | http | https | udp | exec
	Interval time.Duration // default 2s
	Timeout  time.Duration // default 1s; at most Interval
	Rise     int           // consecutive successes to come back; default 2
	Fall     int           // consecutive failures to go down; default 3
	Port     int           // 0 = the real's port
	Path     string        // http/https; default "/"
	Status   []int         // http/https accepted codes; empty = 200..399
	Expect   string        // http/https body regexp; udp reply regexp
	Send     string        // udp payload: text, or hex after "0x"
	Command  []string      // exec: argv, with GVS_REAL_ADDR and GVS_REAL_PORT in the environment
	// OnFailure is what a failed real gets: "remove" (default: out of the scheduler, its
	// connections cut) or "quiesce" (weight 0, keepalived's inhibit_on_failure: its
	// established connections go on).
	OnFailure string
	// Alpha starts a real down until it passes rise checks (keepalived's alpha); by
	// default a real starts up and must fail fall checks to go down.
	Alpha bool
}

// CheckTypes are the accepted [service.check] types.
var CheckTypes = []string{"none", "tcp", "http", "https", "udp", "exec"}

// Real is one [[service.real]]: a real server of a service (ipvsadm -a).
type Real struct {
	Address netip.AddrPort // RIP:port; a port of 0 in the file is resolved to the service's port
	Weight  int            // default 1; 0 = quiescent (no new connections)
	// Connection thresholds (ipvsadm -x/-y), 0 = none: the real takes no new
	// connection once it has UpperThreshold (active + inactive), until it is
	// back below LowerThreshold (or 3/4 of the upper one when that is 0).
	UpperThreshold, LowerThreshold int
	Forward                        Forward // resolved: the real's own `forward`, else the service's
	// ProxyProtocol is resolved as Forward is: the real's own `proxy_protocol`
	// (OwnProxyProtocol set), else the service's. "" = none.
	ProxyProtocol    string
	OwnProxyProtocol bool
}

// ProxyProtocols are the accepted proxy_protocol values ("" is none).
var ProxyProtocols = []string{"", "v1", "v2"}

// Defaults, as DESIGN.md and the IPVS defaults (ipvsadm --set: tcp 900s, tcpfin 120s,
// udp 300s) have them.
const (
	defaultTCPTimeout    = 15 * time.Minute
	defaultTCPFinTimeout = 2 * time.Minute
	defaultUDPTimeout    = 5 * time.Minute
	// 4M entries: a few hundred MB with fixed-size entries, and ample for a lab-to-rack
	// sized director; the user raises it in [limits].
	defaultConnections = 4_000_000
	// IPVS's sync port (IP_VS_SYNC_PORT); a refresh every 30 s resends each
	// connection well inside the shortest default timeout it could hold
	// (UDP, 5 minutes).
	defaultSyncPort    = 8848
	defaultSyncRefresh = 30 * time.Second
	// BGP: see BGP.HoldTime for the hold time; a drain of 5 s lets the routers
	// take the withdraw (one UPDATE each, within milliseconds) and move new flows
	// before this director stops forwarding the ones already on their way.
	defaultBGPHoldTime = 9 * time.Second
	defaultBGPDrain    = 5 * time.Second
	defaultScheduler   = "wlc" // ipvsadm's default
	defaultWeight      = 1     // ipvsadm's default
	defaultNetmask     = 32    // ipvsadm -M default 255.255.255.255
	defaultNetmask6    = 128   // ipvsadm -M default for IPv6: a whole address
)

// defaultLocalPorts stays below the kernel's default ephemeral range (32768-60999,
// net.ipv4.ip_local_port_range) so FULLNAT ports do not collide with the host's own.
var defaultLocalPorts = PortRange{Lo: 1024, Hi: 32767}

// Bounds that validation enforces.
const (
	// maxWorkers: far beyond any NIC's queue count today; keeps a typo from spawning
	// thousands of AF_PACKET rings.
	maxWorkers = 256
	// maxBusyPoll: a worker that spins longer than this between bursts
	// wastes more than a wakeup costs.
	maxBusyPoll = time.Millisecond
	// maxConnections: 100M entries already needs many GB of RAM.
	maxConnections = 100_000_000
	maxWeight      = 65535 // ipvsadm(8): "valid values of weight are 0 through to 65535"
	maxNetmask     = 32    // IPv4
	maxNetmask6    = 128   // IPv6: a prefix length, as ipvsadm -M takes for an IPv6 service
	maxThreshold   = 1<<31 - 1
	ifNameSize     = 16 // IFNAMSIZ, including the NUL (linux/if.h)
	// maxMD5Key is TCP_MD5SIG_MAXKEYLEN (include/uapi/linux/tcp.h).
	maxMD5Key = 80
	maxAS     = 1<<32 - 1 // 4-octet AS numbers (RFC 6793)
	asTrans   = 23456     // AS_TRANS (RFC 6793): stands for a 4-octet AS, never a speaker's own
)

// schedulers are the LVS schedulers (ipvsadm(8) -s) in ipvsadm's order.
var schedulers = []string{"rr", "wrr", "lc", "wlc", "sed", "nq", "sh", "dh", "lblc", "lblcr", "mh", "fo", "ovf"}

// schedulerFlags are ipvsadm -b's flags and the scheduler each applies to.
var schedulerFlags = map[string]string{"sh-fallback": "sh", "sh-port": "sh", "mh-fallback": "mh", "mh-port": "mh"}

// Schedulers returns the names accepted in a service's `scheduler`, in ipvsadm's order.
// The caller owns the returned slice.
func Schedulers() []string { return slices.Clone(schedulers) }

// Default returns a Config with every default filled and no services. Its
// Director.Interface is empty (the one required field), so it does not pass Validate
// until the caller sets it.
func Default() *Config {
	return &Config{
		Director: Director{LocalPorts: defaultLocalPorts, WorkerPolicy: "batch"},
		Timeouts: Timeouts{TCP: defaultTCPTimeout, TCPFin: defaultTCPFinTimeout, UDP: defaultUDPTimeout},
		Limits:   Limits{Connections: defaultConnections},
		VRRP:     VRRP{Version: 2, Priority: 100, AdvertInterval: time.Second, AuthType: "none", Preempt: true, GARPRepeat: 5, GARPDelay: 5 * time.Second},
		Sync:     Sync{Port: defaultSyncPort, TTL: 1, Refresh: defaultSyncRefresh},
		BGP:      BGP{HoldTime: defaultBGPHoldTime, Drain: defaultBGPDrain, MED: -1},
	}
}

// defaultService returns a Service with the defaults of [[service]] filled.
func defaultService() Service {
	return Service{Protocol: TCP, Scheduler: defaultScheduler, Forward: DR, PersistenceNetmask: defaultNetmask, Check: DefaultCheck()}
}

// DefaultCheck returns a [service.check] with every default filled and type none.
func DefaultCheck() Check {
	return Check{Type: "none", Interval: 2 * time.Second, Timeout: time.Second, Rise: 2, Fall: 3, Path: "/", OnFailure: "remove"}
}

// defaultName is a service's name when the file gives none.
func defaultName(p Protocol, a netip.AddrPort) string { return p.String() + "/" + a.String() }
