package arpctl

import (
	"errors"
	"os"
	"strings"
	"testing"
)

func TestReadSysctlFake(t *testing.T) {
	root := fakeProcSys(t, map[string]string{
		"net/ipv4/conf/all/arp_ignore":     "1\n",
		"net/ipv4/conf/eth0.100/rp_filter": "2\n",
		"net/ipv4/ip_local_port_range":     "32768\t60999\n",
		"net/ipv4/conf/eth0/arp_announce":  "",
		"net/ipv4/conf/default/arp_ignore": "0",
		"net/ipv4/conf/gvstun0/arp_ignore": " 8 \n",
	})
	for key, want := range map[string]string{
		"net/ipv4/conf/all/arp_ignore":     "1",
		"net/ipv4/conf/eth0.100/rp_filter": "2",
		"net/ipv4/ip_local_port_range":     "32768\t60999",
		"net/ipv4/conf/eth0/arp_announce":  "",
		"net/ipv4/conf/default/arp_ignore": "0",
		"net/ipv4/conf/gvstun0/arp_ignore": "8",
	} {
		got, err := readSysctlAt(root, key)
		if err != nil || got != want {
			t.Errorf("readSysctlAt(%s) = %q, %v; want %q", key, got, err, want)
		}
	}
	_, err := readSysctlAt(root, "net/ipv4/conf/eth9/arp_ignore")
	if !errors.Is(err, os.ErrNotExist) || !strings.Contains(err.Error(), "net.ipv4.conf.eth9.arp_ignore") {
		t.Errorf("missing key: err = %v, want a wrapped not-exist error naming the key", err)
	}
	for _, key := range []string{"", "/net/a", "../etc/passwd", "net/../../x", "net//a"} {
		if _, err := readSysctlAt(root, key); err == nil {
			t.Errorf("key %q accepted", key)
		}
	}
}

func TestReadSysctlReal(t *testing.T) {
	v, err := ReadSysctl("net/ipv4/conf/all/arp_ignore")
	if errors.Is(err, os.ErrNotExist) {
		t.Skipf("no /proc/sys/net/ipv4 here: %v", err)
	}
	if err != nil || v == "" || strings.ContainsAny(v, " \n") {
		t.Errorf("ReadSysctl(all/arp_ignore) = %q, %v", v, err)
	}
}

func TestSysctlName(t *testing.T) {
	for key, want := range map[string]string{
		"net/ipv4/conf/all/arp_ignore":       "net.ipv4.conf.all.arp_ignore",
		"net/ipv4/conf/eth0.100/rp_filter":   "net.ipv4.conf.eth0/100.rp_filter",
		"net/ipv4/conf/gvstun0/arp_announce": "net.ipv4.conf.gvstun0.arp_announce",
	} {
		if got := SysctlName(key); got != want {
			t.Errorf("SysctlName(%s) = %s, want %s", key, got, want)
		}
	}
}
