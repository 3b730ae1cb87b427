package realserver

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"os/signal"
	"strings"
	"syscall"
)

// Main is the command line of gvs-realserver (and of `gvsd realserver`,
// which the demo uses): it parses args, runs until SIGINT or SIGTERM and
// returns the exit status: 0 after a clean stop or -h, 1 when setting up
// or tearing down failed, 2 for bad flags.
func Main(name string, args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	vips := fs.String("vip", "", "virtual IPv4 `addresses` to serve, comma-separated (required)")
	mode := fs.String("mode", "", "how the director forwards: dr or tun (required)")
	iface := fs.String("interface", "", "LAN `interface` for the ARP sysctls (default: the interface of the default route)")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: %s -vip VIP[,VIP...] -mode dr|tun [-interface IF]\n\n"+
			"Prepares this host as an LVS real server until SIGINT or SIGTERM, then undoes it.\n\n", name)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2 // flag has printed the error and the usage
	}
	o, err := options(fs, *vips, *mode, *iface)
	if err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", name, err)
		fs.Usage()
		return 2
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	logger := slog.New(slog.NewTextHandler(stderr, nil))
	if err := Run(ctx, o, logger); err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", name, err)
		return 1
	}
	return 0
}

// options checks the flags and turns them into Options.
func options(fs *flag.FlagSet, vips, mode, iface string) (Options, error) {
	var o Options
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	if vips == "" {
		return o, errors.New("-vip is required")
	}
	for _, s := range strings.Split(vips, ",") {
		a, err := netip.ParseAddr(strings.TrimSpace(s))
		if err != nil || !a.Is4() {
			return o, fmt.Errorf("-vip: %q is not an IPv4 address", s)
		}
		if a.IsUnspecified() || a.IsLoopback() || a.IsMulticast() || a == netip.AddrFrom4([4]byte{255, 255, 255, 255}) {
			return o, fmt.Errorf("-vip: %s is not a unicast address", a)
		}
		o.VIPs = append(o.VIPs, a)
	}
	if mode == "" {
		return o, errors.New("-mode is required: dr or tun")
	}
	m, err := ParseMode(mode)
	if err != nil {
		return o, fmt.Errorf("-mode: %q: want dr or tun", mode)
	}
	o.Mode = m
	o.Interface = iface
	return o, nil
}
