package arpctl

import (
	"fmt"
	"io"
	"os"
	"path"
	"strings"
)

// ReadSysctl returns the value of key (a path under /proc/sys, as in
// Sysctl.Key) without its trailing newline, read in the network namespace of
// the calling thread. It changes nothing, so checks such as
// `gvs-realserver doctor` can compare a table with the running values.
func ReadSysctl(key string) (string, error) {
	return readSysctlAt(procSys, key)
}

func readSysctlAt(root, key string) (string, error) {
	clean := path.Clean(key)
	if key == "" || clean != key || path.IsAbs(clean) || strings.HasPrefix(clean, "..") {
		return "", fmt.Errorf("arpctl: read sysctl %q: key must be a clean relative path under %s", key, procSys)
	}
	f, err := os.Open(root + "/" + clean)
	if err != nil {
		return "", fmt.Errorf("arpctl: read sysctl %s: %w", SysctlName(key), err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxSysctlValue))
	if err != nil {
		return "", fmt.Errorf("arpctl: read sysctl %s: %w", SysctlName(key), err)
	}
	return strings.TrimSpace(string(b)), nil
}

// SysctlName returns key as sysctl(8) and sysctl.conf(5) spell it:
// "net/ipv4/conf/eth0/arp_ignore" becomes "net.ipv4.conf.eth0.arp_ignore".
// A dot inside a component, as in the VLAN interface "eth0.100", becomes a
// slash ("net.ipv4.conf.eth0/100.arp_ignore"): sysctl(8) swaps the two
// separators back, so `sysctl -w` with the returned name writes key.
func SysctlName(key string) string {
	b := []byte(key)
	for i, c := range b {
		switch c {
		case '/':
			b[i] = '.'
		case '.':
			b[i] = '/'
		}
	}
	return string(b)
}
