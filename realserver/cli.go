package realserver

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"syscall"
)

// doctorCommand is the subcommand of Main that runs Doctor.
const doctorCommand = "doctor"

// Main is the command line of gvs-realserver (and of `gvsd realserver`,
// which the demo uses): it parses args, runs until SIGINT or SIGTERM and
// returns the exit status: 0 after a clean stop or -h, 1 when setting up
// or tearing down failed, 2 for bad flags. With "doctor" as the first
// argument it is Doctor instead, writing to os.Stdout.
func Main(name string, args []string, stderr io.Writer) int {
	if len(args) > 0 && args[0] == doctorCommand {
		return Doctor(name+" "+doctorCommand, args[1:], os.Stdout, stderr)
	}
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	var f runFlags
	f.register(fs)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: %s -vip VIP[,VIP...] -mode dr|tun [-interface IF] [-decap auto|bpf|userspace]\n"+
			"       %s doctor -vip VIP[,VIP...] -mode dr|tun [-port N[,N...]] [-proto tcp|udp] [-json]\n\n"+
			"Prepares this host as an LVS real server until SIGINT or SIGTERM, then undoes it.\n"+
			"doctor checks the set-up without changing it (doctor -h for its flags).\n\n", name, name)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2 // flag has printed the error and the usage
	}
	o, err := options(fs, f.vips, f.mode, f.iface)
	if err == nil {
		o.Decap, err = ParseDecap(f.decap)
	}
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

// runFlags are the flags of Main. The doctor parses them too, to read the
// command lines of running gvs-realserver processes.
type runFlags struct{ vips, mode, iface, decap string }

func (f *runFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.vips, "vip", "", "virtual IPv4 or IPv6 `addresses` to serve, comma-separated (required)")
	fs.StringVar(&f.mode, "mode", "", "how the director forwards: dr or tun (required)")
	fs.StringVar(&f.iface, "interface", "", "LAN `interface` for the ARP sysctls (default: the interface of the default route)")
	fs.StringVar(&f.decap, "decap", "auto", "tun mode: how to decapsulate IPIP and IPv6-in-IPv6: `auto` (bpf if the kernel takes it, else userspace), bpf (an eBPF program on the interface's ingress, userspace for what it leaves) or userspace (a raw socket and a TUN device)")
}

// Doctor is the command line of `gvs-realserver doctor`: it checks this
// host's set-up as a real server without changing anything, prints one
// line per check to stdout (a JSON array with -json) with the command that
// fixes each problem, and returns the exit status: 0 when every check
// passes (warnings included), 1 when one fails or the host could not be
// read, 2 for bad flags.
func Doctor(name string, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	vips := fs.String("vip", "", "virtual IPv4 or IPv6 `addresses` to check, comma-separated (required)")
	mode := fs.String("mode", "", "how the director forwards: dr or tun (required)")
	var ports portList
	fs.Var(&ports, "port", "`ports` a service must listen on at each VIP; repeat or comma-separate (default: no listener check)")
	proto := fs.String("proto", "tcp", "protocol of -port: tcp or udp")
	ifaces := fs.String("interface", "", "LAN `interfaces` for the ARP sysctls, comma-separated (default: the interface of the default route)")
	asJSON := fs.Bool("json", false, "print the results as a JSON array of {check, ok, detail, fix}")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: %s -vip VIP[,VIP...] -mode dr|tun [-port N[,N...]] [-proto tcp|udp] [-interface IF[,IF...]] [-json]\n\n"+
			"Checks, without changing anything, that this host is set up as an LVS real server,\n"+
			"and prints the command that fixes each problem. Exit status: 0 all is well, 1 a\n"+
			"check failed, 2 bad flags.\n\n", name)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	usageErr := func(err error) int {
		fmt.Fprintf(stderr, "%s: %v\n", name, err)
		fs.Usage()
		return 2
	}
	ro, err := options(fs, *vips, *mode, "")
	if err != nil {
		return usageErr(err)
	}
	if *proto != "tcp" && *proto != "udp" {
		return usageErr(fmt.Errorf("-proto: %q: want tcp or udp", *proto))
	}
	o := DoctorOptions{VIPs: ro.VIPs, Mode: ro.Mode, Proto: *proto, Ports: ports}
	if *ifaces != "" {
		for _, n := range strings.Split(*ifaces, ",") {
			o.Interfaces = append(o.Interfaces, strings.TrimSpace(n))
		}
	}
	if err := o.check(); err != nil {
		return usageErr(err)
	}

	findings, err := Diagnose(o)
	if err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", name, err)
		return 1
	}
	if *asJSON {
		if findings == nil {
			findings = []Finding{}
		}
		b, err := json.MarshalIndent(findings, "", "  ")
		if err != nil {
			panic(err) // Finding always marshals
		}
		_, err = stdout.Write(append(b, '\n'))
		if err != nil {
			fmt.Fprintf(stderr, "%s: %v\n", name, err)
			return 1
		}
	} else if err := writeFindings(stdout, findings); err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", name, err)
		return 1
	}
	for _, f := range findings {
		if !f.OK {
			return 1
		}
	}
	return 0
}

// portList is the -port flag of Doctor: repeatable, each a comma-separated
// list of ports; duplicates appear once.
type portList []uint16

func (p *portList) String() string {
	if p == nil {
		return ""
	}
	s := make([]string, len(*p))
	for i, v := range *p {
		s[i] = strconv.Itoa(int(v))
	}
	return strings.Join(s, ",")
}

func (p *portList) Set(v string) error {
	for _, s := range strings.Split(v, ",") {
		n, err := strconv.ParseUint(strings.TrimSpace(s), 10, 16)
		if err != nil || n == 0 {
			return fmt.Errorf("%q is not a port (1-65535)", s)
		}
		if !slices.Contains(*p, uint16(n)) {
			*p = append(*p, uint16(n))
		}
	}
	return nil
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
		if err != nil || a.Zone() != "" || a.Is4In6() {
			return o, fmt.Errorf("-vip: %q is not an IPv4 or IPv6 address", s)
		}
		if a.IsUnspecified() || a.IsLoopback() || a.IsMulticast() || a.IsLinkLocalUnicast() || a == netip.AddrFrom4([4]byte{255, 255, 255, 255}) {
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
