package offload

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strings"

	"golang.org/x/sys/unix"
)

// Feature bits are read and written as the kernel's named netdev features
// (ETHTOOL_GSTRINGS of string set ETH_SS_FEATURES, ETHTOOL_GFEATURES and
// ETHTOOL_SFEATURES), grouped the way ethtool -k groups them. The legacy
// one-feature commands (ETHTOOL_STSO, ...) miss bits newer kernels added to a
// group, such as tx-tcp-accecn-segmentation under TSO.

// Constants of include/uapi/linux/ethtool.h that golang.org/x/sys/unix lacks.
const (
	ethSSFeatures  = 4  // ETH_SS_FEATURES: the string set naming netdev features
	ethGstringLen  = 32 // ETH_GSTRING_LEN: bytes per name in ETHTOOL_GSTRINGS
	wordBits       = 32 // feature bits per ethtool_get/set_features_block
	getBlockLen    = 16 // sizeof(struct ethtool_get_features_block)
	setBlockLen    = 8  // sizeof(struct ethtool_set_features_block)
	ssetInfoLen    = 20 // struct ethtool_sset_info with one data word
	gstringsHdrLen = 12 // struct ethtool_gstrings without its data
	featuresHdrLen = 8  // struct ethtool_gfeatures / ethtool_sfeatures without blocks
)

// Offsets in struct ethtool_sset_info, ethtool_gstrings and
// ethtool_get_features_block.
const (
	ssetMaskOff  = 8  // __u64 sset_mask
	ssetDataOff  = 16 // __u32 data[0]: the count of the one set asked for
	gstrSetOff   = 4  // __u32 string_set
	gstrLenOff   = 8  // __u32 len
	blockAvail   = 0  // __u32 available: bits the device can change (hw_features)
	blockActive  = 8  // __u32 active: bits in effect (features)
	sizeOff      = 4  // __u32 size: number of blocks
	setValidOff  = 0  // __u32 valid: bits to change
	setWantedOff = 4  // __u32 requested: their new values
)

// Get reports whether feature f is on for the interface ifname in the calling
// thread's network namespace: whether any kernel feature bit of its group
// (the sub-features ethtool -k lists under its name) is active.
func Get(ifname string, f Feature) (bool, error) {
	d, err := load(ifname, f)
	if err != nil {
		return false, fmt.Errorf("offload: get %s on %s: %w", f, ifname, err)
	}
	defer d.close()
	_, off := d.group(f)
	return d.active.intersects(off), nil
}

// Set turns feature f on or off for the interface ifname in the calling
// thread's network namespace and reads it back. Off clears every bit of the
// group (for GRO also hardware GRO, rx-gro-hw); on sets the bits ethtool -K
// would. An interface that cannot make the change returns an error wrapping
// ErrNotSupported; a change the kernel accepted but did not apply to every
// changeable bit of the group (a dependency is off) returns one wrapping
// ErrNotApplied.
func Set(ifname string, f Feature, on bool) error {
	d, err := load(ifname, f)
	if err != nil {
		return fmt.Errorf("offload: turn %s %s on %s: %w", onOff(on), f, ifname, err)
	}
	defer d.close()
	if err := d.set(f, on); err != nil {
		return fmt.Errorf("offload: turn %s %s on %s: %w", onOff(on), f, ifname, err)
	}
	return nil
}

// DisableForCapture turns off GRO (with hardware GRO) and LRO on ifname (what
// makes a director's AF_PACKET tap see frames larger than the MTU) and returns
// a func that restores exactly the bits it turned off. If one of them is on
// and cannot be turned off the error wraps ErrNotSupported and nothing is
// changed. Call it, and restore, from a thread in the interface's network
// namespace.
func DisableForCapture(ifname string) (restore func() error, err error) {
	d, err := load(ifname, GRO)
	if err != nil {
		return nil, fmt.Errorf("offload: disable for capture on %s: %w", ifname, err)
	}
	defer d.close()
	changed := d.newBitmap()
	for _, f := range captureFeatures {
		_, off := d.group(f)
		on := off.and(d.active)
		if fixed := on.andNot(d.available); !fixed.empty() {
			return nil, fmt.Errorf("offload: turn off %s on %s: %w", f, ifname, ErrNotSupported)
		}
		changed = changed.or(on)
	}
	restore = func() error {
		if changed.empty() {
			return nil
		}
		d, err := load(ifname, GRO)
		if err != nil {
			return fmt.Errorf("offload: restore offloads on %s: %w", ifname, err)
		}
		defer d.close()
		err = d.write(changed, changed)
		changed = d.newBitmap()
		if err != nil {
			return fmt.Errorf("offload: restore offloads on %s: %w", ifname, err)
		}
		return nil
	}
	if changed.empty() {
		return restore, nil
	}
	if err := d.write(changed, d.newBitmap()); err != nil {
		return nil, fmt.Errorf("offload: disable for capture on %s: %w", ifname, err)
	}
	if err := d.reload(); err != nil {
		return nil, errors.Join(fmt.Errorf("offload: disable for capture on %s: read back: %w", ifname, err), restore())
	}
	if still := d.active.and(changed); !still.empty() {
		return nil, errors.Join(fmt.Errorf("offload: disable for capture on %s: %w", ifname, ErrNotApplied), restore())
	}
	return restore, nil
}

// device is the feature state of one interface, read through a socket in the
// calling thread's network namespace.
type device struct {
	fd        int
	ifname    string
	names     []string // kernel feature names, indexed by bit
	available bitmap   // bits the device can change
	active    bitmap   // bits in effect
}

// load validates the arguments, opens the socket and reads the interface's
// feature names and state.
func load(ifname string, f Feature) (*device, error) {
	if !f.valid() {
		return nil, errInvalidFeature
	}
	if ifname == "" || len(ifname) >= unix.IFNAMSIZ {
		return nil, fmt.Errorf("invalid interface name %q", ifname)
	}
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("socket: %w", err)
	}
	d := &device{fd: fd, ifname: ifname}
	if err := d.loadNames(); err != nil {
		d.close()
		return nil, err
	}
	if err := d.reload(); err != nil {
		d.close()
		return nil, err
	}
	return d, nil
}

func (d *device) close() { unix.Close(d.fd) }

// loadNames reads the names of the kernel's feature bits.
func (d *device) loadNames() error {
	info := make([]byte, ssetInfoLen)
	ne.PutUint32(info, unix.ETHTOOL_GSSET_INFO)
	ne.PutUint64(info[ssetMaskOff:], 1<<ethSSFeatures)
	if err := ethtoolIoctl(d.fd, d.ifname, info); err != nil {
		return fmt.Errorf("ETHTOOL_GSSET_INFO: %w", err)
	}
	if ne.Uint64(info[ssetMaskOff:])&(1<<ethSSFeatures) == 0 {
		return fmt.Errorf("ETHTOOL_GSSET_INFO: no feature names: %w", ErrNotSupported)
	}
	n := int(ne.Uint32(info[ssetDataOff:]))
	if n <= 0 || n > 1024 {
		return fmt.Errorf("ETHTOOL_GSSET_INFO: implausible feature count %d", n)
	}
	strs := make([]byte, gstringsHdrLen+n*ethGstringLen)
	ne.PutUint32(strs, unix.ETHTOOL_GSTRINGS)
	ne.PutUint32(strs[gstrSetOff:], ethSSFeatures)
	ne.PutUint32(strs[gstrLenOff:], uint32(n))
	if err := ethtoolIoctl(d.fd, d.ifname, strs); err != nil {
		return fmt.Errorf("ETHTOOL_GSTRINGS: %w", err)
	}
	if got := int(ne.Uint32(strs[gstrLenOff:])); got < n {
		n = got
	}
	d.names = make([]string, n)
	for i := range d.names {
		b := strs[gstringsHdrLen+i*ethGstringLen:][:ethGstringLen]
		if j := strings.IndexByte(string(b), 0); j >= 0 {
			b = b[:j]
		}
		d.names[i] = string(b)
	}
	return nil
}

// reload reads the available and active feature bits.
func (d *device) reload() error {
	words := d.words()
	buf := make([]byte, featuresHdrLen+words*getBlockLen)
	ne.PutUint32(buf, unix.ETHTOOL_GFEATURES)
	ne.PutUint32(buf[sizeOff:], uint32(words))
	if err := ethtoolIoctl(d.fd, d.ifname, buf); err != nil {
		return fmt.Errorf("ETHTOOL_GFEATURES: %w", err)
	}
	d.available, d.active = d.newBitmap(), d.newBitmap()
	for i := range words {
		blk := buf[featuresHdrLen+i*getBlockLen:]
		d.available[i] = ne.Uint32(blk[blockAvail:])
		d.active[i] = ne.Uint32(blk[blockActive:])
	}
	return nil
}

// write asks the kernel to set the bits in valid to their values in wanted.
func (d *device) write(valid, wanted bitmap) error {
	words := d.words()
	buf := make([]byte, featuresHdrLen+words*setBlockLen)
	ne.PutUint32(buf, unix.ETHTOOL_SFEATURES)
	ne.PutUint32(buf[sizeOff:], uint32(words))
	for i := range words {
		blk := buf[featuresHdrLen+i*setBlockLen:]
		ne.PutUint32(blk[setValidOff:], valid[i])
		ne.PutUint32(blk[setWantedOff:], wanted[i]&valid[i])
	}
	if err := ethtoolIoctl(d.fd, d.ifname, buf); err != nil {
		return fmt.Errorf("ETHTOOL_SFEATURES: %w", err)
	}
	return nil
}

func (d *device) set(f Feature, on bool) error {
	onBits, offBits := d.group(f)
	if offBits.empty() {
		return fmt.Errorf("kernel names no feature of this group: %w", ErrNotSupported)
	}
	target := offBits
	if on {
		target = onBits
	}
	valid := target.and(d.available)
	if valid.empty() {
		if d.active.intersects(offBits) == on {
			return nil // fixed at the asked-for value
		}
		return ErrNotSupported
	}
	wanted := d.newBitmap()
	if on {
		wanted = valid
	}
	if err := d.write(valid, wanted); err != nil {
		return err
	}
	if err := d.reload(); err != nil {
		return fmt.Errorf("read back: %w", err)
	}
	if on {
		if off := valid.andNot(d.active); !off.empty() {
			return fmt.Errorf("%w: still off: %s", ErrNotApplied, d.nameList(off))
		}
		return nil
	}
	if fixed := offBits.andNot(d.available).and(d.active); !fixed.empty() {
		return fmt.Errorf("%w: fixed on: %s", ErrNotSupported, d.nameList(fixed))
	}
	if still := offBits.and(d.active); !still.empty() {
		return fmt.Errorf("%w: still on: %s", ErrNotApplied, d.nameList(still))
	}
	return nil
}

// nameList names the bits of b, comma-separated.
func (d *device) nameList(b bitmap) string {
	var names []string
	for i, name := range d.names {
		if b[i/wordBits]&(1<<(i%wordBits)) != 0 {
			names = append(names, name)
		}
	}
	return strings.Join(names, ", ")
}

// group returns the kernel feature bits of f: on are those Set(f, true)
// turns on, off those Get reports and Set(f, false) turns off. The patterns
// are ethtool's (off_flag_def in ethtool.c), plus rx-gro-hw under GRO
// because hardware GRO merges frames just the same.
func (d *device) group(f Feature) (on, off bitmap) {
	on, off = d.newBitmap(), d.newBitmap()
	for i, name := range d.names {
		var isOn, isOff bool
		switch f {
		case TxChecksum:
			isOn = strings.HasPrefix(name, "tx-checksum-")
		case ScatterGather:
			isOn = strings.HasPrefix(name, "tx-scatter-gather")
		case TSO:
			isOn = strings.HasPrefix(name, "tx-tcp") && strings.HasSuffix(name, "-segmentation")
		case GSO:
			isOn = name == "tx-generic-segmentation"
		case GRO:
			isOn = name == "rx-gro"
			isOff = name == "rx-gro-hw"
		case LRO:
			isOn = name == "rx-lro"
		}
		if isOn {
			on.setBit(i)
		}
		if isOn || isOff {
			off.setBit(i)
		}
	}
	return on, off
}

func (d *device) words() int { return (len(d.names) + wordBits - 1) / wordBits }

func (d *device) newBitmap() bitmap { return make(bitmap, d.words()) }

// bitmap is a feature bit set as the kernel lays it out: bit i is bit i%32
// of word i/32.
type bitmap []uint32

func (b bitmap) setBit(i int) { b[i/wordBits] |= 1 << (i % wordBits) }

func (b bitmap) and(o bitmap) bitmap {
	r := make(bitmap, len(b))
	for i := range b {
		r[i] = b[i] & o[i]
	}
	return r
}

func (b bitmap) andNot(o bitmap) bitmap {
	r := make(bitmap, len(b))
	for i := range b {
		r[i] = b[i] &^ o[i]
	}
	return r
}

func (b bitmap) or(o bitmap) bitmap {
	r := make(bitmap, len(b))
	for i := range b {
		r[i] = b[i] | o[i]
	}
	return r
}

func (b bitmap) intersects(o bitmap) bool { return !b.and(o).empty() }

func (b bitmap) empty() bool {
	for _, w := range b {
		if w != 0 {
			return false
		}
	}
	return true
}

// ne is the byte order of the ethtool structs: the host's.
var ne = binary.NativeEndian
