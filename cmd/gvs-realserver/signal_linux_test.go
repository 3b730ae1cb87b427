package main

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"io"
	"net"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
)

// TestSignal runs the command in a fresh network namespace, waits until it
// is ready, stops it with SIGTERM and checks it cleaned up.
func TestSignal(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: creates a network namespace and changes its addresses and sysctls")
	}
	var b [2]byte
	rand.Read(b[:])
	ifname := "gvsrs" + hex.EncodeToString(b[:]) + "c"
	const vip = "10.204.0.100"

	runtime.LockOSThread()
	orig, err := netns.Get()
	if err != nil {
		runtime.UnlockOSThread()
		t.Fatal(err)
	}
	ns, err := netns.New() // this thread is now in ns, and so is every child it starts
	if err != nil {
		runtime.UnlockOSThread()
		orig.Close()
		t.Skipf("cannot create a network namespace: %v", err)
	}
	defer func() {
		ns.Close()
		if err := netns.Set(orig); err != nil {
			// Stay locked: the runtime discards the thread with this goroutine.
			t.Errorf("restore netns: %v", err)
		} else {
			runtime.UnlockOSThread()
		}
		orig.Close()
	}()

	veth := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: ifname}, PeerName: ifname + "p"}
	if err := netlink.LinkAdd(veth); err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"lo", ifname, ifname + "p"} {
		l, err := netlink.LinkByName(n)
		if err != nil {
			t.Fatal(err)
		}
		if err := netlink.LinkSetUp(l); err != nil {
			t.Fatal(err)
		}
	}
	arpIgnore := "/proc/sys/net/ipv4/conf/" + ifname + "/arp_ignore"
	before, err := os.ReadFile(arpIgnore)
	if err != nil {
		t.Fatal(err)
	}

	cmd := exec.Command(os.Args[0], "-vip", vip, "-mode", "dr", "-interface", ifname)
	cmd.Env = append(os.Environ(), asMainEnv+"=1")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lines := make(chan string, 100)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			lines <- sc.Text()
		}
		io.Copy(io.Discard, stderr)
	}()
	var log []string
	waitFor := func(substr string) {
		t.Helper()
		timeout := time.After(5 * time.Second)
		for {
			select {
			case l, ok := <-lines:
				if !ok {
					t.Fatalf("gvs-realserver ended before logging %q:\n%s", substr, strings.Join(log, "\n"))
				}
				log = append(log, l)
				if strings.Contains(l, substr) {
					return
				}
			case <-timeout:
				cmd.Process.Kill()
				t.Fatalf("no %q within 5s:\n%s", substr, strings.Join(log, "\n"))
			}
		}
	}
	waitFor("realserver: ready")

	if !hasAddr(t, "lo", vip) {
		t.Errorf("VIP %s not on lo while running", vip)
	}
	if got, _ := os.ReadFile(arpIgnore); strings.TrimSpace(string(got)) != "1" {
		t.Errorf("arp_ignore on %s = %q while running, want 1", ifname, got)
	}

	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	waitFor("realserver: stopping")
	for l := range lines {
		log = append(log, l)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("gvs-realserver after SIGTERM: %v\n%s", err, strings.Join(log, "\n"))
	}
	if hasAddr(t, "lo", vip) {
		t.Errorf("VIP %s still on lo after exit", vip)
	}
	if got, _ := os.ReadFile(arpIgnore); !bytes.Equal(got, before) {
		t.Errorf("arp_ignore on %s = %q after exit, want %q", ifname, got, before)
	}
}

func hasAddr(t *testing.T, ifname, ip string) bool {
	t.Helper()
	l, err := netlink.LinkByName(ifname)
	if err != nil {
		t.Fatal(err)
	}
	addrs, err := netlink.AddrList(l, netlink.FAMILY_V4)
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range addrs {
		if a.IP.Equal(net.ParseIP(ip)) {
			return true
		}
	}
	return false
}
