package conntrack

import "golang.org/x/sys/unix"

// adviseHugePages asks for transparent huge pages under b (page aligned),
// best effort: madvise(2) MADV_HUGEPAGE does nothing where THP is off.
func adviseHugePages(b []byte) { _ = unix.Madvise(b, unix.MADV_HUGEPAGE) }
