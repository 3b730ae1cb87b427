package connsync

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"net/netip"
	"slices"
	"strconv"
	"time"
)

// Message header, struct ip_vs_sync_mesg (version 1), 8 bytes, all
// multi-byte fields big-endian:
//
//	 0                   1                   2                   3
//	 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|   reserved=0  |    syncid     |             size              |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|   nr_conns    |  version=1    |            spare=0            |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|              nr_conns connection records follow               |
//
// reserved sits where a version 0 header has nr_conns, so that version 0
// receivers see an empty message and drop it. size counts the whole
// datagram, header included; the kernel drops a datagram whose length
// differs from it.
const (
	hdrReserved = 0 // __u8 reserved, must be zero
	hdrSyncID   = 1 // __u8 syncid
	hdrSize     = 2 // __be16 size
	hdrNrConns  = 4 // __u8 nr_conns
	hdrVersion  = 5 // __s8 version, SYNC_PROTO_VER
	hdrSpare    = 6 // __u16 spare, must be zero

	// HeaderLen is sizeof(struct ip_vs_sync_mesg).
	HeaderLen = 8
)

// Connection record, struct ip_vs_sync_v4 ("Type 0"), 36 bytes followed by
// optional parameters, the whole padded with zeros to a 4-byte boundary
// before the next record (the padding is not counted in the record's size
// but is counted in the message's size):
//
//	 0                   1                   2                   3
//	 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|     type      |   protocol    | ver=0 |         size          |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|                             flags                             |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|             state             |             cport             |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|             vport             |             dport             |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|                            fwmark                             |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|                       timeout (seconds)                       |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|                  caddr (client address)                       |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|                  vaddr (virtual address)                      |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|                  daddr (real server address)                  |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|  param type   |  param len    |  param data ...  (optional)   |
//
// type is 0 for IPv4; bit 0 (STYPE_F_INET6) marks struct ip_vs_sync_v6,
// the same record with 16-byte addresses (below). The kernel treats any
// other non-zero type as an error. ver_size holds the record version (0) in its top 4 bits
// (SVER_SHIFT 12) and the record size, header and parameters but not
// padding, in its low 12 bits (SVER_MASK 0x0fff).
const (
	recType     = 0  // __u8 type
	recProtocol = 1  // __u8 protocol
	recVerSize  = 2  // __be16 ver_size
	recFlags    = 4  // __be32 flags
	recState    = 8  // __be16 state
	recCport    = 10 // __be16 cport
	recVport    = 12 // __be16 vport
	recDport    = 14 // __be16 dport
	recFwmark   = 16 // __be32 fwmark
	recTimeout  = 20 // __be32 timeout, seconds (cp->timeout / HZ)
	recCaddr    = 24 // __be32 caddr
	recVaddr    = 28 // __be32 vaddr
	recDaddr    = 32 // __be32 daddr

	// ConnLen is sizeof(struct ip_vs_sync_v4), a record without parameters.
	ConnLen = 36
)

// Connection record of an IPv6 connection, struct ip_vs_sync_v6 ("Type
// 2" in ip_vs_sync.c's comment; type = STYPE_F_INET6 on the wire), 72
// bytes followed by optional parameters: the first 24 bytes are those of
// struct ip_vs_sync_v4, then the three addresses as struct in6_addr:
//
//	 0                   1                   2                   3
//	 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|  type=1       |   protocol    | ver=0 |         size          |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|     flags, state, cport, vport, dport, fwmark, timeout        |
//	|                 (20 bytes, as in the IPv4 record)             |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|                  caddr (client address, 16 bytes)             |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|                  vaddr (virtual address, 16 bytes)            |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|                  daddr (real server address, 16 bytes)        |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|  param type   |  param len    |  param data ...  (optional)   |
const (
	recCaddr6 = 24 // struct in6_addr caddr
	recVaddr6 = 40 // struct in6_addr vaddr
	recDaddr6 = 56 // struct in6_addr daddr

	// ConnLen6 is sizeof(struct ip_vs_sync_v6), a record without
	// parameters.
	ConnLen6 = 72
)

// Protocol constants from ip_vs_sync.c.
const (
	// ProtoVersion is SYNC_PROTO_VER, the message header's version.
	ProtoVersion = 1

	typeInet6  = 1 << 0 // STYPE_F_INET6
	verShift   = 12     // SVER_SHIFT
	recSizeMax = 0x0fff // SVER_MASK

	// MaxConns is the most records a message can count in nr_conns (__u8).
	MaxConns = math.MaxUint8
	// MaxSize is the largest message the 16-bit size field can describe.
	MaxSize = math.MaxUint16

	// DefaultPort is IP_VS_SYNC_PORT; sync thread n uses DefaultPort+n.
	DefaultPort = 8848
)

// DefaultGroup is IP_VS_SYNC_GROUP, 224.0.0.81.
var DefaultGroup = netip.AddrFrom4([4]byte{224, 0, 0, 81})

// Optional parameter types (IPVS_OPT_*). A parameter is a type byte, a
// length byte (the data length, never 0) and the data; parameters follow
// each other unpadded. The kernel drops a record carrying an unknown type
// unless OptFlagParam is set in it, which marks the parameter as one a
// receiver may ignore.
const (
	OptSeqData   = 1      // IPVS_OPT_SEQ_DATA: struct ip_vs_sync_conn_options, in_seq and out_seq, 24 bytes
	OptPEData    = 2      // IPVS_OPT_PE_DATA: persistence-engine data, e.g. a SIP Call-ID
	OptPEName    = 3      // IPVS_OPT_PE_NAME: persistence-engine name, e.g. "sip"
	OptParam     = 7      // IPVS_OPT_PARAM
	OptFlagParam = 1 << 6 // IPVS_OPT_F_PARAM, (1 << (IPVS_OPT_PARAM-1)): "may be ignored"

	// OptLocal is gvs's own parameter: a FULLNAT connection's local
	// address (4 bytes in an IPv4 record, 16 in an IPv6 one) and port (2,
	// big-endian), marked OptFlagParam so that a kernel backup skips it
	// and keeps the record. With its 6 bytes of data an IPv4 record
	// without OptSeqData stays a multiple of 4 bytes long; one with both
	// is padded.
	OptLocal = OptFlagParam | 17

	// paramLen is the length of an IPv4 OptLocal: type, length, 6 bytes;
	// paramLen6 of an IPv6 one: type, length, 18 bytes.
	paramLen  = 2 + 6
	paramLen6 = 2 + 18

	// OptTSOffset is gvs's parameter of a FULLNAT TCP connection whose
	// sequence numbers and timestamps the director translates: the
	// timestamp offset added to the client's TSval (4 bytes, big-endian).
	// IPVS has no field for it; the connection's sequence offset goes in
	// OptSeqData as in_seq. Marked OptFlagParam, so a kernel backup skips
	// it.
	OptTSOffset = OptFlagParam | 18

	// tsParamLen is the length of OptTSOffset: type, length, 4 bytes.
	tsParamLen = 2 + 4

	// OptProxyHeader is gvs's parameter of a connection whose real got a
	// PROXY protocol header from the director: its data, 1 byte, is 1
	// (other values are reserved). The header's length is in the
	// connection's in_seq delta already; the parameter tells a backup not
	// to send the header again. Marked OptFlagParam, so a kernel backup
	// skips it.
	OptProxyHeader = OptFlagParam | 19

	// proxyParamLen is the length of OptProxyHeader: type, length, 1 byte.
	proxyParamLen = 2 + 1
)

// The OptSeqData parameter: type, length 24, then struct
// ip_vs_sync_conn_options, two struct ip_vs_seq (in_seq, then out_seq) of
// three big-endian 32-bit words each (init_seq, delta, previous_delta):
//
//	 0                   1                   2                   3
//	 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	| type=1 (SEQ)  |   len=24      |  in_seq.init_seq ...          |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|  ... in_seq.init_seq          |  in_seq.delta ...             |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	   and so on: in_seq.previous_delta, out_seq.init_seq,
//	   out_seq.delta, out_seq.previous_delta
//
// The kernel writes it first among a record's parameters (ip_vs_sync_conn)
// whenever the connection has FlagSeqMask bits, and a receiver refuses the
// message unless its length is exactly 24 (ip_vs_proc_seqopt).
const (
	seqDataLen  = 24 // sizeof(struct ip_vs_sync_conn_options)
	seqParamLen = 2 + seqDataLen
)

// Seq is struct ip_vs_seq, one direction's sequence-number adjustment:
// a TCP segment's sequence number after InitSeq gets Delta added, one at
// or before it PreviousDelta (and acknowledgment numbers of the other
// direction have them taken off). In is for the client's segments,
// FlagInSeq; Out for the real's, FlagOutSeq.
type Seq struct {
	InitSeq, Delta, PreviousDelta uint32
}

// Connection flags, IP_VS_CONN_F_* from include/uapi/linux/ip_vs.h. The
// forwarding method is the low three bits (FlagFwdMask). The master sends
// cp->flags without FlagHashed; a backup keeps only the bits in
// IP_VS_CONN_F_BACKUP_MASK and adds FlagSync.
const (
	FlagFwdMask   = 0x0007 // IP_VS_CONN_F_FWD_MASK
	FlagMasq      = 0x0000 // IP_VS_CONN_F_MASQ: NAT
	FlagLocalNode = 0x0001 // IP_VS_CONN_F_LOCALNODE
	FlagTunnel    = 0x0002 // IP_VS_CONN_F_TUNNEL: IPIP
	FlagDRoute    = 0x0003 // IP_VS_CONN_F_DROUTE: direct routing
	FlagBypass    = 0x0004 // IP_VS_CONN_F_BYPASS: cache bypass
	FlagSync      = 0x0020 // IP_VS_CONN_F_SYNC: entry created by sync
	FlagHashed    = 0x0040 // IP_VS_CONN_F_HASHED
	FlagNoOutput  = 0x0080 // IP_VS_CONN_F_NOOUTPUT
	FlagInactive  = 0x0100 // IP_VS_CONN_F_INACTIVE: not established
	FlagOutSeq    = 0x0200 // IP_VS_CONN_F_OUT_SEQ
	FlagInSeq     = 0x0400 // IP_VS_CONN_F_IN_SEQ
	FlagSeqMask   = 0x0600 // IP_VS_CONN_F_SEQ_MASK
	FlagNoCport   = 0x0800 // IP_VS_CONN_F_NO_CPORT: client port not known yet
	FlagTemplate  = 0x1000 // IP_VS_CONN_F_TEMPLATE: persistence template
	FlagOnePacket = 0x2000 // IP_VS_CONN_F_ONE_PACKET: never synced

	// FlagBackupMask is IP_VS_CONN_F_BACKUP_MASK, the bits a backup keeps.
	FlagBackupMask = FlagFwdMask | FlagNoOutput | FlagInactive | FlagSeqMask | FlagNoCport | FlagTemplate
)

// TCP connection states, enum IP_VS_TCP_S_* in include/net/ip_vs.h, in the
// order of the TCP state table; a backup drops a TCP record whose state is
// TCPStateLast or above. UDP has the single state UDPStateNormal.
const (
	TCPStateNone        = 0  // IP_VS_TCP_S_NONE
	TCPStateEstablished = 1  // IP_VS_TCP_S_ESTABLISHED
	TCPStateSynSent     = 2  // IP_VS_TCP_S_SYN_SENT
	TCPStateSynRecv     = 3  // IP_VS_TCP_S_SYN_RECV
	TCPStateFinWait     = 4  // IP_VS_TCP_S_FIN_WAIT
	TCPStateTimeWait    = 5  // IP_VS_TCP_S_TIME_WAIT
	TCPStateClose       = 6  // IP_VS_TCP_S_CLOSE
	TCPStateCloseWait   = 7  // IP_VS_TCP_S_CLOSE_WAIT
	TCPStateLastAck     = 8  // IP_VS_TCP_S_LAST_ACK
	TCPStateListen      = 9  // IP_VS_TCP_S_LISTEN
	TCPStateSynAck      = 10 // IP_VS_TCP_S_SYNACK
	TCPStateLast        = 11 // IP_VS_TCP_S_LAST, the state count

	UDPStateNormal = 0 // IP_VS_UDP_S_NORMAL
)

// Conn is one synced connection or persistence template: the content of a
// struct ip_vs_sync_v4 record when its addresses are IPv4, of a struct
// ip_vs_sync_v6 one when they are IPv6 (all of one family).
type Conn struct {
	Protocol uint8          // protocol: IPPROTO_TCP 6, IPPROTO_UDP 17, IPPROTO_SCTP 132; not checked here
	Flags    uint32         // flags: Flag* (IP_VS_CONN_F_*), forwarding method in FlagFwdMask
	State    uint16         // state: TCPState* for TCP, UDPStateNormal for UDP; not checked here
	Client   netip.AddrPort // caddr:cport
	VIP      netip.AddrPort // vaddr:vport
	Real     netip.AddrPort // daddr:dport
	FWMark   uint32         // fwmark
	Timeout  time.Duration  // timeout, whole seconds on the wire; 0 makes a backup use its own timeout for the state

	// Local is a FULLNAT connection's local address and port, a gvs
	// extension sent as the optional parameter OptLocal; the zero
	// AddrPort is not sent.
	Local netip.AddrPort

	// InSeq and OutSeq are the sequence-number adjustments of a
	// connection with FlagSeqMask bits in Flags, sent (both, as the
	// kernel does) in the optional parameter OptSeqData; without those
	// flags they are neither sent nor decoded.
	InSeq, OutSeq Seq

	// TSOffset is the timestamp offset of a FULLNAT connection whose
	// numbers the director translates, a gvs extension sent as the
	// optional parameter OptTSOffset when HasTSOffset is set.
	TSOffset    uint32
	HasTSOffset bool

	// ProxyHeader says the director sent the connection's real a PROXY
	// protocol header, a gvs extension sent as the optional parameter
	// OptProxyHeader.
	ProxyHeader bool
}

// hasSeq reports whether c's record carries OptSeqData.
func (c *Conn) hasSeq() bool { return c.Flags&FlagSeqMask != 0 }

// Is6 reports whether c is an IPv6 connection, sent as struct
// ip_vs_sync_v6: its client address is IPv6 (Marshal checks that the
// others are too).
func (c *Conn) Is6() bool { return c.Client.Addr().Is6() }

// base returns the length of c's record without parameters.
func (c *Conn) base() int {
	if c.Is6() {
		return ConnLen6
	}
	return ConnLen
}

// size returns the value of c's record's size field: 36 bytes (72 for
// IPv6), 26 more with OptSeqData, 8 more with a Local address (20 for
// IPv6), 6 more with a timestamp offset and 3 more with a PROXY header.
func (c *Conn) size() int {
	n := c.base()
	if c.hasSeq() {
		n += seqParamLen
	}
	if c.Local.IsValid() {
		n += paramLen
		if c.Is6() {
			n += paramLen6 - paramLen
		}
	}
	if c.HasTSOffset {
		n += tsParamLen
	}
	if c.ProxyHeader {
		n += proxyParamLen
	}
	return n
}

// Len returns the encoded length of c's record: its size padded with
// zeros to a multiple of 4 (36 bytes without parameters, 44 with a Local
// address, 64 with OptSeqData, 72 with both, 76 with a timestamp offset
// too; 4 more with a PROXY header; an IPv6 record 72 bytes without
// parameters).
func (c *Conn) Len() int { return (c.size() + 3) &^ 3 }

// Message is one sync datagram.
type Message struct {
	SyncID uint8 // syncid: backups with a non-zero sync ID ignore other IDs
	Conns  []Conn
}

// Marshal errors.
var (
	ErrTooManyConns = errors.New("connsync: more than 255 connections in a message")
	ErrTooBig       = errors.New("connsync: message larger than its 16-bit size field")
	ErrFamily       = errors.New("connsync: addresses not all IPv4 or all IPv6")
	ErrTimeout      = errors.New("connsync: timeout negative or over 2^32-1 seconds")
	ErrMaxSize      = errors.New("connsync: maxSize too small for one connection")
)

// Size returns the encoded length of m: the header and each record's
// [Conn.Len].
func (m *Message) Size() int {
	n := HeaderLen
	for i := range m.Conns {
		n += m.Conns[i].Len()
	}
	return n
}

// Marshal appends the encoded message to b and returns the extended slice.
// It does not allocate when b has room for [Message.Size] more bytes. It
// refuses more than [MaxConns] connections, a message over [MaxSize], a
// connection whose addresses are not all IPv4 or all IPv6 (an IPv6 one
// goes as struct ip_vs_sync_v6) and a negative or too large timeout, and then returns b
// unchanged. Sub-second parts of a timeout are truncated, as the kernel's
// cp->timeout / HZ does. A connection with FlagSeqMask bits gets
// OptSeqData (InSeq, OutSeq), one with a Local address gvs's OptLocal
// after it, one with HasTSOffset gvs's OptTSOffset, and one with a
// ProxyHeader gvs's OptProxyHeader last; a record is padded to 4 bytes.
func (m *Message) Marshal(b []byte) ([]byte, error) {
	if len(m.Conns) > MaxConns {
		return b, ErrTooManyConns
	}
	size := m.Size()
	if size > MaxSize {
		return b, ErrTooBig
	}
	for i := range m.Conns {
		if err := m.Conns[i].check(); err != nil {
			return b, fmt.Errorf("connsync: marshal connection %d: %w", i, err)
		}
	}
	start := len(b)
	b = slices.Grow(b, size)[:start+size]
	h := b[start:]
	h[hdrReserved] = 0
	h[hdrSyncID] = m.SyncID
	binary.BigEndian.PutUint16(h[hdrSize:], uint16(size))
	h[hdrNrConns] = uint8(len(m.Conns))
	h[hdrVersion] = ProtoVersion
	binary.BigEndian.PutUint16(h[hdrSpare:], 0)
	r := h[HeaderLen:]
	for i := range m.Conns {
		n := m.Conns[i].Len()
		m.Conns[i].put(r[:n])
		r = r[n:]
	}
	return b, nil
}

func (c *Conn) check() error {
	is6 := c.Is6()
	for _, ap := range [...]netip.AddrPort{c.Client, c.VIP, c.Real} {
		if a := ap.Addr(); !a.IsValid() || a.Is6() != is6 {
			return fmt.Errorf("%w: %v, %v, %v", ErrFamily, c.Client, c.VIP, c.Real)
		}
	}
	if c.Local.IsValid() && c.Local.Addr().Is6() != is6 {
		return fmt.Errorf("%w: local %v", ErrFamily, c.Local)
	}
	if c.Timeout < 0 || c.Timeout/time.Second > math.MaxUint32 {
		return fmt.Errorf("%w: %v", ErrTimeout, c.Timeout)
	}
	return nil
}

// put writes c's record, and its padding, into r, which is c.Len() long.
func (c *Conn) put(r []byte) {
	r[recType] = 0
	if c.Is6() {
		r[recType] = typeInet6
	}
	r[recProtocol] = c.Protocol
	binary.BigEndian.PutUint16(r[recVerSize:], 0<<verShift|uint16(c.size()))
	binary.BigEndian.PutUint32(r[recFlags:], c.Flags)
	binary.BigEndian.PutUint16(r[recState:], c.State)
	binary.BigEndian.PutUint16(r[recCport:], c.Client.Port())
	binary.BigEndian.PutUint16(r[recVport:], c.VIP.Port())
	binary.BigEndian.PutUint16(r[recDport:], c.Real.Port())
	binary.BigEndian.PutUint32(r[recFwmark:], c.FWMark)
	binary.BigEndian.PutUint32(r[recTimeout:], uint32(c.Timeout/time.Second))
	if c.Is6() {
		a := c.Client.Addr().As16()
		copy(r[recCaddr6:], a[:])
		a = c.VIP.Addr().As16()
		copy(r[recVaddr6:], a[:])
		a = c.Real.Addr().As16()
		copy(r[recDaddr6:], a[:])
	} else {
		a := c.Client.Addr().As4()
		copy(r[recCaddr:], a[:])
		a = c.VIP.Addr().As4()
		copy(r[recVaddr:], a[:])
		a = c.Real.Addr().As4()
		copy(r[recDaddr:], a[:])
	}
	p := r[c.base():]
	if c.hasSeq() {
		p[0], p[1] = OptSeqData, seqDataLen
		for i, v := range [6]uint32{c.InSeq.InitSeq, c.InSeq.Delta, c.InSeq.PreviousDelta,
			c.OutSeq.InitSeq, c.OutSeq.Delta, c.OutSeq.PreviousDelta} {
			binary.BigEndian.PutUint32(p[2+4*i:], v)
		}
		p = p[seqParamLen:]
	}
	if c.Local.IsValid() && c.Is6() {
		p[0], p[1] = OptLocal, paramLen6-2
		a := c.Local.Addr().As16()
		copy(p[2:18], a[:])
		binary.BigEndian.PutUint16(p[18:20], c.Local.Port())
		p = p[paramLen6:]
	} else if c.Local.IsValid() {
		p[0], p[1] = OptLocal, paramLen-2
		a := c.Local.Addr().As4()
		copy(p[2:6], a[:])
		binary.BigEndian.PutUint16(p[6:8], c.Local.Port())
		p = p[paramLen:]
	}
	if c.HasTSOffset {
		p[0], p[1] = OptTSOffset, 4
		binary.BigEndian.PutUint32(p[2:6], c.TSOffset)
		p = p[tsParamLen:]
	}
	if c.ProxyHeader {
		p[0], p[1], p[2] = OptProxyHeader, 1, 1
		p = p[proxyParamLen:]
	}
	clear(p) // padding
}

// Batch encodes conns into as few messages as it can, in order, each at
// most maxSize bytes (for example the interface MTU minus the IP and UDP
// headers, or the sync daemon's sync_maxlen) and at most MaxConns
// records. A record with a parameter ends its message: Wireshark's IPVS
// dissector steps over records by their fixed length, not their size
// field, so it decodes every record before the first one with parameters,
// that one, and nothing after it. It allocates one backing array for all
// messages. No connections give no messages. It fails with [ErrMaxSize]
// when maxSize cannot hold a header and one of the records, and on the
// first connection Marshal would refuse.
func Batch(conns []Conn, syncID uint8, maxSize int) ([][]byte, error) {
	maxSize = min(maxSize, MaxSize)
	// Split first, so that the messages can share one exact allocation.
	var counts []int
	total := 0
	for i := 0; i < len(conns); {
		k, size := 0, HeaderLen
		for i+k < len(conns) && k < MaxConns && size+conns[i+k].Len() <= maxSize {
			size += conns[i+k].Len()
			k++
			if c := &conns[i+k-1]; c.Len() > c.base() {
				break // see above: the last record Wireshark can place
			}
		}
		if k == 0 {
			return nil, fmt.Errorf("%w: %d < %d", ErrMaxSize, maxSize, HeaderLen+conns[i].Len())
		}
		counts = append(counts, k)
		total += size
		i += k
	}
	if len(conns) == 0 {
		if maxSize < HeaderLen+ConnLen {
			return nil, fmt.Errorf("%w: %d < %d", ErrMaxSize, maxSize, HeaderLen+ConnLen)
		}
		return nil, nil
	}
	buf := make([]byte, 0, total)
	out := make([][]byte, 0, len(counts))
	for _, k := range counts {
		m := Message{SyncID: syncID, Conns: conns[:k]}
		start := len(buf)
		var err error
		if buf, err = m.Marshal(buf); err != nil {
			return nil, fmt.Errorf("connsync: batch message %d: %w", len(out), err)
		}
		out = append(out, buf[start:len(buf):len(buf)])
		conns = conns[k:]
	}
	return out, nil
}

// Reason says why a datagram failed to decode; it is an error itself, and
// its values index a counter array of ReasonCount entries. The zero value
// is not a reason.
type Reason uint8

// Decode failures, in the order Decode checks them.
const (
	_                Reason = iota
	ErrShort                // shorter than the header, or a record header runs past the end
	ErrReserved             // reserved byte not 0: a version 0 message (its nr_conns), not handled
	ErrVersion              // version not SYNC_PROTO_VER 1
	ErrSpare                // spare not 0; the kernel would fall back to version 0
	ErrSize                 // size field differs from the datagram length
	ErrRecordVersion        // record version (top 4 bits of ver_size) not 0
	ErrRecordSize           // record size below 36 (72 for IPv6) or past the end of the message
	ErrType                 // type neither 0 nor STYPE_F_INET6
	ErrParam                // optional parameter truncated, zero-length or past the record
	ErrTrailing             // bytes left after nr_conns records and their padding
	ReasonCount      = int(iota)
)

var reasonText = [...]string{
	ErrShort:         "truncated",
	ErrReserved:      "reserved byte not zero (version 0 message?)",
	ErrVersion:       "version not 1",
	ErrSpare:         "spare not zero",
	ErrSize:          "size field differs from datagram length",
	ErrRecordVersion: "record version not 0",
	ErrRecordSize:    "bad record size",
	ErrType:          "unknown record type",
	ErrParam:         "malformed optional parameter",
	ErrTrailing:      "trailing bytes after the last record",
}

func (r Reason) Error() string {
	if int(r) < len(reasonText) && reasonText[r] != "" {
		return reasonText[r]
	}
	return "reason " + strconv.Itoa(int(r))
}

// ParseError is the error of [Parse] and [Message.Decode]. errors.Is
// matches it against its [Reason].
type ParseError struct {
	Reason Reason
	Record int // index of the bad record, -1 for the header
	Offset int // byte offset of the header or record at fault
}

func (e *ParseError) Error() string {
	if e.Record < 0 {
		return "connsync: header: " + e.Reason.Error()
	}
	return "connsync: record " + strconv.Itoa(e.Record) + " at offset " + strconv.Itoa(e.Offset) + ": " + e.Reason.Error()
}

func (e *ParseError) Unwrap() error { return e.Reason }

// Parse decodes and validates one datagram; it allocates the connection
// slice. See [Message.Decode] for the checks. On error it returns the zero
// Message and a *[ParseError].
func Parse(b []byte) (Message, error) {
	var m Message
	if err := m.Decode(b); err != nil {
		return Message{}, err
	}
	return m, nil
}

// Decode decodes one datagram into m, reusing m.Conns' array: it does not
// allocate once that array is large enough (255 holds any message), except
// for the *[ParseError] it returns on failure, after which m holds the
// records before the bad one. It checks what the kernel's
// ip_vs_process_message checks, and also refuses trailing bytes: header
// length and fields (reserved 0, version 1, spare 0, size = len(b)); for
// each record, that its header fits, its version is 0, its type is 0
// (struct ip_vs_sync_v4) or STYPE_F_INET6 (struct ip_vs_sync_v6), its size
// is at least that struct's (36 or 72 bytes) and inside the message, and
// that its optional parameters are well-formed type/length pairs inside
// it. gvs's OptLocal is decoded (and must be 6 bytes long, 18 in an IPv6
// record), its
// OptTSOffset (4 bytes long) and its OptProxyHeader (1 byte); OptSeqData must
// be 24 bytes long and appear once, as the kernel requires, and is decoded
// into InSeq and OutSeq when the record's Flags has FlagSeqMask bits (the
// kernel, too, applies it only then); the other parameters are skipped,
// known or not: unlike the kernel, which drops a record with an unknown
// parameter lacking OptFlagParam, Decode keeps the record.
func (m *Message) Decode(b []byte) error {
	m.SyncID = 0
	m.Conns = m.Conns[:0]
	if len(b) < HeaderLen {
		return &ParseError{ErrShort, -1, 0}
	}
	switch {
	case b[hdrReserved] != 0:
		return &ParseError{ErrReserved, -1, 0}
	case b[hdrVersion] != ProtoVersion:
		return &ParseError{ErrVersion, -1, 0}
	case binary.BigEndian.Uint16(b[hdrSpare:]) != 0:
		return &ParseError{ErrSpare, -1, 0}
	case int(binary.BigEndian.Uint16(b[hdrSize:])) != len(b):
		return &ParseError{ErrSize, -1, 0}
	}
	m.SyncID = b[hdrSyncID]
	n := int(b[hdrNrConns])
	off := HeaderLen
	for i := range n {
		if off+ConnLen > len(b) {
			return &ParseError{ErrShort, i, off}
		}
		r := b[off:]
		vs := binary.BigEndian.Uint16(r[recVerSize:])
		size := int(vs & recSizeMax)
		is6 := r[recType]&typeInet6 != 0
		base := ConnLen
		if is6 {
			base = ConnLen6
		}
		switch {
		case vs>>verShift != 0:
			return &ParseError{ErrRecordVersion, i, off}
		case r[recType]&^typeInet6 != 0:
			return &ParseError{ErrType, i, off}
		case size < base || off+size > len(b):
			return &ParseError{ErrRecordSize, i, off}
		}
		var local netip.AddrPort
		var seq [6]uint32
		hasSeq, hasTS := false, false
		var tsOff uint32
		proxy := false
		for p := base; p < size; {
			if p+2 > size {
				return &ParseError{ErrParam, i, off}
			}
			plen := int(r[p+1])
			if plen == 0 || p+2+plen > size {
				return &ParseError{ErrParam, i, off}
			}
			switch r[p] {
			case OptLocal:
				switch {
				case !is6 && plen == paramLen-2:
					local = addrPort(r[p+2:], r[p+6:])
				case is6 && plen == paramLen6-2:
					local = addrPort6(r[p+2:], r[p+18:])
				default:
					return &ParseError{ErrParam, i, off}
				}
			case OptTSOffset:
				if plen != 4 {
					return &ParseError{ErrParam, i, off}
				}
				hasTS, tsOff = true, binary.BigEndian.Uint32(r[p+2:])
			case OptProxyHeader:
				if plen != 1 {
					return &ParseError{ErrParam, i, off}
				}
				proxy = true
			case OptSeqData:
				if plen != seqDataLen || hasSeq {
					return &ParseError{ErrParam, i, off}
				}
				hasSeq = true
				for j := range seq {
					seq[j] = binary.BigEndian.Uint32(r[p+2+4*j:])
				}
			}
			p += 2 + plen
		}
		flags := binary.BigEndian.Uint32(r[recFlags:])
		if flags&FlagSeqMask == 0 {
			seq = [6]uint32{}
		}
		var client, vip, real netip.AddrPort
		if is6 {
			client, vip, real = addrPort6(r[recCaddr6:], r[recCport:]), addrPort6(r[recVaddr6:], r[recVport:]), addrPort6(r[recDaddr6:], r[recDport:])
		} else {
			client, vip, real = addrPort(r[recCaddr:], r[recCport:]), addrPort(r[recVaddr:], r[recVport:]), addrPort(r[recDaddr:], r[recDport:])
		}
		m.Conns = append(m.Conns, Conn{
			Protocol: r[recProtocol],
			Flags:    flags,
			State:    binary.BigEndian.Uint16(r[recState:]),
			Client:   client,
			VIP:      vip,
			Real:     real,
			FWMark:   binary.BigEndian.Uint32(r[recFwmark:]),
			Timeout:  time.Duration(binary.BigEndian.Uint32(r[recTimeout:])) * time.Second,
			Local:    local,
			InSeq:    Seq{seq[0], seq[1], seq[2]},
			OutSeq:   Seq{seq[3], seq[4], seq[5]},

			TSOffset:    tsOff,
			HasTSOffset: hasTS,
			ProxyHeader: proxy,
		})
		off += (size + 3) &^ 3
	}
	if off < len(b) {
		return &ParseError{ErrTrailing, -1, off}
	}
	return nil
}

func addrPort(a, p []byte) netip.AddrPort {
	return netip.AddrPortFrom(netip.AddrFrom4([4]byte(a[:4])), binary.BigEndian.Uint16(p))
}

func addrPort6(a, p []byte) netip.AddrPort {
	return netip.AddrPortFrom(netip.AddrFrom16([16]byte(a[:16])), binary.BigEndian.Uint16(p))
}
