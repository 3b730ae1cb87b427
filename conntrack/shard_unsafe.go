package conntrack

import "unsafe"

func sizeofEntry[A IP](e *Entry[A]) uintptr { return unsafe.Sizeof(*e) }

// indexOf returns the slab index of e, or false if e does not point at one
// of the shard's entry cells.
func (s *Shard[A]) indexOf(e *Entry[A]) (int, bool) {
	if e == nil {
		return 0, false
	}
	base := uintptr(unsafe.Pointer(&s.entries[0]))
	p := uintptr(unsafe.Pointer(e))
	if p < base {
		return 0, false
	}
	off := p - base
	size := unsafe.Sizeof(*e)
	if off%size != 0 || off/size >= uintptr(s.hw) {
		return 0, false
	}
	return int(off / size), true
}
