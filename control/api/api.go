package api

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"syscall"
	"time"
)

// DefaultSocket is where gvsd listens and gvsadm calls unless told
// otherwise (gvsd -socket, gvsadm --socket or GVS_SOCKET).
const DefaultSocket = "/run/gvs/gvsd.sock"

// Operations a Request names.
const (
	OpList        = "list"        // services, reals and their counters
	OpConnections = "connections" // the connection table (ipvsadm -L -c)
)

// OpEdit changes the running services (Request.Edit); OpReload makes
// gvsd re-read its configuration file, as SIGHUP does.
const (
	OpEdit   = "edit"
	OpReload = "reload"
)

// OpDoctor asks gvsd to check the director's setup (Response.Checks).
const OpDoctor = "doctor"

// Check is one finding of OpDoctor: a problem says what is wrong and the
// command that fixes it.
type Check struct {
	Name   string `json:"name"`
	Status string `json:"status"` // "ok", "warn" or "fail"
	Detail string `json:"detail"`
	Fix    string `json:"fix,omitempty"`
}

// OpCapture records what the dataplane does with the frames
// Request.Capture selects; its answer is a stream of CaptureEvents
// (Capture).
const OpCapture = "capture"

// OpSimulate says which real a new connection from a client would get
// now, and why, without sending traffic or changing anything
// (Request.Simulate; the answer is Response.Simulation).
const OpSimulate = "simulate"

// Request is what gvsadm asks.
type Request struct {
	Op       string           `json:"op"`
	Edit     *Edit            `json:"edit,omitempty"`
	Capture  *CaptureRequest  `json:"capture,omitempty"`
	Simulate *SimulateRequest `json:"simulate,omitempty"`
}

// SimulateRequest is the new connection OpSimulate asks about.
type SimulateRequest struct {
	Protocol string `json:"protocol"` // "tcp" or "udp"
	Address  string `json:"address"`  // the service's VIP:port
	Client   string `json:"client"`   // IP or IP:port (port 0 when not given)
}

// Simulation is what a new connection would get now, and why: decided as
// gvsd's dataplane decides it, from the same table, templates and
// counters, changing none of them.
type Simulation struct {
	Protocol       string   `json:"protocol"`
	Address        string   `json:"address"` // VIP:port
	Client         string   `json:"client"`  // IP:port
	Scheduler      string   `json:"scheduler"`
	SchedulerFlags []string `json:"scheduler_flags,omitempty"`
	Persistence    uint32   `json:"persistence,omitempty"` // seconds, 0 = none
	Netmask        int      `json:"netmask,omitempty"`     // persistence prefix length
	OPS            bool     `json:"ops,omitempty"`
	// Real is the real server (RIP:port) the connection would go to, ""
	// when none would take it.
	Real    string `json:"real,omitempty"`
	Forward string `json:"forward,omitempty"`
	// DecidedBy is "template" (a live persistence template whose real
	// takes it), "scheduler", or "none" (no real can take it: the
	// dataplane drops it with verdict no_real).
	DecidedBy string `json:"decided_by"`
	// Reason says why, in the scheduler's or the template's terms.
	Reason string `json:"reason"`
	// Template is the client's persistence template, when the service
	// has persistence.
	Template *SimulatedTemplate `json:"template,omitempty"`
	// Sorry is the service's sorry server, "" if it has none;
	// SorryActive says it is one of the service's reals now (because
	// every other real is down or has weight 0), so the scheduler may
	// pick it.
	Sorry       string `json:"sorry,omitempty"`
	SorryActive bool   `json:"sorry_active,omitempty"`
	// Notes are what else an operator should know of the answer.
	Notes []string `json:"notes,omitempty"`
	// Reals are the service's reals as the decision saw them, in the
	// scheduler's order.
	Reals []SimulatedReal `json:"reals"`
}

// SimulatedTemplate is a client's persistence template as OpSimulate
// found it.
type SimulatedTemplate struct {
	Client string `json:"client"` // the client address masked to the netmask: the template's key
	Found  bool   `json:"found"`  // a live template exists
	Real   string `json:"real,omitempty"`
	// Connections hold the template; with none it lapses in Expires
	// seconds.
	Connections int32 `json:"connections,omitempty"`
	Expires     int64 `json:"expires,omitempty"`
	// Usable: its real takes the new connection, so the template
	// decides. If not, Note says why, and the connection is scheduled
	// afresh and the template replaced.
	Usable bool   `json:"usable,omitempty"`
	Note   string `json:"note,omitempty"`
}

// SimulatedReal is one real of the service as OpSimulate's decision saw
// it.
type SimulatedReal struct {
	Address string `json:"address"` // RIP:port
	Forward string `json:"forward"`
	Weight  int    `json:"weight"` // configured
	// SchedWeight is the weight the scheduler sees: 0 while the real is
	// not ready or has failed its check.
	SchedWeight    int    `json:"sched_weight"`
	Ready          bool   `json:"ready"`
	Health         string `json:"health,omitempty"` // "up" or "down"; "" without a check
	Overloaded     bool   `json:"overloaded,omitempty"`
	Active         int64  `json:"active"`
	Inactive       int64  `json:"inactive"`
	Persistent     int64  `json:"persistent"`
	UpperThreshold uint32 `json:"upper_threshold,omitempty"`
	LowerThreshold uint32 `json:"lower_threshold,omitempty"`
	Sorry          bool   `json:"sorry,omitempty"`  // the sorry server
	Chosen         bool   `json:"chosen,omitempty"` // the connection would go here
	// Note sums up the real's part: "chosen", "template", "hashed here",
	// "cached here", "not ready", "check failed", "quiescent",
	// "overloaded", "sorry server", comma-separated.
	Note string `json:"note,omitempty"`
}

// CaptureRequest selects the frames a capture records and bounds it.
// Empty fields match everything.
type CaptureRequest struct {
	Protocol string   `json:"protocol,omitempty"` // "tcp", "udp" or "icmp"
	Service  string   `json:"service,omitempty"`  // "tcp:VIP:port" or "udp:VIP:port"
	Real     string   `json:"real,omitempty"`     // RIP or RIP:port
	Host     string   `json:"host,omitempty"`     // an address or prefix the frame comes from or goes to
	Port     uint16   `json:"port,omitempty"`     // a port the frame comes from or goes to
	Verdicts []string `json:"verdicts,omitempty"` // forward, no_service, no_conn, ...
	Count    uint64   `json:"count,omitempty"`    // stop after this many frames
	Seconds  float64  `json:"seconds,omitempty"`  // stop after this long
}

// CaptureEvent is one line of a capture's stream: a frame, or the end
// (which says why), or an error.
type CaptureEvent struct {
	Packet *CapturedPacket `json:"packet,omitempty"`
	End    *CaptureEnd     `json:"end,omitempty"`
	Error  string          `json:"error,omitempty"`
}

// CapturedPacket is one recorded frame: as it arrived and, if the
// dataplane sent one, as it left. In is null for a frame the dataplane
// made and sent on its own (a PROXY protocol header, say).
type CapturedPacket struct {
	Time    time.Time `json:"time"`
	Worker  int       `json:"worker"`
	In      []byte    `json:"in"`
	Out     []byte    `json:"out,omitempty"`
	Verdict string    `json:"verdict"`
	Service string    `json:"service,omitempty"` // "tcp:VIP:port"
	Real    string    `json:"real,omitempty"`    // RIP:port
	Forward string    `json:"forward,omitempty"` // dr, tun, nat, fullnat
}

// CaptureEnd closes a capture's stream.
type CaptureEnd struct {
	Matched uint64 `json:"matched"` // frames that matched (up to the count)
	Dropped uint64 `json:"dropped"` // of those, lost because the capture queue was full
	Reason  string `json:"reason"`  // "count", "time" or "stopped"
}

// Edit commands, as ipvsadm's.
const (
	AddService    = "add-service"    // -A
	EditService   = "edit-service"   // -E
	DeleteService = "delete-service" // -D
	AddServer     = "add-server"     // -a
	EditServer    = "edit-server"    // -e
	DeleteServer  = "delete-server"  // -d
	Clear         = "clear"          // -C
	Zero          = "zero"           // -Z
	SetTimeouts   = "set"            // --set
)

// Edit is one change to the running services, in ipvsadm's terms. A nil
// pointer or empty string leaves a field as it is (for -E and -e) or at
// ipvsadm's default (for -A and -a). The change lasts until gvsd reloads
// its configuration file, which is the truth.
type Edit struct {
	Command        string   `json:"command"`
	Protocol       string   `json:"protocol,omitempty"` // "tcp" or "udp"
	Address        string   `json:"address,omitempty"`  // VIP:port; empty with -C and -Z means every service
	Scheduler      string   `json:"scheduler,omitempty"`
	SchedulerFlags []string `json:"scheduler_flags,omitempty"`
	Persistence    *uint32  `json:"persistence,omitempty"` // seconds; 0 turns it off
	Netmask        *int     `json:"netmask,omitempty"`     // prefix length
	OPS            *bool    `json:"ops,omitempty"`
	// ProxyProtocol is gvs's --proxy-protocol: "v1", "v2", or "" for none;
	// nil leaves it as it is. On a service it applies to the reals without
	// their own; on a real it is the real's own.
	ProxyProtocol  *string `json:"proxy_protocol,omitempty"`
	Real           string  `json:"real,omitempty"`    // RIP:port
	Forward        string  `json:"forward,omitempty"` // "dr", "tun", "nat" or "fullnat"
	Weight         *int    `json:"weight,omitempty"`
	UpperThreshold *int    `json:"upper_threshold,omitempty"`
	LowerThreshold *int    `json:"lower_threshold,omitempty"`
	// Timeouts of --set, in seconds; 0 leaves one as it is.
	TCP, TCPFin, UDP uint32 `json:",omitempty"`
}

// Response is gvsd's answer: Error is set, or the data of the operation.
type Response struct {
	Error       string       `json:"error,omitempty"`
	TableSize   int          `json:"table_size,omitempty"` // limits.connections
	Services    []Service    `json:"services,omitempty"`
	VRRP        *VRRPStatus  `json:"vrrp,omitempty"`
	Sync        *SyncStatus  `json:"sync,omitempty"`
	BGP         *BGPStatus   `json:"bgp,omitempty"`
	Ingress     *Ingress     `json:"ingress,omitempty"`
	Checks      []Check      `json:"checks,omitempty"`
	Connections []Connection `json:"connections,omitempty"`
	Simulation  *Simulation  `json:"simulation,omitempty"` // OpSimulate's answer
}

// Ingress is what the director's nftables ingress table (table netdev gvs)
// counted since gvsd started.
type Ingress struct {
	// Taken are the frames it kept from the kernel for the dataplane.
	Taken uint64 `json:"taken"`
	// LeftToKernel are IPv6 frames to a [VIP]:port or from a NAT
	// [RIP]:port whose extension headers the dataplane does not walk: the
	// director's kernel got them (and answers for the VIP).
	LeftToKernel uint64 `json:"left_to_kernel"`
}

// BGPStatus is the director's BGP speaker as it runs ([bgp]).
type BGPStatus struct {
	LocalAS  uint32 `json:"local_as"`
	RouterID string `json:"router_id"`
	NextHop  string `json:"next_hop"`            // of every announced IPv4 prefix
	NextHop6 string `json:"next_hop6,omitempty"` // of every announced IPv6 prefix; "" = none
	HoldTime int    `json:"hold_time"`           // seconds, as proposed to the peers
	// Stopping is set once gvsd has withdrawn everything on its way out
	// and forwards until [bgp] drain ends.
	Stopping bool `json:"stopping,omitempty"`
	// Learning is set while a director with [sync] that started less
	// than a refresh ago waits for the other directors' connections
	// before it announces anything: until then.
	Learning time.Time `json:"learning_until,omitzero"`
	Peers    []BGPPeer `json:"peers"`
	// Announced are the prefixes (VIP/32, IPv6 VIP/128) announced to the peers now;
	// Withdrawn the service VIPs that are not: no ready real, or stopping.
	Announced []string `json:"announced"`
	Withdrawn []string `json:"withdrawn,omitempty"`
}

// BGPPeer is one BGP session of the director.
type BGPPeer struct {
	Address string `json:"address"`
	AS      uint32 `json:"as"`
	// State is the session's RFC 4271 state in lower case: idle, connect,
	// active, opensent, openconfirm or established.
	State       string    `json:"state"`
	Established bool      `json:"established"`
	Since       time.Time `json:"since,omitzero"` // established since
	Uptime      int64     `json:"uptime_seconds"` // 0 unless established
	// UPDATE messages received from and sent to the peer.
	UpdatesReceived uint64 `json:"updates_received"`
	UpdatesSent     uint64 `json:"updates_sent"`
}

// SyncStatus is the director's connection sync as it runs ([sync]).
type SyncStatus struct {
	// Role is "master" while the director holds the VIPs and sends its
	// connections, "backup" while it installs its peer's.
	Role      string `json:"role"`
	Interface string `json:"interface"`
	Group     string `json:"group,omitempty"` // multicast group, or
	Peer      string `json:"peer,omitempty"`  // the unicast peer
	Port      int    `json:"port"`
	SyncID    int    `json:"sync_id"`
	MaxLen    int    `json:"maxlen"` // largest message, bytes (IPVS sync_maxlen)
	// Sent: messages and connection records sent, and send errors.
	MessagesSent uint64 `json:"messages_sent"`
	ConnsSent    uint64 `json:"conns_sent"`
	SendErrors   uint64 `json:"send_errors"`
	// Dropped are connection reports the workers could not queue for the
	// sender (its ring was full).
	Dropped uint64 `json:"dropped"`
	// Received: messages and records received; Invalid messages that did
	// not decode; Ignored records of another sync ID, templates and other
	// protocols.
	MessagesReceived uint64 `json:"messages_received"`
	ConnsReceived    uint64 `json:"conns_received"`
	Invalid          uint64 `json:"invalid"`
	Ignored          uint64 `json:"ignored"`
	// What the workers did with received connections: installed or
	// updated, unknown (no such service or real here), refused (table
	// full), lost because a worker's inbox was full, or kept (received
	// while master for a connection this director has: its own entry
	// stays).
	Installed uint64 `json:"installed"`
	Unknown   uint64 `json:"unknown"`
	Refused   uint64 `json:"refused"`
	InboxFull uint64 `json:"inbox_full"`
	Kept      uint64 `json:"kept"`
}

// Stats are the traffic counters of a service or a real (ipvsadm --stats):
// In is client to real, Out real to client (NAT and FULLNAT only).
type Stats struct {
	Conns    uint64 `json:"conns"`
	InPkts   uint64 `json:"in_pkts"`
	OutPkts  uint64 `json:"out_pkts"`
	InBytes  uint64 `json:"in_bytes"`
	OutBytes uint64 `json:"out_bytes"`
}

// Add adds o to s.
func (s *Stats) Add(o Stats) {
	s.Conns += o.Conns
	s.InPkts += o.InPkts
	s.OutPkts += o.OutPkts
	s.InBytes += o.InBytes
	s.OutBytes += o.OutBytes
}

// VRRPStatus is the director's VRRP instance as it runs.
type VRRPStatus struct {
	State    string    `json:"state"` // INIT, BACKUP or MASTER
	RouterID int       `json:"router_id"`
	Version  int       `json:"version"` // 2 or 3
	Priority int       `json:"priority"`
	Master   string    `json:"master,omitempty"` // the master's address as far as known
	Since    time.Time `json:"since,omitzero"`   // when State last changed
	Sent     uint64    `json:"adverts_sent"`
	Received uint64    `json:"adverts_received"`
	Invalid  uint64    `json:"adverts_invalid"` // dropped: the sum of Dropped
	// Dropped counts the adverts dropped by reason: malformed, ttl (not
	// 255), version (neither 2 nor 3, or not ours), checksum, vrid
	// (another virtual router's), auth (VRRPv2: another auth_type or
	// password), interval (VRRPv2: another advert interval).
	Dropped map[string]uint64 `json:"adverts_dropped,omitempty"`
	// Mismatches are the peers that send adverts for our router_id which
	// this director drops for another version, authentication or interval:
	// they cannot hear this director, nor be heard, so both may be master.
	// One stays until the peer resigns (priority 0) or sends adverts this
	// director accepts.
	Mismatches []VRRPMismatch `json:"mismatches,omitempty"`
}

// VRRPMismatch is a peer that sends adverts for our router_id configured
// otherwise.
type VRRPMismatch struct {
	Peer    string    `json:"peer"`
	Reason  string    `json:"reason"`  // version, auth or interval
	Version int       `json:"version"` // the peer's
	Since   time.Time `json:"since"`   // first heard so
	Last    time.Time `json:"last"`    // last heard so
}

// Rates are the estimated rates of a service or a real (ipvsadm --rate):
// connections, packets and bytes per second, in and out, averaged as IPVS
// does (2-second samples, each moving the estimate a quarter of the way).
type Rates struct {
	CPS    uint64 `json:"cps"`
	InPPS  uint64 `json:"in_pps"`
	OutPPS uint64 `json:"out_pps"`
	InBPS  uint64 `json:"in_bps"`
	OutBPS uint64 `json:"out_bps"`
}

// Service is one virtual service as it runs.
type Service struct {
	Name           string   `json:"name"`
	Protocol       string   `json:"protocol"` // "tcp" or "udp"
	Address        string   `json:"address"`  // VIP:port
	Scheduler      string   `json:"scheduler"`
	SchedulerFlags []string `json:"scheduler_flags,omitempty"`
	Persistence    uint32   `json:"persistence,omitempty"` // seconds, 0 = none
	Netmask        int      `json:"netmask,omitempty"`     // persistence prefix length
	OPS            bool     `json:"ops,omitempty"`
	ProxyProtocol  string   `json:"proxy_protocol,omitempty"` // "v1" or "v2": the PROXY protocol header its reals get
	Stats          Stats    `json:"stats"`                    // the sum of its reals'
	Rates          Rates    `json:"rates"`
	// History is the service's recent rates, on the status page only
	// (Status); gvsadm leaves it out.
	History *History `json:"history,omitempty"`
	Reals   []Real   `json:"reals"`
}

// Real is one real server of a service as it runs.
type Real struct {
	Address        string `json:"address"`                  // RIP:port
	Forward        string `json:"forward"`                  // "dr", "tun", "nat" or "fullnat"
	ProxyProtocol  string `json:"proxy_protocol,omitempty"` // "v1" or "v2": the PROXY protocol header it gets (its own or its service's)
	Weight         int    `json:"weight"`
	UpperThreshold uint32 `json:"upper_threshold,omitempty"`
	LowerThreshold uint32 `json:"lower_threshold,omitempty"`
	Active         int64  `json:"active"`
	Inactive       int64  `json:"inactive"`
	Persistent     int64  `json:"persistent"`
	Overloaded     bool   `json:"overloaded,omitempty"`
	Ready          bool   `json:"ready"` // can take traffic: next hop known and not removed by a failed check
	// Health is "up" or "down" for a checked real, "" when the service has
	// no check; the rest is the check's last result and when Health last
	// changed.
	Health        string    `json:"health,omitempty"`
	HealthError   string    `json:"health_error,omitempty"`
	HealthChanged time.Time `json:"health_changed,omitzero"`
	HealthChecks  uint64    `json:"health_checks,omitempty"`
	Stats         Stats     `json:"stats"`
	Rates         Rates     `json:"rates"`
	// History is the real's recent rates, on the status page only
	// (Status); gvsadm leaves it out.
	History *History `json:"history,omitempty"`
}

// Connection is one entry of the connection table.
type Connection struct {
	Protocol string `json:"protocol"` // "tcp" or "udp"
	Client   string `json:"client"`   // address:port
	Virtual  string `json:"virtual"`
	Real     string `json:"real"`
	Local    string `json:"local,omitempty"` // FULLNAT source address:port
	State    string `json:"state"`           // ipvsadm's names: ESTABLISHED, SYN_RECV, ..., UDP
	Expires  int64  `json:"expires"`         // seconds left
}

// Handler answers a request.
type Handler func(ctx context.Context, req *Request) *Response

// callTimeout bounds a whole call.
const callTimeout = 30 * time.Second

// Call sends req to the gvsd listening on socket and returns its answer.
// Its errors say what an operator must do: start gvsd, or run as root.
func Call(ctx context.Context, socket string, req *Request) (*Response, error) {
	ctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	var d net.Dialer
	c, err := d.DialContext(ctx, "unix", socket)
	if err != nil {
		switch {
		case errors.Is(err, os.ErrNotExist), errors.Is(err, syscall.ECONNREFUSED):
			return nil, fmt.Errorf("cannot reach gvsd at %s: is it running? (%w)", socket, err)
		case errors.Is(err, os.ErrPermission):
			return nil, fmt.Errorf("cannot reach gvsd at %s: permission denied (you must be root)", socket)
		}
		return nil, fmt.Errorf("cannot reach gvsd at %s: %w", socket, err)
	}
	defer c.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = c.SetDeadline(dl)
	}
	if err := json.NewEncoder(c).Encode(req); err != nil {
		return nil, fmt.Errorf("gvsd at %s: send: %w", socket, err)
	}
	var resp Response
	if err := json.NewDecoder(bufio.NewReader(c)).Decode(&resp); err != nil {
		return nil, fmt.Errorf("gvsd at %s: bad answer: %w", socket, err)
	}
	if resp.Error != "" {
		return &resp, errors.New(resp.Error)
	}
	return &resp, nil
}

// maxRequest bounds what the server reads of one request.
const maxRequest = 1 << 20

// Streamer answers a streaming request (OpCapture): it calls emit for
// each event until it is done or ctx ends (the caller went away), and
// sends the end event itself.
type Streamer func(ctx context.Context, req *Request, emit func(*CaptureEvent) error)

// streamWriteTimeout bounds one event's write, so a caller that stops
// reading cannot hold a capture open.
const streamWriteTimeout = 10 * time.Second

// Serve answers requests on l with h until l is closed; it returns nil
// then. Each connection carries one request.
func Serve(ctx context.Context, l net.Listener, h Handler) error { return ServeStreams(ctx, l, h, nil) }

// ServeStreams is Serve that also answers OpCapture with s.
func ServeStreams(ctx context.Context, l net.Listener, h Handler, s Streamer) error {
	for {
		c, err := l.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return nil
			}
			return err
		}
		go func() { // one API request
			defer c.Close()
			_ = c.SetDeadline(time.Now().Add(callTimeout))
			var req Request
			resp := &Response{}
			dec := json.NewDecoder(io.LimitReader(c, maxRequest))
			if err := dec.Decode(&req); err != nil {
				resp.Error = fmt.Sprintf("bad request: %v", err)
			} else if req.Op == OpCapture && s != nil {
				stream(ctx, c, &req, s)
				return
			} else {
				rctx, cancel := context.WithTimeout(ctx, callTimeout)
				resp = h(rctx, &req)
				cancel()
			}
			_ = json.NewEncoder(c).Encode(resp)
		}()
	}
}

// stream runs a streaming request on c until s is done or the caller
// closes its end.
func stream(ctx context.Context, c net.Conn, req *Request, s Streamer) {
	_ = c.SetDeadline(time.Time{})
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() { // api: ends the stream when the caller goes away
		var b [1]byte
		c.Read(b[:])
		cancel()
	}()
	enc := json.NewEncoder(c)
	s(ctx, req, func(e *CaptureEvent) error {
		_ = c.SetWriteDeadline(time.Now().Add(streamWriteTimeout))
		if err := enc.Encode(e); err != nil {
			cancel()
			return err
		}
		return nil
	})
}

// Capture sends a capture request to the gvsd at socket and calls fn with
// each event of the stream, until the end event (which it passes to fn
// too), an error event (returned as an error), fn's error or ctx's end.
func Capture(ctx context.Context, socket string, req *CaptureRequest, fn func(*CaptureEvent) error) error {
	var d net.Dialer
	c, err := d.DialContext(ctx, "unix", socket)
	if err != nil {
		switch {
		case errors.Is(err, os.ErrNotExist), errors.Is(err, syscall.ECONNREFUSED):
			return fmt.Errorf("cannot reach gvsd at %s: is it running? (%w)", socket, err)
		case errors.Is(err, os.ErrPermission):
			return fmt.Errorf("cannot reach gvsd at %s: permission denied (you must be root)", socket)
		}
		return fmt.Errorf("cannot reach gvsd at %s: %w", socket, err)
	}
	defer c.Close()
	go func() { // api: closing the socket when ctx ends unblocks the decoder
		<-ctx.Done()
		c.Close()
	}()
	if err := json.NewEncoder(c).Encode(&Request{Op: OpCapture, Capture: req}); err != nil {
		return fmt.Errorf("gvsd at %s: send: %w", socket, err)
	}
	dec := json.NewDecoder(bufio.NewReader(c))
	for {
		var e CaptureEvent
		if err := dec.Decode(&e); err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return fmt.Errorf("gvsd at %s: capture stream: %w", socket, err)
		}
		if e.Error != "" {
			return errors.New(e.Error)
		}
		if err := fn(&e); err != nil {
			return err
		}
		if e.End != nil {
			return nil
		}
	}
}

// Listen makes the unix socket at path for Serve: its directory is
// created (0700) if missing, a stale socket from a gvsd that died is
// removed, and the socket is made 0600 so only root can call. It refuses
// when another gvsd answers there.
func Listen(path string) (net.Listener, error) {
	if err := os.MkdirAll(dirOf(path), 0o700); err != nil {
		return nil, fmt.Errorf("control socket %s: %w", path, err)
	}
	if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
		c.Close()
		return nil, fmt.Errorf("control socket %s: another gvsd is listening there", path)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("control socket %s: remove stale socket: %w", path, err)
	}
	l, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("control socket %s: %w", path, err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		l.Close()
		return nil, fmt.Errorf("control socket %s: %w", path, err)
	}
	return l, nil
}

func dirOf(path string) string {
	for i := len(path) - 1; i >= 0; i-- {
		if path[i] == '/' {
			if i == 0 {
				return "/"
			}
			return path[:i]
		}
	}
	return "."
}
