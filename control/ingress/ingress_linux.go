package ingress

import (
	"encoding/binary"
	"errors"
	"fmt"
	"sync"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"github.com/google/nftables/userdata"
	"github.com/gvs-lb/gvs/dataplane/afpacket"
	mdnetlink "github.com/mdlayher/netlink"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// Offsets the rules load (RFC 791 for IPv4, RFC 768 and RFC 9293 for the
// UDP and TCP ports, which sit at the same place in both headers):
//
//	IPv4:  0       4       8   9           12              16
//	       +-------+-------+---+---+-------+---------------+---------------+
//	       |ver len|  ...  |ttl|pro| csum  | source addr   | dest addr     |
//	       +-------+-------+---+---+-------+---------------+---------------+
//	TCP/UDP: 0               2               4
//	       +---------------+---------------+
//	       | source port   | dest port     |
//	       +---------------+---------------+
const (
	ipv4ProtoOff = 9
	ipv4SrcOff   = 12
	ipv4DstOff   = 16
	l4SrcPortOff = 0
	l4DstPortOff = 2
)

// ethTypeIPv4 is the EtherType of IPv4 (IEEE 802.3), as meta protocol
// yields it: network byte order.
var ethTypeIPv4 = []byte{0x08, 0x00}

// The IPv6 header's fields the rules load (RFC 8200 section 3). The
// protocol is the fixed header's Next Header, not the transport protocol
// nft finds behind extension headers (meta l4proto): a frame with
// extension headers then matches no element of these rules; the ones the
// socket filter walks (dataplane/afpacket/filter6.go) have rules of their
// own in the ext6 chain (queueExt6). A fragment header right after the
// fixed header (Next Header 44) names TCP or UDP in its own Next Header at
// 40 (RFC 8200 section 4.5): the fragment rules load that instead.
//
//	IPv6:  0               6   7   8                       24                      40  41
//	       +---------------+---+---+-----------------------+-----------------------+---+---
//	       |  ...          |nxt|hop| source address        | destination address   |nxt| fragment header ...
//	       +---------------+---+---+-----------------------+-----------------------+---+---
const (
	ipv6NextOff     = 6
	ipv6SrcOff      = 8
	ipv6DstOff      = 24
	ipv6FragNextOff = 40
	protoIPv6Frag   = 44
)

// ethTypeIPv6 is the EtherType of IPv6 in network byte order.
var ethTypeIPv6 = []byte{0x86, 0xdd}

// Registers a concatenation is loaded into, the way nft itself does it:
// the first field into the 16-byte NFT_REG_1 and each further field into
// the next 32-bit register, so the key is contiguous from NFT_REG_1.
const (
	regAddr  = unix.NFT_REG_1
	regProto = unix.NFT_REG32_01
	regPort  = unix.NFT_REG32_02
	// An IPv6 address fills the whole 16-byte NFT_REG_1 (NFT_REG32_00
	// to _03); the protocol and port go into the two registers after it.
	regProto6 = unix.NFT_REG32_04
	regPort6  = unix.NFT_REG32_05
)

// elementsPerMessage bounds the elements in one NEWSETELEM message: the
// element list is one netlink attribute, whose length field has 16 bits.
// An element takes 24 bytes, so 1024 of them stay well under 64 KiB.
const elementsPerMessage = 1024

// socketBuffer is the send and receive buffer asked for (SO_SNDBUFFORCE,
// SO_RCVBUFFORCE as root) so a whole transaction fits in one sendmsg, as
// nft does, and its acknowledgements fit on the way back: the default of
// about 200 KiB stops near 8,000 endpoints; 32 MiB is room for over
// 600,000. It is a limit, not an allocation.
const socketBuffer = 32 << 20

// sockOptions makes room for big transactions and asks for capped
// acknowledgements (NETLINK_CAP_ACK): by default every ack echoes the
// whole request, so a batch of element lists would come back in full.
func sockOptions(c *mdnetlink.Conn) error {
	if err := c.SetOption(mdnetlink.CapAcknowledge, true); err != nil {
		return err
	}
	if err := c.SetWriteBuffer(socketBuffer); err != nil {
		return err
	}
	return c.SetReadBuffer(socketBuffer)
}

// Table is the installed netdev table. Its methods may be called from any
// goroutine: it talks to the network namespace Install was called in.
type Table struct {
	mu     sync.Mutex
	ifname string
	nsFD   int // the network namespace of the table; -1 once removed
	conn   *nftables.Conn
	table  *nftables.Table
	chain  *nftables.Chain
	ext6   *nftables.Chain // IPv6 frames with extension headers (ext6Rules)
	vips   *nftables.Set
	nat    *nftables.Set
	vips6  *nftables.Set
	nat6   *nftables.Set
	// base holds what the rules counted before the last Update, which
	// replaces them (and their counters).
	base Counters
}

// Counters are what the table counted since Install.
type Counters struct {
	// Taken are the frames the table kept from the kernel: the drop
	// rules', frames the socket filter hands the dataplane.
	Taken uint64 `json:"taken"`
	// Left are the IPv6 frames to a [VIP]:port or from a NAT [RIP]:port
	// whose extension headers the dataplane does not walk (a fourth
	// header, a type twice, AH, ...): left to the kernel, as promised,
	// and counted here.
	Left uint64 `json:"left_to_kernel"`
}

func (c *Counters) add(o Counters) { c.Taken += o.Taken; c.Left += o.Left }

// Counters reads the table's counters, totalled since Install. The
// packets a rule counts between the last read and an Update that replaces
// it are lost to the total.
func (t *Table) Counters() (Counters, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.nsFD < 0 {
		return Counters{}, errRemoved
	}
	c, err := t.readCounters()
	if err != nil {
		return Counters{}, fmt.Errorf("ingress: counters of table netdev %s: %w", TableName, err)
	}
	c.add(t.base)
	return c, nil
}

// readCounters sums the rules' counters now: a rule with a drop verdict
// counts as taken, one with no verdict (leftRule6's) as left; those that
// accept (the director's own connections) or jump count as neither. t.mu
// is held.
func (t *Table) readCounters() (Counters, error) {
	var c Counters
	for _, ch := range []*nftables.Chain{t.chain, t.ext6} {
		rules, err := t.conn.GetRules(t.table, ch)
		if err != nil {
			return Counters{}, err
		}
		for _, r := range rules {
			var n uint64
			var verdict *expr.Verdict
			for _, e := range r.Exprs {
				switch e := e.(type) {
				case *expr.Counter:
					n += e.Packets
				case *expr.Verdict:
					verdict = e
				}
			}
			switch {
			case verdict == nil:
				c.Left += n
			case verdict.Kind == expr.VerdictDrop:
				c.Taken += n
			}
		}
	}
	return c, nil
}

// Install creates the table for ifname with rules for m in the network
// namespace of the calling thread, first deleting a stale table of the
// same name (left by a crashed gvsd). Everything happens in one netlink
// batch, so the kernel sees either the old table or the new one.
func Install(ifname string, m *afpacket.Match) (*Table, error) {
	wrap := func(err error) error {
		return fmt.Errorf("ingress: install table netdev %s on %s: %w", TableName, ifname, err)
	}
	e, err := compile(m)
	if err != nil {
		return nil, wrap(err)
	}
	if _, err := netlink.LinkByName(ifname); err != nil {
		return nil, wrap(err)
	}
	// Later calls may come from any thread, so hold on to this thread's
	// namespace and make every netlink socket in it.
	fd, err := unix.Open("/proc/thread-self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, wrap(fmt.Errorf("open network namespace: %w", err))
	}
	t, err := install(ifname, fd, e)
	if err != nil {
		unix.Close(fd)
		return nil, wrap(err)
	}
	return t, nil
}

func install(ifname string, nsFD int, e elements) (*Table, error) {
	conn, err := nftables.New(nftables.WithNetNSFd(nsFD), nftables.WithSockOptions(sockOptions))
	if err != nil {
		return nil, err
	}
	t := newTable(ifname, nsFD, conn)

	// Adding a table that exists is not an error, deleting one that does
	// not is: add then delete removes a stale table in either case.
	conn.AddTable(t.table)
	conn.DelTable(t.table)
	conn.AddTable(t.table)
	conn.AddChain(t.chain)
	conn.AddChain(t.ext6)
	for _, s := range []*nftables.Set{t.vips, t.nat, t.vips6, t.nat6} {
		if err := conn.AddSet(s, nil); err != nil {
			return nil, err
		}
	}
	if err := t.queueContents(e); err != nil {
		return nil, err
	}
	if err := conn.Flush(); err != nil {
		return nil, err
	}
	return t, nil
}

func newTable(ifname string, nsFD int, conn *nftables.Conn) *Table {
	table := &nftables.Table{Name: TableName, Family: nftables.TableFamilyNetdev}
	policy := nftables.ChainPolicyAccept
	concat := nftables.MustConcatSetType(nftables.TypeIPAddr, nftables.TypeInetProto, nftables.TypeInetService)
	concat6 := nftables.MustConcatSetType(nftables.TypeIP6Addr, nftables.TypeInetProto, nftables.TypeInetService)
	return &Table{
		ifname: ifname,
		nsFD:   nsFD,
		conn:   conn,
		table:  table,
		chain: &nftables.Chain{
			Name:     chainName,
			Table:    table,
			Type:     nftables.ChainTypeFilter,
			Hooknum:  nftables.ChainHookIngress,
			Priority: nftables.ChainPriorityFilter,
			Policy:   &policy,
			Device:   ifname,
		},
		ext6:  &nftables.Chain{Name: chainExt6, Table: table},
		vips:  &nftables.Set{Table: table, Name: setVIPs, KeyType: concat, Concatenation: true},
		nat:   &nftables.Set{Table: table, Name: setNATReals, KeyType: concat, Concatenation: true},
		vips6: &nftables.Set{Table: table, Name: setVIPs6, KeyType: concat6, Concatenation: true},
		nat6:  &nftables.Set{Table: table, Name: setNATReals6, KeyType: concat6, Concatenation: true},
	}
}

// Update replaces the contents of the table with the rules for m in one
// transaction: the chain and the sets are flushed and refilled in a single
// batch, so no frame sees an empty or half-filled table.
func (t *Table) Update(m *afpacket.Match) error {
	wrap := func(err error) error {
		return fmt.Errorf("ingress: update table netdev %s on %s: %w", TableName, t.ifname, err)
	}
	e, err := compile(m)
	if err != nil {
		return wrap(err)
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.nsFD < 0 {
		return wrap(errRemoved)
	}
	// The rules and their counters are replaced: keep what they counted.
	if c, err := t.readCounters(); err == nil {
		t.base.add(c)
	}
	t.conn.FlushChain(t.chain)
	t.conn.FlushChain(t.ext6)
	t.conn.FlushSet(t.vips)
	t.conn.FlushSet(t.nat)
	t.conn.FlushSet(t.vips6)
	t.conn.FlushSet(t.nat6)
	if err := t.queueContents(e); err != nil {
		return wrap(err)
	}
	if err := t.conn.Flush(); err != nil {
		return wrap(err)
	}
	return nil
}

// Remove deletes the table. Removing a table that is already gone is not
// an error; further calls to Update fail.
func (t *Table) Remove() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.nsFD < 0 {
		return nil
	}
	t.conn.AddTable(t.table)
	t.conn.DelTable(t.table)
	err := t.conn.Flush()
	unix.Close(t.nsFD)
	t.nsFD = -1
	if err != nil {
		return fmt.Errorf("ingress: remove table netdev %s on %s: %w", TableName, t.ifname, err)
	}
	return nil
}

// Release lets go of t without deleting the table: for a Table replaced
// by a newer Install of the same name.
func (t *Table) Release() {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.nsFD >= 0 {
		unix.Close(t.nsFD)
		t.nsFD = -1
	}
}

var errRemoved = errors.New("table was removed")

// Check reports whether the table and its chain are still in the kernel
// (someone may have flushed the ruleset): an error says what is missing.
func (t *Table) Check() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.nsFD < 0 {
		return errRemoved
	}
	chains, err := t.conn.ListChainsOfTableFamily(nftables.TableFamilyNetdev)
	if err != nil {
		return fmt.Errorf("ingress: list chains: %w", err)
	}
	for _, c := range chains {
		if c.Table != nil && c.Table.Name == TableName && c.Name == t.chain.Name {
			return nil
		}
	}
	return fmt.Errorf("ingress: chain %s of table netdev %s is gone", t.chain.Name, TableName)
}

// queueContents queues the drop rules and the set elements of e.
func (t *Table) queueContents(e elements) error {
	t.conn.AddRule(t.setRule(ipv4DstOff, l4DstPortOff, t.vips, "gvs: client packets to VIP:port"))
	for _, r := range e.locals {
		t.conn.AddRule(t.localRule(r))
	}
	// After the VIPs and the FULLNAT local ranges (whose address may be
	// the director's own), before the NAT replies: what a NAT real sends
	// the director's own address answers the kernel's connections, its
	// health checks.
	for _, a := range e.own {
		t.conn.AddRule(t.ownRule(a))
	}
	t.conn.AddRule(t.setRule(ipv4SrcOff, l4SrcPortOff, t.nat, "gvs: NAT replies from RIP:port"))
	// The IPv6 rules only when there is IPv6 to drop: an IPv4-only
	// configuration keeps the table it always had (the sets are there,
	// empty, so an Update can fill them).
	if len(e.vips6) > 0 {
		t.conn.AddRule(t.setRule6(ipv6DstOff, l4DstPortOff, t.vips6, "gvs: IPv6 client packets to [VIP]:port"))
		t.conn.AddRule(t.fragRule6(ipv6DstOff, l4DstPortOff, t.vips6, "gvs: IPv6 first fragments to [VIP]:port"))
	}
	for _, r := range e.locals6 {
		t.conn.AddRule(t.localRule6(r, false))
		t.conn.AddRule(t.localRule6(r, true))
	}
	// Frames with extension headers: the same drops, in the same order
	// (the own addresses' accepts before the NAT replies), behind the
	// chains the filter walks, in a chain of their own so that a frame
	// without them tests only the jumps.
	if len(e.vips6)+len(e.locals6)+len(e.natReals6) > 0 {
		t.queueExt6(e)
	}
	if len(e.natReals6) > 0 {
		// As for IPv4: the answers of IPv6 NAT reals to the director's
		// own checks are the kernel's.
		for _, a := range e.own6 {
			t.conn.AddRule(t.ownRule6(a))
		}
		t.conn.AddRule(t.setRule6(ipv6SrcOff, l4SrcPortOff, t.nat6, "gvs: IPv6 NAT replies from [RIP]:port"))
		t.conn.AddRule(t.fragRule6(ipv6SrcOff, l4SrcPortOff, t.nat6, "gvs: IPv6 first fragments of NAT replies from [RIP]:port"))
	}
	// Last, counting what goes to the kernel although it is for the
	// dataplane: IPv6 frames to a [VIP]:port or from a NAT [RIP]:port
	// that no rule above dropped, because their extension headers are
	// not a chain the filter walks (they then reach the director's own
	// stack, as before the dataplane walked any).
	if len(e.vips6) > 0 {
		t.conn.AddRule(t.leftRule6(ipv6DstOff, l4DstPortOff, t.vips6, "gvs: IPv6 to [VIP]:port left to the kernel (extension headers the dataplane does not walk)"))
	}
	if len(e.natReals6) > 0 {
		t.conn.AddRule(t.leftRule6(ipv6SrcOff, l4SrcPortOff, t.nat6, "gvs: IPv6 NAT replies from [RIP]:port left to the kernel (extension headers the dataplane does not walk)"))
	}
	for _, q := range []struct {
		set  *nftables.Set
		n    int
		keyi func(i int) []byte
	}{
		{t.vips, len(e.vips), func(i int) []byte { return e.vips[i][:] }},
		{t.nat, len(e.natReals), func(i int) []byte { return e.natReals[i][:] }},
		{t.vips6, len(e.vips6), func(i int) []byte { return e.vips6[i][:] }},
		{t.nat6, len(e.natReals6), func(i int) []byte { return e.natReals6[i][:] }},
	} {
		for lo := 0; lo < q.n; lo += elementsPerMessage {
			elems := make([]nftables.SetElement, min(q.n-lo, elementsPerMessage))
			for i := range elems {
				elems[i] = nftables.SetElement{Key: q.keyi(lo + i)}
			}
			if err := t.conn.SetAddElements(q.set, elems); err != nil {
				return err
			}
		}
	}
	return nil
}

// chainExt6 is the regular chain the base chain jumps to for an IPv6
// frame whose fixed Next Header is an extension header the filter walks.
const chainExt6 = "ext6"

// IPv6 extension headers (RFC 8200 section 4) and the offsets into them
// the ext6 rules load with exthdr: Next Header, a routing header's
// Segments Left.
const (
	extNextOff   = 0
	rtSegLeftOff = 3
	protoRouting = 43
)

// queueExt6 queues the jumps to the ext6 chain and its rules: for each
// chain of afpacket.ExtensionChains6 (types t1..tn), whole packets and
// first fragments,
//
//	ip6 nexthdr t1  exthdr t1 nexthdr t2 ... [exthdr rt seg-left 0]  ip6 <addr> . exthdr tn nexthdr . th <port>  @set  counter drop
//	ip6 nexthdr t1  ... exthdr tn nexthdr 44  ip6 <addr> . exthdr frag nexthdr . th <port>  @set  counter drop
//
// and the same for the FULLNAT local ranges, with the own addresses'
// accepts before the NAT replies as in the base chain. The protocol of the
// key is the last header's Next Header, so a chain that goes on (to a
// fourth header, AH, ...) matches no element, as the filter does not take
// it either. exthdr finds a header by type (the kernel's ipv6_find_hdr,
// the first header of that type, wherever it is in the chain), which is
// why the chains the filter walks have no type twice: following
// t1 -> t2 -> ... by type is then following the chain itself. th is the
// transport header where the kernel found it, behind all extension
// headers (nft_set_pktinfo_ipv6_validate); a later fragment has none, so
// the fragment rules only match first fragments, as fragRule6.
func (t *Table) queueExt6(e elements) {
	for _, first := range []uint8{0, 43, 60} {
		t.conn.AddRule(&nftables.Rule{
			Table: t.table,
			Chain: t.chain,
			Exprs: []expr.Any{
				&expr.Meta{Key: expr.MetaKeyPROTOCOL, Register: regAddr},
				&expr.Cmp{Op: expr.CmpOpEq, Register: regAddr, Data: ethTypeIPv6},
				&expr.Payload{DestRegister: regAddr, Base: expr.PayloadBaseNetworkHeader, Offset: ipv6NextOff, Len: 1},
				&expr.Cmp{Op: expr.CmpOpEq, Register: regAddr, Data: []byte{first}},
				&expr.Verdict{Kind: expr.VerdictJump, Chain: chainExt6},
			},
			UserData: userdata.AppendString(nil, userdata.TypeComment, "gvs: IPv6 with extension headers"),
		})
	}
	chains := afpacket.ExtensionChains6()
	for _, frag := range []bool{false, true} {
		for _, c := range chains {
			if len(e.vips6) > 0 {
				t.conn.AddRule(t.extSetRule6(c, frag, ipv6DstOff, l4DstPortOff, t.vips6, "gvs: IPv6 client packets to [VIP]:port behind extension headers"))
			}
		}
	}
	for _, r := range e.locals6 {
		for _, frag := range []bool{false, true} {
			for _, c := range chains {
				t.conn.AddRule(t.extLocalRule6(c, frag, r))
			}
		}
	}
	if len(e.natReals6) > 0 {
		for _, a := range e.own6 {
			r := t.ownRule6(a)
			r.Chain = t.ext6
			t.conn.AddRule(r)
		}
		for _, frag := range []bool{false, true} {
			for _, c := range chains {
				t.conn.AddRule(t.extSetRule6(c, frag, ipv6SrcOff, l4SrcPortOff, t.nat6, "gvs: IPv6 NAT replies from [RIP]:port behind extension headers"))
			}
		}
	}
}

// extChain6 is the test that a frame's extension headers are the chain c,
// followed by a fragment header if frag, leaving in register proto the
// protocol behind them.
func extChain6(c []uint8, frag bool, proto uint32) []expr.Any {
	exprs := []expr.Any{
		&expr.Payload{DestRegister: regAddr, Base: expr.PayloadBaseNetworkHeader, Offset: ipv6NextOff, Len: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: regAddr, Data: []byte{c[0]}},
	}
	next := func(typ uint8, reg uint32) *expr.Exthdr {
		return &expr.Exthdr{Op: expr.ExthdrOpIpv6, Type: typ, Offset: extNextOff, Len: 1, DestRegister: reg}
	}
	for i := 1; i < len(c); i++ {
		exprs = append(exprs, next(c[i-1], regAddr), &expr.Cmp{Op: expr.CmpOpEq, Register: regAddr, Data: []byte{c[i]}})
	}
	for _, typ := range c {
		if typ == protoRouting {
			exprs = append(exprs,
				&expr.Exthdr{Op: expr.ExthdrOpIpv6, Type: protoRouting, Offset: rtSegLeftOff, Len: 1, DestRegister: regAddr},
				&expr.Cmp{Op: expr.CmpOpEq, Register: regAddr, Data: []byte{0}})
		}
	}
	last := c[len(c)-1]
	if frag {
		exprs = append(exprs, next(last, regAddr), &expr.Cmp{Op: expr.CmpOpEq, Register: regAddr, Data: []byte{protoIPv6Frag}})
		last = protoIPv6Frag
	}
	return append(exprs, next(last, proto))
}

// extSetRule6 is setRule6 behind the extension headers c (and a fragment
// header if frag); see queueExt6.
func (t *Table) extSetRule6(c []uint8, frag bool, addrOff, portOff uint32, set *nftables.Set, comment string) *nftables.Rule {
	exprs := extChain6(c, frag, regProto6)
	exprs = append(exprs,
		&expr.Payload{DestRegister: regAddr, Base: expr.PayloadBaseNetworkHeader, Offset: addrOff, Len: 16},
		&expr.Payload{DestRegister: regPort6, Base: expr.PayloadBaseTransportHeader, Offset: portOff, Len: 2},
		&expr.Lookup{SourceRegister: regAddr, SetName: set.Name, SetID: set.ID},
		&expr.Counter{},
		&expr.Verdict{Kind: expr.VerdictDrop},
	)
	return &nftables.Rule{Table: t.table, Chain: t.ext6, Exprs: exprs, UserData: userdata.AppendString(nil, userdata.TypeComment, comment)}
}

// extLocalRule6 is localRule6 behind the extension headers c (and a
// fragment header if frag).
func (t *Table) extLocalRule6(c []uint8, frag bool, r portRange6) *nftables.Rule {
	var lo, hi [2]byte
	binary.BigEndian.PutUint16(lo[:], r.lo)
	binary.BigEndian.PutUint16(hi[:], r.hi)
	exprs := extChain6(c, frag, regProto6)
	exprs = append(exprs,
		&expr.Cmp{Op: expr.CmpOpEq, Register: regProto6, Data: []byte{r.proto}},
		&expr.Payload{DestRegister: regAddr, Base: expr.PayloadBaseNetworkHeader, Offset: ipv6DstOff, Len: 16},
		&expr.Cmp{Op: expr.CmpOpEq, Register: regAddr, Data: r.addr[:]},
		&expr.Payload{DestRegister: regAddr, Base: expr.PayloadBaseTransportHeader, Offset: l4DstPortOff, Len: 2},
		&expr.Range{Op: expr.CmpOpEq, Register: regAddr, FromData: lo[:], ToData: hi[:]},
		&expr.Counter{},
		&expr.Verdict{Kind: expr.VerdictDrop},
	)
	return &nftables.Rule{Table: t.table, Chain: t.ext6, Exprs: exprs, UserData: userdata.AppendString(nil, userdata.TypeComment, "gvs: IPv6 FULLNAT replies to [LIP]:lport behind extension headers")}
}

// leftRule6 counts, without a verdict, the IPv6 frames whose address,
// transport protocol (wherever the kernel finds it: meta l4proto) and port
// are in set:
//
//	meta protocol ip6  ip6 <addr> . meta l4proto . th <port>  @set  counter
func (t *Table) leftRule6(addrOff, portOff uint32, set *nftables.Set, comment string) *nftables.Rule {
	return &nftables.Rule{
		Table: t.table,
		Chain: t.chain,
		Exprs: []expr.Any{
			&expr.Meta{Key: expr.MetaKeyPROTOCOL, Register: regAddr},
			&expr.Cmp{Op: expr.CmpOpEq, Register: regAddr, Data: ethTypeIPv6},
			&expr.Payload{DestRegister: regAddr, Base: expr.PayloadBaseNetworkHeader, Offset: addrOff, Len: 16},
			&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: regProto6},
			&expr.Payload{DestRegister: regPort6, Base: expr.PayloadBaseTransportHeader, Offset: portOff, Len: 2},
			&expr.Lookup{SourceRegister: regAddr, SetName: set.Name, SetID: set.ID},
			&expr.Counter{},
		},
		UserData: userdata.AppendString(nil, userdata.TypeComment, comment),
	}
}

// setRule6 is setRule for IPv6:
//
//	meta protocol ip6  ip6 <addr> . ip6 nexthdr . th <port>  @set  counter drop
func (t *Table) setRule6(addrOff, portOff uint32, set *nftables.Set, comment string) *nftables.Rule {
	return &nftables.Rule{
		Table: t.table,
		Chain: t.chain,
		Exprs: []expr.Any{
			&expr.Meta{Key: expr.MetaKeyPROTOCOL, Register: regAddr},
			&expr.Cmp{Op: expr.CmpOpEq, Register: regAddr, Data: ethTypeIPv6},
			&expr.Payload{DestRegister: regAddr, Base: expr.PayloadBaseNetworkHeader, Offset: addrOff, Len: 16},
			&expr.Payload{DestRegister: regProto6, Base: expr.PayloadBaseNetworkHeader, Offset: ipv6NextOff, Len: 1},
			&expr.Payload{DestRegister: regPort6, Base: expr.PayloadBaseTransportHeader, Offset: portOff, Len: 2},
			&expr.Lookup{SourceRegister: regAddr, SetName: set.Name, SetID: set.ID},
			&expr.Counter{},
			&expr.Verdict{Kind: expr.VerdictDrop},
		},
		UserData: userdata.AppendString(nil, userdata.TypeComment, comment),
	}
}

// localRule6 is localRule for an IPv6 local address:
//
//	meta protocol ip6  ip6 daddr <addr>  ip6 nexthdr <proto>  th dport <lo>-<hi>  counter drop
//
// or, for first fragments (frag; see fragRule6),
//
//	meta protocol ip6  ip6 daddr <addr>  ip6 nexthdr 44  @nh,320,8 <proto>  th dport <lo>-<hi>  counter drop
func (t *Table) localRule6(r portRange6, frag bool) *nftables.Rule {
	var lo, hi [2]byte
	binary.BigEndian.PutUint16(lo[:], r.lo)
	binary.BigEndian.PutUint16(hi[:], r.hi)
	exprs := []expr.Any{
		&expr.Meta{Key: expr.MetaKeyPROTOCOL, Register: regAddr},
		&expr.Cmp{Op: expr.CmpOpEq, Register: regAddr, Data: ethTypeIPv6},
		&expr.Payload{DestRegister: regAddr, Base: expr.PayloadBaseNetworkHeader, Offset: ipv6DstOff, Len: 16},
		&expr.Cmp{Op: expr.CmpOpEq, Register: regAddr, Data: r.addr[:]},
	}
	comment := "gvs: IPv6 FULLNAT replies to [LIP]:lport"
	if frag {
		exprs = append(exprs,
			&expr.Payload{DestRegister: regAddr, Base: expr.PayloadBaseNetworkHeader, Offset: ipv6NextOff, Len: 1},
			&expr.Cmp{Op: expr.CmpOpEq, Register: regAddr, Data: []byte{protoIPv6Frag}},
			&expr.Payload{DestRegister: regAddr, Base: expr.PayloadBaseNetworkHeader, Offset: ipv6FragNextOff, Len: 1})
		comment = "gvs: IPv6 first fragments of FULLNAT replies to [LIP]:lport"
	} else {
		exprs = append(exprs, &expr.Payload{DestRegister: regAddr, Base: expr.PayloadBaseNetworkHeader, Offset: ipv6NextOff, Len: 1})
	}
	exprs = append(exprs,
		&expr.Cmp{Op: expr.CmpOpEq, Register: regAddr, Data: []byte{r.proto}},
		&expr.Payload{DestRegister: regAddr, Base: expr.PayloadBaseTransportHeader, Offset: l4DstPortOff, Len: 2},
		&expr.Range{Op: expr.CmpOpEq, Register: regAddr, FromData: lo[:], ToData: hi[:]},
		&expr.Counter{},
		&expr.Verdict{Kind: expr.VerdictDrop},
	)
	return &nftables.Rule{Table: t.table, Chain: t.chain, Exprs: exprs, UserData: userdata.AppendString(nil, userdata.TypeComment, comment)}
}

// fragRule6 is setRule6 for the first fragment of a datagram, its
// fragment header right after the fixed header:
//
//	meta protocol ip6  ip6 nexthdr 44  ip6 <addr> . @nh,320,8 . th <port>  @set  counter drop
//
// The protocol is the fragment header's Next Header, and th is the
// transport header behind the fragment header, where nft finds it (the
// kernel's ipv6_find_hdr). The th load fails on a later fragment, which
// carries no ports, so those never match: the kernel sees them as it sees
// IPv4's (the dataplane forwards them from its own copy) and discards
// them after net.ipv6.ip6frag_time, since their first fragment never
// reaches it; the director's own fragmented traffic to the same addresses
// still reassembles.
func (t *Table) fragRule6(addrOff, portOff uint32, set *nftables.Set, comment string) *nftables.Rule {
	return &nftables.Rule{
		Table: t.table,
		Chain: t.chain,
		Exprs: []expr.Any{
			&expr.Meta{Key: expr.MetaKeyPROTOCOL, Register: regAddr},
			&expr.Cmp{Op: expr.CmpOpEq, Register: regAddr, Data: ethTypeIPv6},
			&expr.Payload{DestRegister: regAddr, Base: expr.PayloadBaseNetworkHeader, Offset: ipv6NextOff, Len: 1},
			&expr.Cmp{Op: expr.CmpOpEq, Register: regAddr, Data: []byte{protoIPv6Frag}},
			&expr.Payload{DestRegister: regAddr, Base: expr.PayloadBaseNetworkHeader, Offset: addrOff, Len: 16},
			&expr.Payload{DestRegister: regProto6, Base: expr.PayloadBaseNetworkHeader, Offset: ipv6FragNextOff, Len: 1},
			&expr.Payload{DestRegister: regPort6, Base: expr.PayloadBaseTransportHeader, Offset: portOff, Len: 2},
			&expr.Lookup{SourceRegister: regAddr, SetName: set.Name, SetID: set.ID},
			&expr.Counter{},
			&expr.Verdict{Kind: expr.VerdictDrop},
		},
		UserData: userdata.AppendString(nil, userdata.TypeComment, comment),
	}
}

// isIPv4 is "meta protocol ip", the start of every rule.
func isIPv4() []expr.Any {
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeyPROTOCOL, Register: regAddr},
		&expr.Cmp{Op: expr.CmpOpEq, Register: regAddr, Data: ethTypeIPv4},
	}
}

// setRule is
//
//	meta protocol ip  ip <addr> . ip protocol . th <port>  @set  counter drop
//
// where addr and port are the offsets of the source or destination
// fields. The th (transport header) load fails on a fragment after the
// first, so those never match.
func (t *Table) setRule(addrOff, portOff uint32, set *nftables.Set, comment string) *nftables.Rule {
	return &nftables.Rule{
		Table: t.table,
		Chain: t.chain,
		Exprs: append(isIPv4(),
			&expr.Payload{DestRegister: regAddr, Base: expr.PayloadBaseNetworkHeader, Offset: addrOff, Len: 4},
			&expr.Payload{DestRegister: regProto, Base: expr.PayloadBaseNetworkHeader, Offset: ipv4ProtoOff, Len: 1},
			&expr.Payload{DestRegister: regPort, Base: expr.PayloadBaseTransportHeader, Offset: portOff, Len: 2},
			&expr.Lookup{SourceRegister: regAddr, SetName: set.Name, SetID: set.ID},
			&expr.Counter{},
			&expr.Verdict{Kind: expr.VerdictDrop},
		),
		UserData: userdata.AppendString(nil, userdata.TypeComment, comment),
	}
}

// ownRule is
//
//	meta protocol ip  ip daddr <addr>  counter accept
//
// for one of the director's own addresses (Match.Own).
func (t *Table) ownRule(a [4]byte) *nftables.Rule {
	return &nftables.Rule{
		Table: t.table,
		Chain: t.chain,
		Exprs: append(isIPv4(),
			&expr.Payload{DestRegister: regAddr, Base: expr.PayloadBaseNetworkHeader, Offset: ipv4DstOff, Len: 4},
			&expr.Cmp{Op: expr.CmpOpEq, Register: regAddr, Data: a[:]},
			&expr.Counter{},
			&expr.Verdict{Kind: expr.VerdictAccept},
		),
		UserData: userdata.AppendString(nil, userdata.TypeComment, "gvs: the director's own connections (health checks of NAT reals)"),
	}
}

// ownRule6 is
//
//	meta protocol ip6  ip6 daddr <addr>  counter accept
//
// for one of the director's own IPv6 addresses (Match.Own6).
func (t *Table) ownRule6(a [16]byte) *nftables.Rule {
	return &nftables.Rule{
		Table: t.table,
		Chain: t.chain,
		Exprs: []expr.Any{
			&expr.Meta{Key: expr.MetaKeyPROTOCOL, Register: regAddr},
			&expr.Cmp{Op: expr.CmpOpEq, Register: regAddr, Data: ethTypeIPv6},
			&expr.Payload{DestRegister: regAddr, Base: expr.PayloadBaseNetworkHeader, Offset: ipv6DstOff, Len: 16},
			&expr.Cmp{Op: expr.CmpOpEq, Register: regAddr, Data: a[:]},
			&expr.Counter{},
			&expr.Verdict{Kind: expr.VerdictAccept},
		},
		UserData: userdata.AppendString(nil, userdata.TypeComment, "gvs: the director's own IPv6 connections (health checks of NAT reals)"),
	}
}

// localRule is
//
//	meta protocol ip  ip daddr <addr>  ip protocol <proto>  th dport <lo>-<hi>  counter drop
//
// A rule per range rather than an interval set: there are a handful of
// FULLNAT local addresses, and the kernel's interval set for
// concatenations (pipapo) flushes in quadratic time, which Update would
// pay on every call.
func (t *Table) localRule(r portRange) *nftables.Rule {
	var lo, hi [2]byte
	binary.BigEndian.PutUint16(lo[:], r.lo)
	binary.BigEndian.PutUint16(hi[:], r.hi)
	return &nftables.Rule{
		Table: t.table,
		Chain: t.chain,
		Exprs: append(isIPv4(),
			&expr.Payload{DestRegister: regAddr, Base: expr.PayloadBaseNetworkHeader, Offset: ipv4DstOff, Len: 4},
			&expr.Cmp{Op: expr.CmpOpEq, Register: regAddr, Data: r.addr[:]},
			&expr.Payload{DestRegister: regAddr, Base: expr.PayloadBaseNetworkHeader, Offset: ipv4ProtoOff, Len: 1},
			&expr.Cmp{Op: expr.CmpOpEq, Register: regAddr, Data: []byte{r.proto}},
			&expr.Payload{DestRegister: regAddr, Base: expr.PayloadBaseTransportHeader, Offset: l4DstPortOff, Len: 2},
			&expr.Range{Op: expr.CmpOpEq, Register: regAddr, FromData: lo[:], ToData: hi[:]},
			&expr.Counter{},
			&expr.Verdict{Kind: expr.VerdictDrop},
		),
		UserData: userdata.AppendString(nil, userdata.TypeComment, "gvs: FULLNAT replies to LIP:lport"),
	}
}
