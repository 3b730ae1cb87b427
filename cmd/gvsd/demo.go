package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/gvs-lb/gvs/control/config"
	"github.com/gvs-lb/gvs/integration/lab"
	"github.com/gvs-lb/gvs/integration/scenario"
)

const demoPicture = `gvs demo: a throwaway lab of network namespaces

  client 10.10.0.2 ── router 10.10.0.1 | 10.20.0.1 ── LAN bridge ─┬─ director 10.20.0.2 (gvsd, VIP 10.20.0.100)
                                                                 ├─ rs1 10.20.0.11
                                                                 └─ rs2 10.20.0.12

Services: tcp 10.20.0.100:80 and udp 10.20.0.100:53, scheduler rr, over rs1 and rs2.
Each mode: TCP connections echo random bytes, UDP datagrams echo from new source ports.
`

// demoMain builds the lab, runs every forwarding method in it and tears
// it down, also on Ctrl-C. It exits non-zero if any check failed.
func demoMain(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("gvsd demo", flag.ContinueOnError)
	fs.SetOutput(stderr)
	modes := fs.String("modes", "dr,tun,nat,fullnat", "forwarding methods to run, in order")
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
	l, err := lab.New(lab.Options{Prefix: *prefix})
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

	failed := 0
	for _, f := range forwards {
		if ctx.Err() != nil {
			fmt.Fprintln(stdout, "interrupted")
			return 130
		}
		fmt.Fprintf(stdout, "\n== %s (%s) ==\n", strings.ToUpper(f.String()), describe(f))
		start := time.Now()
		res, err := scenario.Run(ctx, l, f, scenario.Options{
			Gvsd:       []string{exe},
			Realserver: []string{exe, "realserver"},
			Dir:        dir,
			Logf:       logf,
		})
		if err != nil {
			failed++
			fmt.Fprintf(stdout, "  FAIL: %v\n", err)
			continue
		}
		printResult(stdout, res, time.Since(start))
		if *verbose || !res.OK() {
			fmt.Fprintf(stdout, "  gvsd log:\n%s", indent(res.Log))
		}
		if !res.OK() {
			failed++
		}
	}
	fmt.Fprintln(stdout)
	if failed > 0 {
		fmt.Fprintf(stdout, "%d of %d modes FAILED", failed, len(forwards))
		if *keep {
			fmt.Fprintf(stdout, " (logs and captures in %s)", dir)
		}
		fmt.Fprintln(stdout)
		return 1
	}
	fmt.Fprintf(stdout, "all %d modes passed\n", len(forwards))
	return 0
}

func describe(f config.Forward) string {
	switch f {
	case config.DR:
		return "direct routing: MAC rewrite, replies go straight to the client"
	case config.TUN:
		return "IPIP tunnel, decapsulated by gvs-realserver, replies go straight to the client"
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
