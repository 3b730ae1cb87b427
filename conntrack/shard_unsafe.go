package conntrack

import "unsafe"

// indexOf returns the slab index of e, or false if e does not point at the
// entry of one of the shard's current items.
func (s *Shard) indexOf(e *Entry) (int, bool) {
	if len(s.items) == 0 || e == nil {
		return 0, false
	}
	base := uintptr(unsafe.Pointer(&s.items[0].e))
	p := uintptr(unsafe.Pointer(e))
	if p < base {
		return 0, false
	}
	off := p - base
	size := unsafe.Sizeof(item{})
	if off%size != 0 || off/size >= uintptr(len(s.items)) {
		return 0, false
	}
	return int(off / size), true
}
