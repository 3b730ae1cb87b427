package realserver

import (
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/link"
)

// bpfDecap decapsulates IPIP and IPv6-in-IPv6 in the kernel, without a
// tunnel device: a small eBPF program on the LAN interface's TC ingress
// hook (tcx, Linux 6.6 and later) strips the outer IPv4 header of each
// plain IPIP packet to this host whose inner packet goes to a VIP
// (bpf_skb_adjust_room(BPF_ADJ_ROOM_MAC, BPF_F_ADJ_ROOM_DECAP_L3_IPV4),
// Linux 6.3 and later), and likewise the outer IPv6 header, with no
// extension header, of each IPv6 packet with next header 41 whose inner
// IPv6 packet goes to a VIP (BPF_F_ADJ_ROOM_DECAP_L3_IPV6); the inner
// packet goes on up the stack as if it had arrived plainly on that
// interface. No wakeup, copy or system call
// per packet, as the kernel's own ipip module. Anything the program does
// not take (outer IP options, outer fragments, a frame whose headers are
// not in its linear part, outer IPv6 extension headers, another interface)
// stays encapsulated, and the userspace decapsulator, which runs beside
// it, takes it.
type bpfDecap struct {
	prog   *ebpf.Program
	link   link.Link
	locals *ebpf.Map // outer destinations accepted: the host's IPv4 addresses
	vips   *ebpf.Map // inner destinations accepted
	// The same for IPv6-in-IPv6: the host's IPv6 addresses, the IPv6 VIPs.
	locals6, vips6 *ebpf.Map
	stats          *ebpf.Map // per CPU: bpfDecapsulated, bpfFailed

	stop chan struct{}
	done sync.WaitGroup
}

// Slots of the stats map.
const (
	bpfDecapsulated = 0 // packets decapsulated
	bpfFailed       = 1 // packets the helper refused, left to userspace
)

// __sk_buff offsets (include/uapi/linux/bpf.h) and return codes the
// program uses.
const (
	skbPktType  = 4
	skbProtocol = 16
	skbData     = 76
	skbDataEnd  = 80
	tcxNext     = -1     // TCX_NEXT: go on, to the next program or the stack
	bpfAdjMAC   = 1      // BPF_ADJ_ROOM_MAC
	bpfDecapV4  = 1 << 7 // BPF_F_ADJ_ROOM_DECAP_L3_IPV4
	bpfDecapV6  = 1 << 8 // BPF_F_ADJ_ROOM_DECAP_L3_IPV6
	ethIPv4BE   = 0x0008 // htons(ETH_P_IP) as a little-endian load sees it
	ethIPv6BE   = 0xdd86 // htons(ETH_P_IPV6)
	// Ethernet + outer IPv4 without options + the inner header up to its
	// destination address.
	bpfNeed = 14 + 20 + 20
	// Ethernet + the outer and the inner IPv6 fixed headers.
	bpfNeed6 = 14 + 40 + 40
)

// decapProgram is the TC program; maps are referenced by name.
func decapProgram() asm.Instructions {
	const pass, out = "pass", "out"
	count := func(slot int32, label string) asm.Instructions {
		return asm.Instructions{
			asm.StoreImm(asm.RFP, -12, int64(slot), asm.Word).WithSymbol(label),
			asm.LoadMapPtr(asm.R1, 0).WithReference("stats"),
			asm.Mov.Reg(asm.R2, asm.RFP),
			asm.Add.Imm(asm.R2, -12),
			asm.FnMapLookupElem.Call(),
			asm.JEq.Imm(asm.R0, 0, out),
			asm.LoadMem(asm.R1, asm.R0, 0, asm.DWord),
			asm.Add.Imm(asm.R1, 1),
			asm.StoreMem(asm.R0, 0, asm.R1, asm.DWord),
			asm.Ja.Label(out),
		}
	}
	// lookup jumps to pass unless the key at the frame pointer's offset
	// fp is in the map.
	lookup := func(m string, fp int32) asm.Instructions {
		return asm.Instructions{
			asm.LoadMapPtr(asm.R1, 0).WithReference(m),
			asm.Mov.Reg(asm.R2, asm.RFP),
			asm.Add.Imm(asm.R2, fp),
			asm.FnMapLookupElem.Call(),
			asm.JEq.Imm(asm.R0, 0, pass),
		}
	}
	// copy16 copies the 16 bytes of the frame at off to the stack at fp.
	copy16 := func(off int16, fp int16) asm.Instructions {
		var is asm.Instructions
		for i := int16(0); i < 16; i += 4 {
			is = append(is,
				asm.LoadMem(asm.R2, asm.R7, off+i, asm.Word),
				asm.StoreMem(asm.RFP, fp+i, asm.R2, asm.Word))
		}
		return is
	}
	insns := asm.Instructions{
		asm.Mov.Reg(asm.R6, asm.R1),
		// Frames to this host, IPv4 or IPv6.
		asm.LoadMem(asm.R2, asm.R6, skbPktType, asm.Word),
		asm.JNE.Imm(asm.R2, 0, pass),
		asm.LoadMem(asm.R7, asm.R6, skbData, asm.Word),
		asm.LoadMem(asm.R8, asm.R6, skbDataEnd, asm.Word),
		asm.LoadMem(asm.R2, asm.R6, skbProtocol, asm.Word),
		asm.JEq.Imm(asm.R2, ethIPv6BE, "v6"),
		asm.JNE.Imm(asm.R2, ethIPv4BE, pass),
		asm.Mov.Reg(asm.R2, asm.R7),
		asm.Add.Imm(asm.R2, bpfNeed),
		asm.JGT.Reg(asm.R2, asm.R8, pass),
		// Outer: version 4, no options, protocol 4 (IPIP), not a fragment.
		asm.LoadMem(asm.R2, asm.R7, 14, asm.Byte),
		asm.JNE.Imm(asm.R2, 0x45, pass),
		asm.LoadMem(asm.R2, asm.R7, 14+9, asm.Byte),
		asm.JNE.Imm(asm.R2, 4, pass),
		asm.LoadMem(asm.R2, asm.R7, 14+6, asm.Half),
		asm.And.Imm(asm.R2, 0xff3f), // MF and the offset, in network order
		asm.JNE.Imm(asm.R2, 0, pass),
		// Inner: version 4.
		asm.LoadMem(asm.R2, asm.R7, 34, asm.Byte),
		asm.And.Imm(asm.R2, 0xf0),
		asm.JNE.Imm(asm.R2, 0x40, pass),
		// Outer destination one of ours, inner destination a VIP.
		asm.LoadMem(asm.R2, asm.R7, 14+16, asm.Word),
		asm.StoreMem(asm.RFP, -4, asm.R2, asm.Word),
		asm.LoadMem(asm.R2, asm.R7, 34+16, asm.Word),
		asm.StoreMem(asm.RFP, -8, asm.R2, asm.Word),
		asm.LoadMapPtr(asm.R1, 0).WithReference("locals"),
		asm.Mov.Reg(asm.R2, asm.RFP),
		asm.Add.Imm(asm.R2, -4),
		asm.FnMapLookupElem.Call(),
		asm.JEq.Imm(asm.R0, 0, pass),
		asm.LoadMapPtr(asm.R1, 0).WithReference("vips"),
		asm.Mov.Reg(asm.R2, asm.RFP),
		asm.Add.Imm(asm.R2, -8),
		asm.FnMapLookupElem.Call(),
		asm.JEq.Imm(asm.R0, 0, pass),
		// Strip the outer header.
		asm.Mov.Reg(asm.R1, asm.R6),
		asm.Mov.Imm(asm.R2, -20),
		asm.Mov.Imm(asm.R3, bpfAdjMAC),
		asm.Mov.Imm(asm.R4, bpfDecapV4),
		asm.FnSkbAdjustRoom.Call(),
		asm.JNE.Imm(asm.R0, 0, "failed"),
		asm.Ja.Label("decapsulated"),
	}
	// IPv6 in IPv6: outer version 6 with next header 41 (no extension
	// header), inner version 6.
	insns = append(insns,
		asm.Mov.Reg(asm.R2, asm.R7).WithSymbol("v6"),
		asm.Add.Imm(asm.R2, bpfNeed6),
		asm.JGT.Reg(asm.R2, asm.R8, pass),
		asm.LoadMem(asm.R2, asm.R7, 14, asm.Byte),
		asm.And.Imm(asm.R2, 0xf0),
		asm.JNE.Imm(asm.R2, 0x60, pass),
		asm.LoadMem(asm.R2, asm.R7, 14+6, asm.Byte),
		asm.JNE.Imm(asm.R2, 41, pass),
		asm.LoadMem(asm.R2, asm.R7, 54, asm.Byte),
		asm.And.Imm(asm.R2, 0xf0),
		asm.JNE.Imm(asm.R2, 0x60, pass),
	)
	// Outer destination one of ours, inner destination a VIP.
	insns = append(insns, copy16(14+24, -32)...)
	insns = append(insns, copy16(54+24, -48)...)
	insns = append(insns, lookup("locals6", -32)...)
	insns = append(insns, lookup("vips6", -48)...)
	insns = append(insns,
		asm.Mov.Reg(asm.R1, asm.R6),
		asm.Mov.Imm(asm.R2, -40),
		asm.Mov.Imm(asm.R3, bpfAdjMAC),
		asm.Mov.Imm(asm.R4, bpfDecapV6),
		asm.FnSkbAdjustRoom.Call(),
		asm.JNE.Imm(asm.R0, 0, "failed"),
	)
	insns = append(insns, count(bpfDecapsulated, "decapsulated")...)
	insns = append(insns, count(bpfFailed, "failed")...)
	insns = append(insns,
		asm.Mov.Imm(asm.R0, tcxNext).WithSymbol(out),
		asm.Return(),
		asm.Mov.Imm(asm.R0, tcxNext).WithSymbol(pass),
		asm.Return(),
	)
	// decapsulated falls through from the IPv6 helper's success.
	return insns
}

// newBPFDecap loads the program with the VIPs and the host's addresses in
// its maps and attaches it to ifname's ingress. The error says why the
// kernel would not have it; the caller then decapsulates in userspace
// alone.
func newBPFDecap(ifname string, vips addrSet, vips6 addrSet6, locals addrSet, locals6 addrSet6) (_ *bpfDecap, err error) {
	ifi, err := net.InterfaceByName(ifname)
	if err != nil {
		return nil, err
	}
	spec := &ebpf.CollectionSpec{
		Maps: map[string]*ebpf.MapSpec{
			"locals":  {Name: "gvs_locals", Type: ebpf.Hash, KeySize: 4, ValueSize: 1, MaxEntries: 1024},
			"vips":    {Name: "gvs_vips", Type: ebpf.Hash, KeySize: 4, ValueSize: 1, MaxEntries: 1024},
			"locals6": {Name: "gvs_locals6", Type: ebpf.Hash, KeySize: 16, ValueSize: 1, MaxEntries: 1024},
			"vips6":   {Name: "gvs_vips6", Type: ebpf.Hash, KeySize: 16, ValueSize: 1, MaxEntries: 1024},
			"stats":   {Name: "gvs_decap_stats", Type: ebpf.PerCPUArray, KeySize: 4, ValueSize: 8, MaxEntries: 2},
		},
		Programs: map[string]*ebpf.ProgramSpec{
			"decap": {Name: "gvs_ipip_decap", Type: ebpf.SchedCLS, License: "Dual BSD/GPL", Instructions: decapProgram()},
		},
	}
	coll, err := ebpf.NewCollection(spec)
	if err != nil {
		return nil, fmt.Errorf("load the decapsulation program: %w", err)
	}
	b := &bpfDecap{prog: coll.Programs["decap"], locals: coll.Maps["locals"], vips: coll.Maps["vips"],
		locals6: coll.Maps["locals6"], vips6: coll.Maps["vips6"], stats: coll.Maps["stats"], stop: make(chan struct{})}
	defer func() {
		if err != nil {
			b.close()
		}
	}()
	if len(vips) > 1024 || len(locals) > 1024 || len(vips6) > 1024 || len(locals6) > 1024 {
		return nil, errors.New("more than 1024 VIPs or local addresses of a family")
	}
	for a := range vips {
		if err := b.vips.Put(a, uint8(1)); err != nil {
			return nil, fmt.Errorf("VIP map: %w", err)
		}
	}
	for a := range vips6 {
		if err := b.vips6.Put(a, uint8(1)); err != nil {
			return nil, fmt.Errorf("IPv6 VIP map: %w", err)
		}
	}
	if err := setAddrs(b.locals, locals); err != nil {
		return nil, err
	}
	if err := setAddrs(b.locals6, locals6); err != nil {
		return nil, err
	}
	b.link, err = link.AttachTCX(link.TCXOptions{Interface: ifi.Index, Program: b.prog, Attach: ebpf.AttachTCXIngress})
	if err != nil {
		return nil, fmt.Errorf("attach to %s's ingress (tcx): %w", ifname, err)
	}
	return b, nil
}

// setAddrs makes the address map m hold exactly the addresses of set.
func setAddrs[K [4]byte | [16]byte](m *ebpf.Map, set map[K]struct{}) error {
	var k K
	var v uint8
	var stale []K
	it := m.Iterate()
	for it.Next(&k, &v) {
		if _, ok := set[k]; !ok {
			stale = append(stale, k)
		}
	}
	if err := it.Err(); err != nil {
		return fmt.Errorf("local address map: %w", err)
	}
	for _, k := range stale {
		_ = m.Delete(k)
	}
	for a := range set {
		if err := m.Put(a, uint8(1)); err != nil {
			return fmt.Errorf("local address map: %w", err)
		}
	}
	return nil
}

// follow re-reads the host's addresses every localRefreshEvery into the
// locals maps until close.
func (b *bpfDecap) follow(read func() (addrSet, error), read6 func() (addrSet6, error)) {
	b.done.Add(1)
	go func() {
		defer b.done.Done()
		t := time.NewTicker(localRefreshEvery)
		defer t.Stop()
		for {
			select {
			case <-b.stop:
				return
			case <-t.C:
				if a, err := read(); err == nil {
					_ = setAddrs(b.locals, a)
				}
				if a, err := read6(); err == nil {
					_ = setAddrs(b.locals6, a)
				}
			}
		}
	}()
}

// counts returns the packets decapsulated and those the helper refused.
func (b *bpfDecap) counts() (decapsulated, failed uint64) {
	sum := func(slot uint32) uint64 {
		var per []uint64
		if err := b.stats.Lookup(slot, &per); err != nil {
			return 0
		}
		var n uint64
		for _, v := range per {
			n += v
		}
		return n
	}
	return sum(bpfDecapsulated), sum(bpfFailed)
}

// close detaches the program and frees everything.
func (b *bpfDecap) close() error {
	select {
	case <-b.stop:
	default:
		close(b.stop)
	}
	b.done.Wait()
	var errs []error
	if b.link != nil {
		errs = append(errs, b.link.Close())
		b.link = nil
	}
	for _, c := range []interface{ Close() error }{b.prog, b.locals, b.vips, b.locals6, b.vips6, b.stats} {
		if c != nil {
			errs = append(errs, c.Close())
		}
	}
	return errors.Join(errs...)
}
