//go:build !linux

package conntrack

// adviseHugePages does nothing: transparent huge pages are Linux's.
func adviseHugePages(b []byte) {}
