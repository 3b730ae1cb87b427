package conntrack

import "unsafe"

// pageSize is the unit prefault touches; hugePage the size from which a
// table asks for transparent huge pages.
const (
	pageSize = 4096
	hugePage = 2 << 20
)

// makeTable returns a zeroed slice of n Ts whose memory is resident: a
// table's size is fixed at start, so the page faults happen here and not
// in a worker's packet loop, and the memory a table takes is the same
// under a flood as before it. A table of 2 MiB or more asks for
// transparent huge pages first (best effort: madvise(MADV_HUGEPAGE) does
// nothing where THP is off), which spares the TLB misses of random
// lookups over hundreds of megabytes. T must hold no pointers: the memory
// is written as bytes.
func makeTable[T any](n int) []T {
	s := make([]T, n)
	size := n * int(unsafe.Sizeof(*new(T)))
	if size == 0 {
		return s
	}
	b := unsafe.Slice((*byte)(unsafe.Pointer(&s[0])), size)
	if size >= hugePage {
		start := (uintptr(unsafe.Pointer(&b[0])) + pageSize - 1) &^ (pageSize - 1)
		off := int(start - uintptr(unsafe.Pointer(&b[0])))
		if n := (size - off) &^ (pageSize - 1); n > 0 {
			adviseHugePages(b[off : off+n])
		}
	}
	for off := 0; off < size; off += pageSize {
		b[off] = 0
	}
	return s
}
