// Command gvsd is the gvs director daemon: it forwards virtual-service
// traffic to real servers with the LVS forwarding methods, from a
// userspace AF_PACKET dataplane.
//
//	gvsd [-config FILE] [-socket PATH]   run the director
//	gvsd -check [-config FILE]           validate a configuration and exit
//	gvsd demo                            build a throwaway lab and run every mode in it
//	gvsd import-keepalived FILE          print the gvs TOML of a keepalived.conf
//
// SIGHUP reloads the configuration file; SIGUSR1 logs the counters;
// SIGINT and SIGTERM stop cleanly (and log the counters a last time).
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"github.com/gvs-lb/gvs/control"
	"github.com/gvs-lb/gvs/control/api"
	"github.com/gvs-lb/gvs/control/config"
	"github.com/gvs-lb/gvs/dataplane"
	"github.com/gvs-lb/gvs/dataplane/afpacket"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 {
		switch args[0] {
		case "demo":
			return demoMain(args[1:], stdout, stderr)
		case "import-keepalived":
			return importKeepalivedMain(args[1:], stdout, stderr)
		case "realserver":
			// The demo's real servers: the same code as gvs-realserver, so
			// `go run ./cmd/gvsd demo` needs one binary.
			return realserverMain(args[1:], stderr)
		}
	}
	fs := flag.NewFlagSet("gvsd", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfgPath := fs.String("config", "/etc/gvs/gvs.toml", "configuration file")
	socket := fs.String("socket", api.DefaultSocket, "control socket for gvsadm")
	check := fs.Bool("check", false, "validate the configuration and exit")
	logFormat := fs.String("log-format", "text", "log format: text or json")
	logJSON := fs.Bool("log-json", false, "log as JSON lines (same as -log-format json)")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: gvsd [-config FILE] [-socket PATH] [-check] [-log-format text|json]\n       gvsd demo\n       gvsd import-keepalived FILE\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() > 0 {
		fs.Usage()
		return 2
	}
	var h slog.Handler
	switch {
	case *logJSON || *logFormat == "json":
		h = slog.NewJSONHandler(stderr, nil)
	case *logFormat == "text":
		h = slog.NewTextHandler(stderr, nil)
	default:
		fmt.Fprintf(stderr, "gvsd: -log-format %q: want text or json\n", *logFormat)
		return 2
	}
	log := slog.New(h)

	cfg, err := config.Load(*cfgPath)
	if err != nil {
		fmt.Fprintf(stderr, "gvsd: %v\n", err)
		return 1
	}
	if *check {
		fmt.Fprintf(stdout, "%s: ok, %d services\n", *cfgPath, len(cfg.Services))
		return 0
	}

	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGUSR1)
	defer signal.Stop(sigs)

	// The control socket first: a second gvsd on the same socket stops
	// here, before it touches the interface.
	ln, err := api.Listen(*socket)
	if err != nil {
		fmt.Fprintf(stderr, "gvsd: %v\n", err)
		return 1
	}
	defer os.Remove(*socket)
	defer ln.Close()
	// The key of the director's ISNs outlives this process beside the
	// socket (one per socket, so one per director on a host).
	if err := control.LoadISNKey(filepath.Join(filepath.Dir(*socket), control.ISNKeyFile)); err != nil {
		log.Warn("FULLNAT and SYN proxy ISNs use a key of this process only: after a restart the reals' TIME_WAIT sockets may refuse SYNs for a minute", "err", err)
	}
	d, err := control.Start(cfg, log)
	if err != nil {
		fmt.Fprintf(stderr, "gvsd: %v\n", err)
		return 1
	}
	// reload re-reads the file (SIGHUP, gvsadm --reload): a bad file is
	// refused whole and the running configuration stays.
	reload := func() error {
		ncfg, err := config.Load(*cfgPath)
		if err == nil {
			err = d.Reload(ncfg)
		}
		if err != nil {
			log.Error("reload refused; the running configuration stays", "err", err)
		}
		return err
	}
	handle := func(ctx context.Context, req *api.Request) *api.Response {
		if req.Op == api.OpReload {
			if err := reload(); err != nil {
				return &api.Response{Error: err.Error()}
			}
			return &api.Response{}
		}
		return d.Handle(ctx, req)
	}
	go func() { // control API: gvsadm's requests, until ln is closed
		if err := api.ServeStreams(context.Background(), ln, handle, d.Capture); err != nil {
			log.Error("control socket", "err", err)
		}
	}()
	code := 0
loop:
	for {
		select {
		case s := <-sigs:
			if s == syscall.SIGUSR1 {
				b, _ := json.Marshal(summarize(d))
				log.Info("counters", "counters", string(b))
				continue
			}
			if s != syscall.SIGHUP {
				log.Info("stopping", "signal", s.String())
				break loop
			}
			_ = reload()
		case <-d.Done():
			log.Error("dataplane stopped", "err", d.Err())
			code = 1
			break loop
		}
	}
	ln.Close() // no gvsadm request from here on
	summary := summarize(d)
	if err := d.Close(); err != nil {
		log.Error("shutdown", "err", err)
		code = 1
	}
	b, _ := json.Marshal(summary)
	log.Info("final counters", "counters", string(b))
	return code
}

// Summary is what gvsd reports at exit: dataplane counters and per-real
// traffic, keyed "proto/VIP:port -> RIP:port" ("tcp/[VIP6]:port ->
// [RIP6]:port" for IPv6).
type Summary struct {
	Dataplane dataplane.Counters
	Links     []afpacket.Stats // per worker; Drops are frames lost before the dataplane saw them, SYNDrops the SYNs lost in its SYN ring
	Reals     map[string]RealSummary
}

// RealSummary is one real server's counters.
type RealSummary struct {
	Conns, InPkts, OutPkts, InBytes, OutBytes uint64
	Active, Inactive, Persistent              int64
	Overloaded                                bool
}

func summarize(d *control.Daemon) Summary {
	s := Summary{Dataplane: d.Dataplane().Counters(), Links: d.LinkStats(), Reals: map[string]RealSummary{}}
	t := d.Dataplane().Table()
	if t == nil {
		return s
	}
	add := func(proto uint8, vip netip.AddrPort, svc *dataplane.Service) {
		p := "tcp"
		if proto == 17 {
			p = "udp"
		}
		for _, id := range svc.Reals {
			r := t.Reals[id]
			real := netip.AddrPortFrom(netip.AddrFrom4(r.Addr), r.Port)
			if vip.Addr().Is6() {
				real = netip.AddrPortFrom(netip.AddrFrom16(r.Addr6), r.Port)
			}
			s.Reals[fmt.Sprintf("%s/%s -> %s", p, vip, real)] = RealSummary{
				Conns: r.Stats.Conns.Load(), InPkts: r.Stats.InPkts.Load(), OutPkts: r.Stats.OutPkts.Load(),
				InBytes: r.Stats.InBytes.Load(), OutBytes: r.Stats.OutBytes.Load(),
				Active: r.Counters.Active.Load(), Inactive: r.Counters.Inactive.Load(),
				Persistent: r.Counters.Persistent.Load(), Overloaded: r.Counters.Overloaded(),
			}
		}
	}
	for k, svc := range t.Services {
		add(k.Proto, netip.AddrPortFrom(netip.AddrFrom4(k.VIP), k.Port), svc)
	}
	for k, svc := range t.Services6 {
		add(k.Proto, netip.AddrPortFrom(netip.AddrFrom16(k.VIP), k.Port), svc)
	}
	return s
}
