package afpacket

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"runtime"
	"testing"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// testNet is a network namespace gvsaf-<random> holding a veth pair
// gvsaf-a <-> gvsaf-b, both up, IPv6 off (so the kernel sends no router
// solicitations or MLD reports of its own). Everything is removed in
// t.Cleanup.
type testNet struct {
	name       string
	ns         netns.NsHandle
	a, b       string
	aMAC, bMAC net.HardwareAddr
}

func newTestNet(t testing.TB) *testNet {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: creates a network namespace, a veth pair and AF_PACKET sockets")
	}
	tn := &testNet{name: fmt.Sprintf("gvsaf-%08x", rand.Uint32()), a: "gvsaf-a", b: "gvsaf-b"}
	err := onLockedThread(func(orig netns.NsHandle) error {
		ns, err := netns.NewNamed(tn.name) // also moves this thread into it
		if err != nil {
			return fmt.Errorf("create namespace %s: %w", tn.name, err)
		}
		tn.ns = ns
		t.Cleanup(func() {
			tn.ns.Close()
			if err := netns.DeleteNamed(tn.name); err != nil {
				t.Errorf("delete namespace %s: %v", tn.name, err)
			}
		})
		for _, f := range []string{"/proc/sys/net/ipv6/conf/all/disable_ipv6", "/proc/sys/net/ipv6/conf/default/disable_ipv6"} {
			_ = os.WriteFile(f, []byte("1"), 0o644) // absent without IPv6: fine
		}
		la := netlink.NewLinkAttrs()
		la.Name = tn.a
		if err := netlink.LinkAdd(&netlink.Veth{LinkAttrs: la, PeerName: tn.b}); err != nil {
			return fmt.Errorf("add veth: %w", err)
		}
		for _, name := range []string{tn.a, tn.b} {
			l, err := netlink.LinkByName(name)
			if err != nil {
				return err
			}
			if err := netlink.LinkSetUp(l); err != nil {
				return err
			}
			if name == tn.a {
				tn.aMAC = l.Attrs().HardwareAddr
			} else {
				tn.bMAC = l.Attrs().HardwareAddr
			}
		}
		return nil
	})
	if errors.Is(err, unix.EPERM) {
		t.Skipf("cannot create network namespaces here (no CAP_SYS_ADMIN/CAP_NET_ADMIN?): %v", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	return tn
}

// do runs f on an OS thread inside the namespace. Sockets created there stay
// in the namespace after the thread leaves it.
func (tn *testNet) do(t testing.TB, f func() error) {
	t.Helper()
	err := onLockedThread(func(netns.NsHandle) error {
		if err := netns.Set(tn.ns); err != nil {
			return fmt.Errorf("enter namespace %s: %w", tn.name, err)
		}
		return f()
	})
	if err != nil {
		t.Fatal(err)
	}
}

// onLockedThread runs f on a fresh locked OS thread and moves the thread
// back to its original namespace afterwards; if that fails the thread stays
// locked and the runtime discards it when the goroutine ends.
func onLockedThread(f func(orig netns.NsHandle) error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			errc <- err
			return
		}
		defer orig.Close()
		ferr := f(orig)
		if err := netns.Set(orig); err != nil {
			errc <- fmt.Errorf("return to the original namespace: %w", err)
			return
		}
		runtime.UnlockOSThread()
		errc <- ferr
	}()
	return <-errc
}

// open opens a Link inside the namespace and closes it in t.Cleanup.
func (tn *testNet) open(t testing.TB, cfg Config) *Link {
	t.Helper()
	if cfg.BlockSize == 0 {
		cfg.BlockSize, cfg.NumBlocks = 1<<16, 8 // keep tests light
	}
	var l *Link
	tn.do(t, func() (err error) {
		l, err = Open(cfg)
		return err
	})
	t.Cleanup(func() { _ = l.Close() })
	return l
}
