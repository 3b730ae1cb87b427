package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/gvs-lb/gvs/control/config"
	"github.com/gvs-lb/gvs/integration/lab"
	"github.com/gvs-lb/gvs/integration/scenario"
)

const demoPicture = `gvs demo: a throwaway lab of network namespaces

  client 10.10.0.2 ── router 10.10.0.1 | 10.20.0.1 ── LAN bridge ─┬─ director 10.20.0.2 (gvsd, VIP 10.20.0.100)
         fd00:10::2        fd00:10::1 | fd00:20::1                ├─ rs1 10.20.0.11  fd00:20::11
                                                                 └─ rs2 10.20.0.12  fd00:20::12
                                                   (director fd00:20::2, VIP fd00:20::100)

Services: tcp VIP:80 and udp VIP:53, scheduler rr, over rs1 and rs2, in IPv4 and in IPv6.
Each mode: TCP connections echo random bytes, UDP datagrams echo from new source ports.
`

// demoMain builds the lab, runs every forwarding method in it and tears
// it down, also on Ctrl-C. It exits non-zero if any check failed.
func demoMain(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("gvsd demo", flag.ContinueOnError)
	fs.SetOutput(stderr)
	modes := fs.String("modes", "dr,tun,nat,fullnat", "forwarding methods to run, in order")
	families := fs.String("families", "4,6", "address families to run each method in, in order: 4, 6 or both")
	prefix := fs.String("prefix", "gvs", "network namespace name prefix")
	keep := fs.Bool("keep-logs", false, "keep the directory with configs, logs and captures")
	verbose := fs.Bool("v", false, "print gvsd's log of each mode")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if os.Geteuid() != 0 {
		fmt.Fprintln(stderr, "gvsd demo: needs root to create network namespaces (try: sudo go run ./cmd/gvsd demo)")
		return 1
	}
	var forwards []config.Forward
	for _, m := range strings.Split(*modes, ",") {
		f, err := config.ParseForward(strings.TrimSpace(m))
		if err != nil {
			fmt.Fprintf(stderr, "gvsd demo: -modes: %v\n", err)
			return 2
		}
		forwards = append(forwards, f)
	}
	var v6s []bool
	for _, fam := range strings.Split(*families, ",") {
		switch strings.TrimSpace(fam) {
		case "4":
			v6s = append(v6s, false)
		case "6":
			v6s = append(v6s, true)
		default:
			fmt.Fprintf(stderr, "gvsd demo: -families: %q is not 4 or 6\n", fam)
			return 2
		}
	}
	exe, err := os.Executable()
	if err != nil {
		fmt.Fprintf(stderr, "gvsd demo: %v\n", err)
		return 1
	}
	dir, err := os.MkdirTemp("", "gvs-demo-")
	if err != nil {
		fmt.Fprintf(stderr, "gvsd demo: %v\n", err)
		return 1
	}
	if !*keep {
		defer os.RemoveAll(dir)
	}

	ctx, cancel := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer cancel()

	fmt.Fprint(stdout, demoPicture)
	logf := func(format string, a ...any) { fmt.Fprintf(stdout, "  "+format+"\n", a...) }
	l, err := lab.New(lab.Options{Prefix: *prefix, IPv6: slices.Contains(v6s, true)})
	if err != nil {
		fmt.Fprintf(stderr, "gvsd demo: building the lab: %v\n", err)
		return 1
	}
	defer func() {
		if err := l.Close(); err != nil {
			fmt.Fprintf(stderr, "gvsd demo: tearing the lab down: %v\n", err)
		}
		fmt.Fprintln(stdout, "lab torn down")
	}()

	failed, runs := 0, 0
	for _, v6 := range v6s {
		for _, f := range forwards {
			if ctx.Err() != nil {
				fmt.Fprintln(stdout, "interrupted")
				return 130
			}
			runs++
			if !runMode(ctx, stdout, l, f, v6, exe, dir, logf, *verbose) {
				failed++
			}
		}
	}
	fmt.Fprintln(stdout)
	if failed > 0 {
		fmt.Fprintf(stdout, "%d of %d runs FAILED", failed, runs)
		if *keep {
			fmt.Fprintf(stdout, " (logs and captures in %s)", dir)
		}
		fmt.Fprintln(stdout)
		return 1
	}
	fmt.Fprintf(stdout, "all %d runs passed (%d modes, %d families)\n", runs, len(forwards), len(v6s))
	return 0
}

// runMode runs forwarding method f in one family on l and prints what it
// saw; it reports whether every check passed.
func runMode(ctx context.Context, stdout io.Writer, l *lab.Lab, f config.Forward, v6 bool, exe, dir string, logf func(string, ...any), verbose bool) bool {
	family := "IPv4"
	if v6 {
		family = "IPv6"
	}
	fmt.Fprintf(stdout, "\n== %s, %s (%s) ==\n", strings.ToUpper(f.String()), family, describe(f))
	start := time.Now()
	res, err := scenario.Run(ctx, l, f, scenario.Options{
		Gvsd:       []string{exe},
		Realserver: []string{exe, "realserver"},
		Dir:        dir,
		Logf:       logf,
		IPv6:       v6,
	})
	if err != nil {
		fmt.Fprintf(stdout, "  FAIL: %v\n", err)
		return false
	}
	printResult(stdout, res, time.Since(start))
	if verbose || !res.OK() {
		fmt.Fprintf(stdout, "  gvsd log:\n%s", indent(res.Log))
	}
	return res.OK()
}

func describe(f config.Forward) string {
	switch f {
	case config.DR:
		return "direct routing: MAC rewrite, replies go straight to the client"
	case config.TUN:
		return "IPIP, or IPv6-in-IPv6, tunnel decapsulated by gvs-realserver, replies go straight to the client"
	case config.NAT:
		return "destination NAT to port 8080/8053, replies return through the director"
	case config.FullNAT:
		return "source and destination NAT, real servers see the director's address"
	}
	return ""
}

func printResult(w io.Writer, r *scenario.Result, took time.Duration) {
	fmt.Fprintf(w, "  TCP: %d/%d connections echoed intact, UDP: %d/%d datagrams echoed intact, %d bytes sent, %d back\n",
		r.TCPOK, r.TCPOK+r.TCPFailed, r.UDPOK, r.UDPOK+r.UDPFailed, r.BytesSent, r.BytesBack)
	for _, rr := range r.Reals {
		peers := make([]string, len(rr.Peers))
		for i, p := range rr.Peers {
			peers[i] = p.String()
		}
		fmt.Fprintf(w, "  %-4s %-12s %2d TCP connections, %2d UDP datagrams, %8d bytes, from %s\n",
			rr.Name, rr.Addr, rr.Conns, rr.Datagrams, rr.Bytes, strings.Join(peers, ","))
	}
	fmt.Fprintf(w, "  replies through the director: %d frames; director kernel RST/ICMP: %d; duplicates at reals: %d\n",
		r.DirectorReplies, r.KernelResets, r.Duplicates)
	if r.OK() {
		fmt.Fprintf(w, "  PASS (%.1fs)\n", took.Seconds())
		return
	}
	for _, f := range r.Failures {
		fmt.Fprintf(w, "  FAIL: %s\n", f)
	}
}

func indent(s string) string {
	var b strings.Builder
	for _, line := range strings.Split(strings.TrimRight(s, "\n"), "\n") {
		b.WriteString("    " + line + "\n")
	}
	return b.String()
}
