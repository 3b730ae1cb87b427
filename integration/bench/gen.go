package main

import (
	"flag"
	"fmt"
	"io"
	"net"
	"net/netip"
)

// genCommand is the hidden subcommand that runs the Go generator: the
// bench starts its own binary with it inside the generator's namespace,
// pinned to the generator's CPU, when trafgen is not installed.
const genCommand = "gen"

// genBatch is the number of frames per Link.Write (one sendmmsg(2)): the
// dataplane's own batch size, which amortises the system call.
const genBatch = 64

// genMain is `bench gen -iface IF -dst-mac MAC -src-mac MAC -dst VIP:PORT
// -flows N`: it sends the flows' frames round robin, as fast as it can,
// until SIGINT or SIGTERM.
func genMain(args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet("bench gen", flag.ContinueOnError)
	fs.SetOutput(stderr)
	iface := fs.String("iface", "eth0", "interface to send from")
	dstMAC := fs.String("dst-mac", "", "destination MAC (the director's)")
	srcMAC := fs.String("src-mac", "", "source MAC (the generator's)")
	dst := fs.String("dst", "", "destination VIP:port")
	flows := fs.Int("flows", 1024, "number of flows")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	var t Traffic
	var err error
	if t.DstMAC, err = net.ParseMAC(*dstMAC); err == nil {
		if t.SrcMAC, err = net.ParseMAC(*srcMAC); err == nil {
			t.Dst, err = netip.ParseAddrPort(*dst)
		}
	}
	if err != nil {
		fmt.Fprintf(stderr, "bench gen: %v\n", err)
		return 2
	}
	t.Flows = *flows
	frames, err := t.Frames()
	if err != nil {
		fmt.Fprintf(stderr, "bench gen: %v\n", err)
		return 2
	}
	sent, took, err := generate(*iface, frames)
	fmt.Fprintf(stderr, "bench gen: sent %d frames in %v (%.0f pps)\n", sent, took, float64(sent)/max(took.Seconds(), 1e-9))
	if err != nil {
		fmt.Fprintf(stderr, "bench gen: %v\n", err)
		return 1
	}
	return 0
}
