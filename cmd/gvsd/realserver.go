package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/gvs-lb/gvs/realserver"
)

// realserverMain is `gvsd realserver -vip VIP[,VIP...] -mode dr|tun`: what
// gvs-realserver does, built into gvsd so that the demo runs from one
// binary.
func realserverMain(args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet("gvsd realserver", flag.ContinueOnError)
	fs.SetOutput(stderr)
	vips := fs.String("vip", "", "virtual IPv4 addresses, comma-separated")
	mode := fs.String("mode", "", "dr or tun")
	iface := fs.String("interface", "", "LAN interface (default: that of the default route)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	o := realserver.Options{Interface: *iface}
	m, err := realserver.ParseMode(*mode)
	if err != nil {
		fmt.Fprintf(stderr, "gvsd realserver: -mode: %v\n", err)
		return 2
	}
	o.Mode = m
	for _, s := range strings.Split(*vips, ",") {
		a, err := netip.ParseAddr(strings.TrimSpace(s))
		if err != nil || !a.Is4() {
			fmt.Fprintf(stderr, "gvsd realserver: -vip: %q is not an IPv4 address\n", s)
			return 2
		}
		o.VIPs = append(o.VIPs, a)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := realserver.Run(ctx, o, slog.New(slog.NewTextHandler(stderr, nil))); err != nil {
		fmt.Fprintf(stderr, "gvsd realserver: %v\n", err)
		return 1
	}
	return 0
}
