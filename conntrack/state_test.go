package conntrack

import (
	"testing"
	"time"
)

const (
	fFIN = tcpFIN
	fSYN = tcpSYN
	fRST = tcpRST
	fACK = tcpACK
)

func TestStateString(t *testing.T) {
	for s, want := range map[State]string{
		StateNone: "NONE", TCPEstablished: "ESTABLISHED", TCPSynSent: "SYN_SENT",
		TCPSynRecv: "SYN_RECV", TCPFinWait: "FIN_WAIT", TCPTimeWait: "TIME_WAIT",
		TCPClose: "CLOSE", TCPCloseWait: "CLOSE_WAIT", TCPLastAck: "LAST_ACK",
		TCPListen: "LISTEN", TCPSynAck: "SYNACK", UDP: "UDP", 200: "ERR!",
	} {
		if got := s.String(); got != want {
			t.Errorf("State(%d).String() = %q, want %q", s, got, want)
		}
	}
}

func TestIsActive(t *testing.T) {
	active := map[State]bool{TCPEstablished: true, TCPSynSent: true, TCPSynRecv: true, TCPSynAck: true}
	for s := State(0); s < 255; s++ {
		if got := IsActive(s); got != active[s] {
			t.Errorf("IsActive(%v) = %v", s, got)
		}
	}
}

func TestTimeout(t *testing.T) {
	var def Timeouts
	for s, want := range map[State]time.Duration{
		StateNone: 2 * time.Second, TCPEstablished: 15 * time.Minute, TCPSynSent: 2 * time.Minute,
		TCPSynRecv: time.Minute, TCPFinWait: 2 * time.Minute, TCPTimeWait: 2 * time.Minute,
		TCPClose: 10 * time.Second, TCPCloseWait: time.Minute, TCPLastAck: 30 * time.Second,
		TCPListen: 2 * time.Minute, TCPSynAck: 2 * time.Minute, UDP: 5 * time.Minute, 99: 2 * time.Second,
	} {
		if got := def.Timeout(s); got != want {
			t.Errorf("default Timeout(%v) = %v, want %v", s, got, want)
		}
	}
	set := Timeouts{TCP: time.Hour, TCPFin: 7 * time.Second, UDP: 3 * time.Second}
	for s, want := range map[State]time.Duration{
		TCPEstablished: time.Hour, TCPFinWait: 7 * time.Second, UDP: 3 * time.Second,
		TCPClose: 10 * time.Second, TCPSynRecv: time.Minute,
	} {
		if got := set.Timeout(s); got != want {
			t.Errorf("--set Timeout(%v) = %v, want %v", s, got, want)
		}
	}
}

// TestTransitionSequences walks connections through the IPVS TCP state
// table (tcp_states in net/netfilter/ipvs/ip_vs_proto_tcp.c).
func TestTransitionSequences(t *testing.T) {
	type step struct {
		dir   Direction
		flags uint8
		want  State
	}
	in, out, only := DirInput, DirOutput, DirInputOnly
	for _, tc := range []struct {
		name  string
		steps []step
	}{
		{"NAT handshake, data, client closes first", []step{
			{in, fSYN, TCPSynRecv},
			{out, fSYN | fACK, TCPSynRecv},
			{in, fACK, TCPEstablished},
			{in, fACK, TCPEstablished},
			{out, fACK, TCPEstablished},
			{in, fFIN | fACK, TCPCloseWait},
			{out, fACK, TCPCloseWait},
			{out, fFIN | fACK, TCPTimeWait},
			{in, fACK, TCPTimeWait},
		}},
		{"NAT, real closes first", []step{
			{in, fSYN, TCPSynRecv},
			{out, fSYN | fACK, TCPSynRecv},
			{in, fACK, TCPEstablished},
			{out, fFIN | fACK, TCPFinWait},
			{in, fACK, TCPFinWait},
			{in, fFIN | fACK, TCPTimeWait},
		}},
		{"DR handshake and close, client side only", []step{
			{only, fSYN, TCPSynRecv},
			{only, fACK, TCPEstablished},
			{only, fACK | fFIN, TCPFinWait},
			{only, fACK, TCPFinWait},
			{only, fRST, TCPClose},
		}},
		{"SYN_RECV ignores an RST (INPUT)", []step{
			{in, fSYN, TCPSynRecv},
			{in, fRST, TCPSynRecv},
			{out, fRST, TCPClose},
		}},
		{"RST beats SYN, SYN beats FIN, FIN beats ACK", []step{
			{in, fSYN | fRST, TCPClose},
			{in, fSYN | fFIN, TCPSynRecv},
			{in, fACK, TCPEstablished},
			{in, fFIN | fACK, TCPCloseWait},
			{in, fSYN | fFIN | fACK, TCPSynRecv},
		}},
		{"no flags closes", []step{
			{in, fSYN, TCPSynRecv},
			{in, 0x08 /* PSH */, TCPClose},
		}},
		{"mid-stream ACK (synced or lost state) establishes", []step{
			{in, fACK, TCPEstablished},
		}},
		{"real opens: SYN_SENT, the client's SYN-ACK establishes", []step{
			{out, fSYN, TCPSynSent},
			{in, fSYN | fACK, TCPEstablished},
			{out, fACK, TCPEstablished},
		}},
		{"SYN_SENT ignores OUTPUT ACK and RST, not INPUT RST", []step{
			{out, fSYN, TCPSynSent},
			{out, fACK, TCPSynSent},
			{out, fRST, TCPSynSent},
			{in, fRST, TCPClose},
		}},
		{"ESTABLISHED, real FINs, then a new SYN from the real", []step{
			{out, fSYN, TCPSynSent},
			{in, fSYN, TCPEstablished},
			{out, fFIN, TCPFinWait},
			{out, fSYN, TCPSynSent},
		}},
		{"TIME_WAIT is left by a new SYN", []step{
			{in, fSYN, TCPSynRecv},
			{in, fFIN, TCPTimeWait},
			{in, fACK, TCPTimeWait},
			{in, fSYN, TCPSynRecv},
		}},
		{"invalid direction changes nothing", []step{
			{in, fSYN, TCPSynRecv},
			{0, fACK, TCPSynRecv},
			{4, fRST, TCPSynRecv},
		}},
	} {
		e := Entry4{Proto: protoTCP}
		for i, st := range tc.steps {
			before := e.State
			if old := e.Transition(st.dir, st.flags); old != before {
				t.Errorf("%s: step %d returned old %v, was %v", tc.name, i, old, before)
			}
			if e.State != st.want {
				t.Errorf("%s: step %d (dir %d flags %#x) from %v = %v, want %v",
					tc.name, i, st.dir, st.flags, before, e.State, st.want)
				break
			}
		}
	}
}

// TestTransitionCells checks single cells of tcp_states, one per line of
// the kernel table and then some.
func TestTransitionCells(t *testing.T) {
	for _, c := range []struct {
		from  State
		dir   Direction
		flags uint8
		want  State
	}{
		{StateNone, DirInput, fSYN, TCPSynRecv},
		{StateNone, DirInput, fFIN, TCPClose},
		{StateNone, DirInput, fACK, TCPEstablished},
		{StateNone, DirInput, fRST, TCPClose},
		{StateNone, DirOutput, fSYN, TCPSynSent},
		{StateNone, DirOutput, fFIN, TCPTimeWait},
		{StateNone, DirOutput, fACK, TCPEstablished},
		{StateNone, DirOutput, fRST, TCPClose},
		{StateNone, DirInputOnly, fSYN, TCPSynRecv},
		{StateNone, DirInputOnly, fFIN, TCPClose},
		{StateNone, DirInputOnly, fACK, TCPEstablished},
		{StateNone, DirInputOnly, fRST, TCPClose},
		{TCPEstablished, DirInput, fFIN, TCPCloseWait},
		{TCPEstablished, DirInputOnly, fFIN, TCPFinWait},
		{TCPEstablished, DirOutput, fFIN, TCPFinWait},
		{TCPEstablished, DirInput, fSYN, TCPEstablished},
		{TCPLastAck, DirInput, fACK, TCPClose},
		{TCPLastAck, DirOutput, fACK, TCPLastAck},
		{TCPLastAck, DirInput, fRST, TCPLastAck},
		{TCPListen, DirOutput, fACK, TCPEstablished},
		{TCPListen, DirInput, fSYN, TCPSynRecv},
		{TCPListen, DirOutput, fSYN, TCPListen},
		{TCPSynAck, DirInput, fRST, TCPSynRecv},
		{TCPSynAck, DirInputOnly, fRST, TCPClose},
		{TCPSynAck, DirOutput, fSYN, TCPSynRecv},
		{TCPCloseWait, DirOutput, fFIN, TCPTimeWait},
		{TCPTimeWait, DirOutput, fRST, TCPTimeWait},
		{TCPClose, DirInput, fACK, TCPClose},
		{TCPClose, DirOutput, fSYN, TCPSynSent},
		{State(42), DirInput, fACK, TCPClose},
	} {
		e := Entry4{Proto: protoTCP, State: c.from}
		e.Transition(c.dir, c.flags)
		if e.State != c.want {
			t.Errorf("%v dir %d flags %#x -> %v, want %v", c.from, c.dir, c.flags, e.State, c.want)
		}
	}
}

func TestTransitionUDP(t *testing.T) {
	e := Entry4{Proto: protoUDP}
	if old := e.Transition(DirInput, 0); old != StateNone || e.State != UDP {
		t.Errorf("new UDP entry: old %v, now %v", old, e.State)
	}
	for _, f := range []uint8{0, fSYN, fRST, fFIN | fACK} {
		for _, d := range []Direction{DirInput, DirOutput, DirInputOnly} {
			if e.Transition(d, f); e.State != UDP {
				t.Fatalf("UDP entry moved to %v", e.State)
			}
		}
	}
	e = Entry4{State: UDP}
	if e.Transition(DirInput, fRST); e.State != UDP {
		t.Errorf("State UDP, Proto 0 moved to %v", e.State)
	}
}
