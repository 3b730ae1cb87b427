package arpctl

import (
	"errors"
	"fmt"
	"os"
	"path"
	"strings"
	"sync"
)

// procSys is where the kernel exposes sysctls (proc(5), /proc/sys).
const procSys = "/proc/sys"

// maxSysctlValue bounds how much of a sysctl file is read. The values in
// the tables here are single integers; 256 bytes also fits any multi-field
// sysctl a caller might add, such as ip_local_port_range.
const maxSysctlValue = 256

// Sysctl is one entry of a declarative sysctl table: the key as a path
// under /proc/sys (for example "net/ipv4/conf/all/arp_ignore"), the value
// to write, and why it is needed.
type Sysctl struct{ Key, Value, Why string }

// Values and reasons of the real-server table. ip-sysctl.rst defines the
// effective value of each of these for an interface as the maximum of
// conf/all and conf/<interface>, so both are set.
const (
	arpIgnoreReal   = "1" // reply only for addresses configured on the receiving interface
	arpAnnounceReal = "2" // always use the best local address of the outgoing interface
	rpFilterReal    = "0" // no source validation by reverse path

	whyArpIgnore = "answer ARP only for addresses on the receiving interface, " +
		"so the VIP on lo never answers and only the director owns it (LVS DR/TUN real server)"
	whyArpAnnounce = "never use the VIP on lo as the sender address of ARP requests, " +
		"so neighbours never learn this host's MAC for the VIP"
	whyRPFilter = "packets for the VIP may arrive on an interface (the tunnel device in TUN mode) " +
		"that is not the reverse path to the client; strict reverse-path filtering would drop them"
	whyRPFilterDefault = "interfaces created later, such as the tunnel device, start with " +
		"reverse-path filtering off"
)

// RealServerSysctls returns the sysctl table for an LVS real server:
// arp_ignore=1 and arp_announce=2 on "all" and on each given interface,
// and rp_filter=0 on "all", "default" and each given interface (TUN mode
// needs it on the tunnel device). Empty names and "all"/"default" among
// ifaces are skipped; duplicates appear once.
func RealServerSysctls(ifaces ...string) []Sysctl {
	names := make([]string, 0, len(ifaces))
	seen := map[string]bool{"": true, "all": true, "default": true}
	for _, ifname := range ifaces {
		if !seen[ifname] {
			seen[ifname] = true
			names = append(names, ifname)
		}
	}
	conf := func(dev, key string) string { return "net/ipv4/conf/" + dev + "/" + key }

	t := make([]Sysctl, 0, 5+3*len(names))
	t = append(t,
		Sysctl{conf("all", "arp_ignore"), arpIgnoreReal, whyArpIgnore},
		Sysctl{conf("all", "arp_announce"), arpAnnounceReal, whyArpAnnounce},
	)
	for _, n := range names {
		t = append(t,
			Sysctl{conf(n, "arp_ignore"), arpIgnoreReal, whyArpIgnore},
			Sysctl{conf(n, "arp_announce"), arpAnnounceReal, whyArpAnnounce},
		)
	}
	t = append(t,
		Sysctl{conf("all", "rp_filter"), rpFilterReal, whyRPFilter},
		Sysctl{conf("default", "rp_filter"), rpFilterReal, whyRPFilterDefault},
	)
	for _, n := range names {
		t = append(t, Sysctl{conf(n, "rp_filter"), rpFilterReal, whyRPFilter})
	}
	return t
}

// Apply writes every entry of table under /proc/sys, in order, and returns
// a restore func that writes the previous values back in reverse order.
// Entries that already had the wanted value are left alone and are not
// restored. If an entry fails, the entries written so far are restored and
// the error is returned.
//
// Apply opens the files in the network namespace of the calling thread (net
// sysctls are per namespace) and keeps the changed ones open until restore,
// so restore writes into that same namespace from any thread. restore is
// safe to call more than once; calls after the first do nothing.
func Apply(table []Sysctl) (restore func() error, err error) {
	return apply(procSys, table)
}

// changed is a sysctl Apply wrote, with the file kept open to write the
// old value back.
type changed struct {
	key string
	old []byte
	f   *os.File
}

func apply(root string, table []Sysctl) (func() error, error) {
	var done []changed
	undo := func() error {
		var errs []error
		for i := len(done) - 1; i >= 0; i-- {
			c := done[i]
			if err := writeSysctl(c.f, c.old); err != nil {
				errs = append(errs, fmt.Errorf("arpctl: restore sysctl %s=%s: %w", c.key, strings.TrimSpace(string(c.old)), err))
			}
			if err := c.f.Close(); err != nil {
				errs = append(errs, fmt.Errorf("arpctl: restore sysctl %s: %w", c.key, err))
			}
		}
		done = nil
		return errors.Join(errs...)
	}

	for _, s := range table {
		c, wrote, err := applyOne(root, s)
		if err != nil {
			return nil, errors.Join(fmt.Errorf("arpctl: sysctl %s=%s: %w", s.Key, s.Value, err), undo())
		}
		if wrote {
			done = append(done, c)
		}
	}
	var once sync.Once
	var restoreErr error
	return func() error {
		once.Do(func() { restoreErr = undo() })
		return restoreErr
	}, nil
}

// applyOne writes s and reports whether it changed anything; if it did, the
// returned file stays open for the restore.
func applyOne(root string, s Sysctl) (c changed, wrote bool, err error) {
	clean := path.Clean(s.Key)
	if s.Key == "" || clean != s.Key || path.IsAbs(clean) || strings.HasPrefix(clean, "..") {
		return c, false, fmt.Errorf("key must be a clean relative path under %s", procSys)
	}
	f, err := os.OpenFile(root+"/"+clean, os.O_RDWR, 0)
	if err != nil {
		return c, false, err
	}
	buf := make([]byte, maxSysctlValue)
	n, err := f.ReadAt(buf, 0)
	if err != nil && n == 0 {
		f.Close()
		return c, false, fmt.Errorf("read: %w", err)
	}
	old := buf[:n]
	if strings.TrimSpace(string(old)) == s.Value {
		f.Close()
		return c, false, nil
	}
	if err := writeSysctl(f, []byte(s.Value+"\n")); err != nil {
		f.Close()
		return c, false, err
	}
	return changed{key: s.Key, old: old, f: f}, true, nil
}

// writeSysctl writes v at offset 0: with the kernel's default
// sysctl_writes_strict=1, a numeric value written anywhere else is ignored.
func writeSysctl(f *os.File, v []byte) error {
	_, err := f.WriteAt(v, 0)
	return err
}
