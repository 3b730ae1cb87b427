package integration

import (
	"bytes"
	"context"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"

	"github.com/gvs-lb/gvs/integration/lab"
	"github.com/gvs-lb/gvs/integration/scenario"
)

// capture6RealPort is the NAT reals' port of TestCaptureIPv6's service.
const capture6RealPort = 8080

// TestCaptureIPv6 runs gvsadm capture against a gvsd forwarding an IPv6
// NAT service while connections go through it: with -t [VIP]:port the
// pcapng file has each IPv6 client frame as it arrived (to the VIP) and as
// gvsd sent it (to a real's IPv6 address), and each reply, with the
// service in brackets and the real in the comments; --host and
// --real-server select by IPv6 address; the lines print the addresses in
// brackets.
func TestCaptureIPv6(t *testing.T) {
	l := needLabWith(t, lab.Options{IPv6: true})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	dir := t.TempDir()
	if err := l.SetGateway(l.Director.Addr6, l.Reals...); err != nil {
		t.Fatal(err)
	}
	for _, r := range l.Reals {
		e, err := r.StartEcho("tcp", netip.AddrPortFrom(netip.IPv6Unspecified(), capture6RealPort))
		if err != nil {
			t.Fatal(err)
		}
		defer e.Close()
	}
	vip := netip.AddrPortFrom(lab.VIP6, 80)
	var b strings.Builder
	fmt.Fprintf(&b, "[director]\ninterface = %q\nworkers = 2\n\n[[service]]\naddress = %q\nscheduler = \"rr\"\nforward = \"nat\"\n", l.Director.Iface, vip)
	for _, r := range l.Reals {
		fmt.Fprintf(&b, "  [[service.real]]\n  address = %q\n", netip.AddrPortFrom(r.Addr6, capture6RealPort))
	}
	cfgPath, logPath, socket := filepath.Join(dir, "gvs.toml"), filepath.Join(dir, "gvsd.log"), filepath.Join(dir, "gvsd.sock")
	if err := os.WriteFile(cfgPath, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	gvsd, err := scenario.Start(ctx, l.Director, logPath, []string{bins.gvsd, "-config", cfgPath, "-socket", socket, "-log-json"})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		gvsd.Stop()
		if t.Failed() {
			t.Logf("gvsd log:\n%s", gvsd.Log())
		}
	}()
	if err := gvsd.WaitLog(ctx, "gvsd started", 15*time.Second); err != nil {
		t.Fatalf("gvsd did not start: %v", err)
	}
	waitReady(ctx, t, socket, len(l.Reals))
	echo := func() {
		c, err := l.Client.DialTCP(ctx, vip)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		roundTrip(t, c, 64)
	}
	echo()

	// capture runs gvsadm capture with args while TCP echoes go through
	// the VIP, until it exits, and returns its standard output.
	capture := func(args ...string) []byte {
		t.Helper()
		cctx, ccancel := context.WithTimeout(ctx, 30*time.Second)
		defer ccancel()
		cmd := exec.CommandContext(cctx, bins.gvsadm, append([]string{"--socket", socket, "capture"}, args...)...)
		var out, errb bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errb
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		for {
			select {
			case err := <-done:
				if err != nil {
					t.Fatalf("gvsadm capture %v: %v\n%s", args, err, errb.String())
				}
				if !strings.Contains(errb.String(), "stopped by count") {
					t.Errorf("gvsadm capture %v said %q", args, errb.String())
				}
				return out.Bytes()
			case <-time.After(100 * time.Millisecond):
				echo()
			}
		}
	}

	file := filepath.Join(dir, "gvs6.pcapng")
	capture("-w", file, "-c", "6", "-t", vip.String())
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r, err := pcapgo.NewNgReader(f, pcapgo.DefaultNgReaderOptions)
	if err != nil {
		t.Fatal(err)
	}
	reals := map[string]bool{}
	for _, rs := range l.Reals {
		reals[rs.Addr6.String()] = true
	}
	var ins, outs, toVIP, toReal, fromReal, toClient int
	for {
		data, ci, opts, err := r.ReadPacketDataWithOptions()
		if err != nil {
			break
		}
		p := gopacket.NewPacket(data, layers.LayerTypeEthernet, gopacket.Default)
		ip, _ := p.Layer(layers.LayerTypeIPv6).(*layers.IPv6)
		if ip == nil || len(opts.Comments) != 1 || !strings.Contains(opts.Comments[0], "verdict=forward") ||
			!strings.Contains(opts.Comments[0], "service=tcp:"+vip.String()) || !strings.Contains(opts.Comments[0], "forward=nat") ||
			!strings.Contains(opts.Comments[0], "real=[") {
			t.Fatalf("packet on interface %d: comments %q, %v", ci.InterfaceIndex, opts.Comments, p)
		}
		switch ci.InterfaceIndex {
		case 0:
			ins++
			if ip.DstIP.String() == lab.VIP6.String() {
				toVIP++
			}
			if ip.DstIP.String() == l.Client.Addr6.String() {
				fromReal++
			}
		case 1:
			outs++
			if reals[ip.DstIP.String()] {
				toReal++
			}
			if ip.SrcIP.String() == lab.VIP6.String() {
				toClient++
			}
		}
	}
	if ins != 6 || outs != 6 || toVIP == 0 || toReal != toVIP || fromReal == 0 || toClient != fromReal {
		t.Fatalf("pcapng: %d in, %d out; %d to the VIP sent on to a real %d times; %d replies sent on from the VIP %d times",
			ins, outs, toVIP, toReal, fromReal, toClient)
	}
	if tcpdump, err := exec.LookPath("tcpdump"); err == nil {
		out, err := exec.CommandContext(ctx, tcpdump, "-n", "-r", file).CombinedOutput()
		if err != nil || strings.Count(string(out), " IP6 ") != 12 {
			t.Fatalf("tcpdump -r %s: %v\n%s", file, err, out)
		}
	}

	// Lines, selected by the client's IPv6 address, then by a real's.
	lines := strings.Split(strings.TrimSpace(string(capture("-c", "3", "--host", l.Client.Addr6.String()))), "\n")
	if len(lines) != 3 {
		t.Fatalf("capture lines: %q", lines)
	}
	for _, line := range lines {
		if !strings.Contains(line, "tcp ["+l.Client.Addr6.String()+"]:") && !strings.Contains(line, " > ["+l.Client.Addr6.String()+"]:") ||
			!strings.Contains(line, " forward -> [") || !strings.Contains(line, "(nat) | out tcp [") {
			t.Errorf("capture line %q", line)
		}
	}
	rs1 := netip.AddrPortFrom(l.Reals[0].Addr6, capture6RealPort).String()
	for _, line := range strings.Split(strings.TrimSpace(string(capture("-c", "2", "-r", rs1))), "\n") {
		if !strings.Contains(line, " -> "+rs1+" (nat)") {
			t.Errorf("capture -r %s line %q", rs1, line)
		}
	}
}
