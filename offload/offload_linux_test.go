package offload

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"testing"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

func TestInvalidArguments(t *testing.T) {
	if _, err := Get("lo", 0); !errors.Is(err, errInvalidFeature) {
		t.Errorf("Get(lo, 0) error = %v, want errInvalidFeature", err)
	}
	if err := Set("lo", LRO+1, true); !errors.Is(err, errInvalidFeature) {
		t.Errorf("Set(lo, 7) error = %v, want errInvalidFeature", err)
	}
	if _, err := Get("", GRO); err == nil {
		t.Error("Get with an empty interface name succeeded")
	}
	if _, err := Get("0123456789abcdef", GRO); err == nil {
		t.Error("Get with a 16-byte interface name succeeded")
	}
}

// TestFeatures toggles every feature on a veth in a fresh namespace and reads
// it back, through this package and, when the binary exists, ethtool -k.
func TestFeatures(t *testing.T) {
	ns := newVethNS(t)
	ethtool := haveEthtool(t)

	in(t, ns.handle, func() {
		if _, err := Get("gvsnone0", GRO); !errors.Is(err, unix.ENODEV) {
			t.Errorf("Get on a missing interface: error = %v, want ENODEV", err)
		}

		// veth can change these both ways.
		for _, f := range []Feature{TxChecksum, ScatterGather, TSO, GSO, GRO} {
			orig := mustGet(t, f)
			for _, want := range []bool{!orig, orig} {
				if err := Set(vethName, f, want); err != nil {
					t.Fatalf("Set(%s, %v): %v", f, want, err)
				}
				if got := mustGet(t, f); got != want {
					t.Errorf("after Set(%s, %v): Get = %v", f, want, got)
				}
				if ethtool {
					if got := ethtoolK(t, ns.name)[f.String()]; got != onOff(want) {
						t.Errorf("after Set(%s, %v): ethtool -k says %q", f, want, got)
					}
				}
			}
		}

		// LRO is fixed off on veth: asking for off succeeds, on does not.
		if mustGet(t, LRO) {
			t.Fatal("LRO is on for a veth")
		}
		if err := Set(vethName, LRO, false); err != nil {
			t.Errorf("Set(LRO, false) on veth: %v", err)
		}
		if err := Set(vethName, LRO, true); !errors.Is(err, ErrNotSupported) {
			t.Errorf("Set(LRO, true) on veth: error = %v, want ErrNotSupported", err)
		}
		if ethtool && ethtoolK(t, ns.name)[LRO.String()] != "off [fixed]" {
			t.Errorf("ethtool -k does not show LRO fixed off")
		}

		// TSO needs scatter-gather: the kernel records the request but
		// applies it only once SG is back on.
		mustSet(t, TSO, false)
		mustSet(t, ScatterGather, false)
		if err := Set(vethName, TSO, true); !errors.Is(err, ErrNotApplied) {
			t.Errorf("Set(TSO, true) with SG off: error = %v, want ErrNotApplied", err)
		} else {
			t.Logf("Set(TSO, true) with SG off: %v", err)
		}
		mustSet(t, ScatterGather, true)
		if !mustGet(t, TSO) {
			t.Error("TSO stayed off after SG came back on")
		}
	})
}

func TestDisableForCapture(t *testing.T) {
	ns := newVethNS(t)
	in(t, ns.handle, func() {
		mustSet(t, GRO, true)
		restore, err := DisableForCapture(vethName)
		if err != nil {
			t.Fatalf("DisableForCapture: %v", err)
		}
		if mustGet(t, GRO) || mustGet(t, LRO) {
			t.Error("GRO or LRO still on after DisableForCapture")
		}
		if err := restore(); err != nil {
			t.Fatalf("restore: %v", err)
		}
		if !mustGet(t, GRO) {
			t.Error("restore did not turn GRO back on")
		}
		if err := restore(); err != nil {
			t.Errorf("second restore: %v", err)
		}

		// A feature that was off stays off after restore.
		mustSet(t, GRO, false)
		restore, err = DisableForCapture(vethName)
		if err != nil {
			t.Fatalf("DisableForCapture: %v", err)
		}
		if err := restore(); err != nil {
			t.Fatalf("restore: %v", err)
		}
		if mustGet(t, GRO) {
			t.Error("restore turned on GRO, which was off before")
		}

		if _, err := DisableForCapture("gvsnone0"); !errors.Is(err, unix.ENODEV) {
			t.Errorf("DisableForCapture on a missing interface: error = %v, want ENODEV", err)
		}
	})
}

func TestDisableAll(t *testing.T) {
	ns := newVethNS(t)
	in(t, ns.handle, func() {
		mustSet(t, GRO, true)
		sg := mustGet(t, ScatterGather)
		if err := DisableAll(vethName); err != nil {
			t.Fatalf("DisableAll: %v", err)
		}
		for _, f := range allOff {
			if mustGet(t, f) {
				t.Errorf("%s still on after DisableAll", f)
			}
		}
		if got := mustGet(t, ScatterGather); got != sg {
			t.Errorf("DisableAll changed scatter-gather to %v", got)
		}
		if haveEthtool(t) {
			k := ethtoolK(t, ns.name)
			for _, f := range allOff {
				if v := k[f.String()]; !strings.HasPrefix(v, "off") {
					t.Errorf("after DisableAll, ethtool -k says %s: %q", f, v)
				}
			}
			// Sub-features the legacy ETHTOOL_STSO would miss.
			if v := k["tx-tcp-accecn-segmentation"]; v != "" && !strings.HasPrefix(v, "off") {
				t.Errorf("after DisableAll, tx-tcp-accecn-segmentation: %q", v)
			}
		}
		if err := DisableAll("gvsnone0"); !errors.Is(err, unix.ENODEV) {
			t.Errorf("DisableAll on a missing interface: error = %v, want ENODEV", err)
		}
	})
}

const vethName = "gvsoff0"

type testNS struct {
	name   string
	handle netns.NsHandle
}

// newVethNS creates a named network namespace holding the veth pair
// gvsoff0/gvsoff1, removed when the test ends. It skips without root.
func newVethNS(t *testing.T) testNS {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root to create network namespaces and change offloads")
	}
	name := fmt.Sprintf("gvslaboff%06d", rand.IntN(1000000))

	// NewNamed switches the calling thread into the new namespace: do it on
	// a thread of its own and switch back.
	type result struct {
		h   netns.NsHandle
		err error
	}
	done := make(chan result, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			runtime.UnlockOSThread()
			done <- result{err: err}
			return
		}
		defer orig.Close()
		h, err := netns.NewNamed(name)
		if rerr := netns.Set(orig); rerr != nil {
			done <- result{err: errors.Join(err, rerr)} // thread stays locked and dies
			return
		}
		runtime.UnlockOSThread()
		done <- result{h, err}
	}()
	r := <-done
	if r.err != nil {
		t.Fatalf("create namespace %s: %v", name, r.err)
	}
	t.Cleanup(func() {
		r.h.Close()
		if err := netns.DeleteNamed(name); err != nil {
			t.Errorf("delete namespace %s: %v", name, err)
		}
	})

	nl, err := netlink.NewHandleAt(r.h)
	if err != nil {
		t.Fatalf("netlink handle in %s: %v", name, err)
	}
	defer nl.Close()
	veth := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: vethName, MTU: 1500}, PeerName: "gvsoff1"}
	if err := nl.LinkAdd(veth); err != nil {
		t.Fatalf("add veth in %s: %v", name, err)
	}
	return testNS{name: name, handle: r.h}
}

// in runs fn on the test goroutine, locked to its thread and switched into
// ns. fn may call t.Fatal: the deferred restore still runs.
func in(t *testing.T, ns netns.NsHandle, fn func()) {
	t.Helper()
	runtime.LockOSThread()
	orig, err := netns.Get()
	if err != nil {
		runtime.UnlockOSThread()
		t.Fatalf("current namespace: %v", err)
	}
	defer orig.Close()
	if err := netns.Set(ns); err != nil {
		runtime.UnlockOSThread()
		t.Fatalf("enter namespace: %v", err)
	}
	defer func() {
		if err := netns.Set(orig); err != nil {
			t.Errorf("restore namespace: %v (thread stays locked)", err)
			return
		}
		runtime.UnlockOSThread()
	}()
	fn()
}

func mustGet(t *testing.T, f Feature) bool {
	t.Helper()
	on, err := Get(vethName, f)
	if err != nil {
		t.Fatal(err)
	}
	return on
}

func mustSet(t *testing.T, f Feature, on bool) {
	t.Helper()
	if err := Set(vethName, f, on); err != nil {
		t.Fatal(err)
	}
}

func haveEthtool(t *testing.T) bool {
	if _, err := exec.LookPath("ethtool"); err != nil {
		t.Log("ethtool binary not found: skipping the cross-check with ethtool -k")
		return false
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Log("ip binary not found: skipping the cross-check with ethtool -k")
		return false
	}
	return true
}

// ethtoolK returns ethtool -k's "name: value" lines for vethName in the
// namespace ns.
func ethtoolK(t *testing.T, ns string) map[string]string {
	t.Helper()
	out, err := exec.Command("ip", "netns", "exec", ns, "ethtool", "-k", vethName).Output()
	if err != nil {
		t.Fatalf("ethtool -k %s: %v", vethName, err)
	}
	m := make(map[string]string)
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		name, value, ok := strings.Cut(strings.TrimSpace(sc.Text()), ": ")
		if ok {
			m[name] = value
		}
	}
	return m
}
