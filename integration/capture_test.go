package integration

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"

	"github.com/gvs-lb/gvs/control/config"
	"github.com/gvs-lb/gvs/integration/scenario"
)

// TestCapture runs gvsadm capture against a gvsd forwarding in NAT mode
// while connections go through it: the pcapng file has each client frame
// as it arrived (to the VIP) and as gvsd sent it (to the real server, from
// the director), and each reply, with the verdict and the real in the
// packet comments; tcpdump reads the file and the same capture through a
// pipe; without -w gvsadm prints a line a frame.
func TestCapture(t *testing.T) {
	l := needLab(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	dir := t.TempDir()
	o := scenario.Options{Gvsd: []string{bins.gvsd}, Realserver: []string{bins.realserver}, Dir: dir, Logf: t.Logf}
	env, err := scenario.Setup(ctx, l, config.NAT, o, "")
	if err != nil {
		t.Fatal(err)
	}
	defer env.Close()
	vip := scenario.VIP.String()

	// capture runs gvsadm capture with args while TCP echoes go through
	// the VIP, until it exits, and returns its standard output.
	capture := func(args ...string) []byte {
		t.Helper()
		cctx, ccancel := context.WithTimeout(ctx, 30*time.Second)
		defer ccancel()
		cmd := exec.CommandContext(cctx, bins.gvsadm, append([]string{"--socket", env.SocketPath, "capture"}, args...)...)
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
				echoOnce(ctx, t, l.Client, l.Client.Addr)
			}
		}
	}

	// A pcapng file of 6 TCP frames through the service.
	file := filepath.Join(dir, "gvs.pcapng")
	capture("-w", file, "-c", "6", "-t", vip+":80")
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
		reals[rs.Addr.String()] = true
	}
	var ins, outs, toVIP, toReal, fromReal, toClient int
	for {
		data, ci, opts, err := r.ReadPacketDataWithOptions()
		if err != nil {
			break
		}
		p := gopacket.NewPacket(data, layers.LayerTypeEthernet, gopacket.Default)
		ip, _ := p.Layer(layers.LayerTypeIPv4).(*layers.IPv4)
		eth, _ := p.Layer(layers.LayerTypeEthernet).(*layers.Ethernet)
		if ip == nil || eth == nil || len(opts.Comments) != 1 || !strings.Contains(opts.Comments[0], "verdict=forward") ||
			!strings.Contains(opts.Comments[0], "service=tcp:"+vip+":80") || !strings.Contains(opts.Comments[0], "forward=nat") {
			t.Fatalf("packet on interface %d: comments %q, %v", ci.InterfaceIndex, opts.Comments, p)
		}
		switch ci.InterfaceIndex {
		case 0:
			ins++
			if ip.DstIP.String() == vip {
				toVIP++
			}
			if ip.DstIP.String() == l.Client.Addr.String() {
				fromReal++ // a reply as the real sent it
			}
		case 1:
			outs++
			if bytes.Equal(eth.SrcMAC, l.Director.MAC) {
				if reals[ip.DstIP.String()] {
					toReal++
				}
				if ip.SrcIP.String() == vip {
					toClient++
				}
			}
		}
	}
	if ins != 6 || outs != 6 || toVIP == 0 || toReal != toVIP || fromReal == 0 || toClient != fromReal {
		t.Fatalf("pcapng: %d in, %d out; %d to the VIP sent on to a real %d times; %d replies sent on from the VIP %d times",
			ins, outs, toVIP, toReal, fromReal, toClient)
	}

	if tcpdump, err := exec.LookPath("tcpdump"); err == nil {
		out, err := exec.CommandContext(ctx, tcpdump, "-n", "-r", file).CombinedOutput()
		if err != nil || strings.Count(string(out), " IP ") != 12 {
			t.Fatalf("tcpdump -r %s: %v\n%s", file, err, out)
		}
		// -w - into tcpdump -r -.
		piped := capture("-w", "-", "-c", "2", "--proto", "tcp")
		cmd := exec.CommandContext(ctx, tcpdump, "-n", "-r", "-")
		cmd.Stdin = bytes.NewReader(piped)
		out, err = cmd.CombinedOutput()
		if err != nil || strings.Count(string(out), " IP ") != 4 {
			t.Fatalf("gvsadm capture -w - | tcpdump -r -: %v\n%s", err, out)
		}
	} else {
		t.Log("no tcpdump: the pcapng file is checked with pcapgo only")
	}

	// Lines, one a frame.
	lines := strings.Split(strings.TrimSpace(string(capture("-c", "3", "--host", l.Client.Addr.String()))), "\n")
	if len(lines) != 3 {
		t.Fatalf("capture lines: %q", lines)
	}
	for _, line := range lines {
		if !strings.Contains(line, "tcp ") || !strings.Contains(line, " forward -> ") || !strings.Contains(line, "(nat) | out tcp ") {
			t.Errorf("capture line %q", line)
		}
	}
	// A second capture at once is refused.
	c1 := exec.CommandContext(ctx, bins.gvsadm, "--socket", env.SocketPath, "capture", "-G", "3")
	if err := c1.Start(); err != nil {
		t.Fatal(err)
	}
	defer c1.Wait()
	time.Sleep(300 * time.Millisecond)
	out, err := exec.CommandContext(ctx, bins.gvsadm, "--socket", env.SocketPath, "capture", "-c", "1").CombinedOutput()
	if err == nil || !strings.Contains(string(out), "already running") {
		t.Errorf("a second capture: %v, %q", err, out)
	}
}
