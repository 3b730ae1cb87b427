package conntrack

import "time"

// IP protocol numbers (IANA "Assigned Internet Protocol Numbers").
const (
	protoTCP = 6
	protoUDP = 17
)

// TCP header flag bits (RFC 9293 section 3.1, byte 13 of the header).
const (
	tcpFIN = 0x01
	tcpSYN = 0x02
	tcpRST = 0x04
	tcpACK = 0x10
)

// State is the state of a connection: the IPVS TCP states in the kernel's
// order (IP_VS_TCP_S_* in include/uapi/linux/ip_vs.h, where NONE is 0) and
// UDP. The zero value, StateNone, is the state of a TCP entry that has seen
// no packet yet.
type State uint8

// Connection states.
const (
	StateNone State = iota
	TCPEstablished
	TCPSynSent
	TCPSynRecv
	TCPFinWait
	TCPTimeWait
	TCPClose
	TCPCloseWait
	TCPLastAck
	TCPListen
	TCPSynAck
	UDP

	numTCPStates = int(TCPSynAck) + 1
)

// stateNames are the names ipvsadm -L -c prints (tcp_state_name_table in
// ip_vs_proto_tcp.c, udp_state_name_table in ip_vs_proto_udp.c).
var stateNames = [...]string{
	StateNone:      "NONE",
	TCPEstablished: "ESTABLISHED",
	TCPSynSent:     "SYN_SENT",
	TCPSynRecv:     "SYN_RECV",
	TCPFinWait:     "FIN_WAIT",
	TCPTimeWait:    "TIME_WAIT",
	TCPClose:       "CLOSE",
	TCPCloseWait:   "CLOSE_WAIT",
	TCPLastAck:     "LAST_ACK",
	TCPListen:      "LISTEN",
	TCPSynAck:      "SYNACK",
	UDP:            "UDP",
}

// String returns the state's name as ipvsadm -L -c prints it.
func (s State) String() string {
	if int(s) < len(stateNames) {
		return stateNames[s]
	}
	return "ERR!" // as tcp_state_name for a state out of range
}

// IsActive reports whether a connection in state s counts as active
// (ipvsadm's ActiveConn) rather than inactive (InActConn). As in
// tcp_state_active_table of ip_vs_proto_tcp.c in current kernels, the
// pre-established states SYN_SENT, SYN_RECV and SYNACK count as active
// along with ESTABLISHED; every other state, and UDP, is inactive.
func IsActive(s State) bool {
	switch s {
	case TCPEstablished, TCPSynSent, TCPSynRecv, TCPSynAck:
		return true
	}
	return false
}

// Direction is the direction of a packet relative to its connection, as
// the rows of the IPVS TCP state table. The zero value is invalid.
type Direction uint8

// Directions.
const (
	DirInput     Direction = iota + 1 // client→real, replies also seen (NAT/FULLNAT)
	DirOutput                         // real→client
	DirInputOnly                      // client→real, replies never seen (DR/TUN)
)

// Timeouts are the tunable timeouts of ipvsadm --set tcp tcpfin udp. A
// zero field means the IPVS default.
type Timeouts struct {
	TCP, TCPFin, UDP time.Duration
}

// IPVS default timeouts: tcp_timeouts in ip_vs_proto_tcp.c and
// udp_timeouts in ip_vs_proto_udp.c.
const (
	DefaultTCP    = 15 * time.Minute
	DefaultTCPFin = 2 * time.Minute
	DefaultUDP    = 5 * time.Minute
)

// fixedTimeouts are the TCP timeouts ipvsadm --set does not change
// (tcp_timeouts in ip_vs_proto_tcp.c); ESTABLISHED and FIN_WAIT come from
// Timeouts.
var fixedTimeouts = [numTCPStates]time.Duration{
	StateNone:    2 * time.Second,
	TCPSynSent:   2 * time.Minute,
	TCPSynRecv:   1 * time.Minute,
	TCPTimeWait:  2 * time.Minute,
	TCPClose:     10 * time.Second,
	TCPCloseWait: 60 * time.Second,
	TCPLastAck:   30 * time.Second,
	TCPListen:    2 * time.Minute,
	TCPSynAck:    120 * time.Second,
}

// Timeout returns the timeout of a connection in state s: ESTABLISHED is
// t.TCP (15m), FIN_WAIT t.TCPFin (2m), UDP t.UDP (5m), and the others the
// IPVS constants: NONE 2s, SYN_SENT 2m, SYN_RECV 1m, TIME_WAIT 2m, CLOSE
// 10s, CLOSE_WAIT 1m, LAST_ACK 30s, LISTEN 2m, SYNACK 2m. A state out of
// range gets 2s, as IP_VS_TCP_S_LAST does.
func (t *Timeouts) Timeout(s State) time.Duration {
	switch s {
	case TCPEstablished:
		return orDefault(t.TCP, DefaultTCP)
	case TCPFinWait:
		return orDefault(t.TCPFin, DefaultTCPFin)
	case UDP:
		return orDefault(t.UDP, DefaultUDP)
	}
	if int(s) < numTCPStates {
		return fixedTimeouts[s]
	}
	return 2 * time.Second
}

func orDefault(d, def time.Duration) time.Duration {
	if d > 0 {
		return d
	}
	return def
}

// Columns of the state table: the flag a packet is classified by.
const (
	flagSYN = iota
	flagFIN
	flagACK
	flagRST
	numFlagRows
)

// tcpStates is tcp_states of ip_vs_proto_tcp.c (the normal table, not the
// secure_tcp tcp_states_dos): the next state by direction row, flag and
// current state.
var tcpStates = [3][numFlagRows][numTCPStates]State{
	DirInput - 1: {
		//          sNO, sES, sSS, sSR, sFW, sTW, sCL, sCW, sLA, sLI, sSA
		flagSYN: {sSR, sES, sES, sSR, sSR, sSR, sSR, sSR, sSR, sSR, sSR},
		flagFIN: {sCL, sCW, sSS, sTW, sTW, sTW, sCL, sCW, sLA, sLI, sTW},
		flagACK: {sES, sES, sSS, sES, sFW, sTW, sCL, sCW, sCL, sLI, sES},
		flagRST: {sCL, sCL, sCL, sSR, sCL, sCL, sCL, sCL, sLA, sLI, sSR},
	},
	DirOutput - 1: {
		//          sNO, sES, sSS, sSR, sFW, sTW, sCL, sCW, sLA, sLI, sSA
		flagSYN: {sSS, sES, sSS, sSR, sSS, sSS, sSS, sSS, sSS, sLI, sSR},
		flagFIN: {sTW, sFW, sSS, sTW, sFW, sTW, sCL, sTW, sLA, sLI, sTW},
		flagACK: {sES, sES, sSS, sES, sFW, sTW, sCL, sCW, sLA, sES, sES},
		flagRST: {sCL, sCL, sSS, sCL, sCL, sTW, sCL, sCL, sCL, sCL, sCL},
	},
	DirInputOnly - 1: {
		//          sNO, sES, sSS, sSR, sFW, sTW, sCL, sCW, sLA, sLI, sSA
		flagSYN: {sSR, sES, sES, sSR, sSR, sSR, sSR, sSR, sSR, sSR, sSR},
		flagFIN: {sCL, sFW, sSS, sTW, sFW, sTW, sCL, sCW, sLA, sLI, sTW},
		flagACK: {sES, sES, sSS, sES, sFW, sTW, sCL, sCW, sCL, sLI, sES},
		flagRST: {sCL, sCL, sCL, sSR, sCL, sCL, sCL, sCL, sLA, sLI, sCL},
	},
}

// The kernel's abbreviations, so that tcpStates reads like tcp_states.
const (
	sNO = StateNone
	sES = TCPEstablished
	sSS = TCPSynSent
	sSR = TCPSynRecv
	sFW = TCPFinWait
	sTW = TCPTimeWait
	sCL = TCPClose
	sCW = TCPCloseWait
	sLA = TCPLastAck
	sLI = TCPListen
	sSA = TCPSynAck
)

// Transition moves e.State for a packet travelling in direction dir with
// the TCP flags tcpFlags (byte 13 of the TCP header), by the IPVS TCP state
// table (tcp_states in ip_vs_proto_tcp.c; rows INPUT, OUTPUT, INPUT-ONLY),
// and returns the old state. As set_tcp_state does, the packet is
// classified by RST, else SYN, else FIN, else ACK, and a packet with none
// of these flags moves the entry to CLOSE.
//
// A UDP entry (State UDP or Proto 17) stays or becomes UDP. An invalid
// direction leaves the state unchanged; a TCP state out of range moves to
// CLOSE. The caller sets e.Expires from Timeouts.Timeout(e.State) and
// moves the real's active/inactive counters when IsActive changes.
//
// The kernel uses the INPUT-ONLY row for a client packet of a connection
// flagged IP_VS_CONN_F_NOOUTPUT (every method but NAT) until it sees a
// packet from the real; the caller makes that choice through dir.
func (e *Entry[A]) Transition(dir Direction, tcpFlags uint8) (old State) {
	old = e.State
	if old == UDP || e.Proto == protoUDP {
		e.State = UDP
		return old
	}
	if dir < DirInput || dir > DirInputOnly {
		return old
	}
	if int(old) >= numTCPStates {
		e.State = TCPClose
		return old
	}
	var col int
	switch {
	case tcpFlags&tcpRST != 0:
		col = flagRST
	case tcpFlags&tcpSYN != 0:
		col = flagSYN
	case tcpFlags&tcpFIN != 0:
		col = flagFIN
	case tcpFlags&tcpACK != 0:
		col = flagACK
	default:
		e.State = TCPClose
		return old
	}
	e.State = tcpStates[dir-1][col][old]
	return old
}
