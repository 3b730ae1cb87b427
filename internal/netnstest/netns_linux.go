package netnstest

import (
	"crypto/rand"
	"encoding/hex"
	"net"
	"os"
	"runtime"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
)

// RequireRoot skips the test without root.
func RequireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: creates network namespaces, veth pairs and packet sockets")
	}
}

// Name returns prefix + 4 random hex digits + suffix (at most 15 bytes for
// an interface name). Each package uses its own prefix so that its tests
// never collide with other packages' tests running concurrently.
func Name(t *testing.T, prefix, suffix string) string {
	t.Helper()
	var b [2]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatal(err)
	}
	return prefix + hex.EncodeToString(b[:]) + suffix
}

// NS is an unnamed network namespace that lives as long as the test.
type NS struct{ H netns.NsHandle }

// New creates a namespace, closed when the test ends; it skips the test
// when namespaces cannot be created.
func New(t *testing.T) *NS {
	t.Helper()
	runtime.LockOSThread()
	orig, err := netns.Get()
	if err != nil {
		runtime.UnlockOSThread()
		t.Fatalf("current netns: %v", err)
	}
	defer orig.Close()
	h, err := netns.New() // unshare(CLONE_NEWNET): this thread is now inside
	if err != nil {
		runtime.UnlockOSThread()
		t.Skipf("cannot create a network namespace: %v", err)
	}
	if err := netns.Set(orig); err != nil {
		// The thread is stuck in the new namespace: keep it locked so the
		// runtime discards it when this goroutine exits.
		h.Close()
		t.Fatalf("restore netns: %v", err)
	}
	runtime.UnlockOSThread()
	t.Cleanup(func() { h.Close() })
	return &NS{H: h}
}

// Do runs fn on an OS thread locked into the namespace. Sockets fn opens
// stay in the namespace; goroutines fn starts do not.
func (n *NS) Do(t *testing.T, fn func()) {
	t.Helper()
	runtime.LockOSThread()
	orig, err := netns.Get()
	if err != nil {
		runtime.UnlockOSThread()
		t.Fatalf("current netns: %v", err)
	}
	defer func() {
		if err := netns.Set(orig); err == nil {
			runtime.UnlockOSThread()
		}
		orig.Close()
	}()
	if err := netns.Set(n.H); err != nil {
		t.Fatalf("enter netns: %v", err)
	}
	fn()
}

// VethPair joins a (interface nameA, address addrA) and b (nameB, addrB)
// with a veth pair, sets both ends and both loopbacks up, and returns the
// two interfaces as seen inside their namespaces.
func VethPair(t *testing.T, a, b *NS, nameA, addrA, nameB, addrB string) (ifA, ifB *net.Interface) {
	t.Helper()
	a.Do(t, func() {
		veth := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: nameA}, PeerName: nameB}
		if err := netlink.LinkAdd(veth); err != nil {
			t.Fatalf("add veth: %v", err)
		}
		peer, err := netlink.LinkByName(nameB)
		if err != nil {
			t.Fatal(err)
		}
		if err := netlink.LinkSetNsFd(peer, int(b.H)); err != nil {
			t.Fatalf("move %s: %v", nameB, err)
		}
		ifA = LinkUp(t, nameA, addrA)
	})
	b.Do(t, func() { ifB = LinkUp(t, nameB, addrB) })
	a.Do(t, func() { WaitOperUp(t, nameA) })
	b.Do(t, func() { WaitOperUp(t, nameB) })
	return ifA, ifB
}

// WaitOperUp waits until name is operationally up. Until linkwatch marks a
// new veth up the kernel also leaves its qdisc inactive, and frames sent
// meanwhile vanish without an error.
func WaitOperUp(t *testing.T, name string) {
	t.Helper()
	for i := 0; i < 200; i++ {
		l, err := netlink.LinkByName(name)
		if err != nil {
			t.Fatal(err)
		}
		if l.Attrs().OperState == netlink.OperUp {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("%s not operationally up after 2s", name)
}

// LinkUp sets lo and name up, adds addr (CIDR) to name if not empty, and
// returns the interface. It runs inside the namespace.
func LinkUp(t *testing.T, name, addr string) *net.Interface {
	t.Helper()
	for _, n := range []string{"lo", name} {
		l, err := netlink.LinkByName(n)
		if err != nil {
			t.Fatal(err)
		}
		if err := netlink.LinkSetUp(l); err != nil {
			t.Fatalf("%s up: %v", n, err)
		}
		if n == name && addr != "" {
			a, err := netlink.ParseAddr(addr)
			if err != nil {
				t.Fatal(err)
			}
			if err := netlink.AddrAdd(l, a); err != nil {
				t.Fatalf("address %s on %s: %v", addr, n, err)
			}
		}
	}
	ifi, err := net.InterfaceByName(name)
	if err != nil {
		t.Fatal(err)
	}
	return ifi
}

// Go runs fn on a new goroutine locked into the namespace, for calls
// that block, and returns a channel that yields fn's error.
func (n *NS) Go(fn func() error) <-chan error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			runtime.UnlockOSThread()
			errc <- err
			return
		}
		defer orig.Close()
		if err := netns.Set(n.H); err != nil {
			runtime.UnlockOSThread()
			errc <- err
			return
		}
		err = fn()
		if netns.Set(orig) == nil {
			runtime.UnlockOSThread()
		} // else the runtime discards the thread when this goroutine ends
		errc <- err
	}()
	return errc
}
