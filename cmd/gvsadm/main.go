// Command gvsadm manages and inspects gvsd with ipvsadm's syntax and
// prints ipvsadm's formats, so scripts written for ipvsadm keep working:
//
//	gvsadm -A|-E -t|-u VIP:port [-s sched] [-b flags] [-p [secs]] [-M mask] [-o]
//	gvsadm -D -t|-u VIP:port
//	gvsadm -a|-e -t|-u VIP:port -r RIP[:port] [-g|-i|-m|-b] [-w weight] [-x upper] [-y lower]
//	gvsadm -d -t|-u VIP:port -r RIP[:port]
//	gvsadm -C | -Z [-t|-u VIP:port] | --set tcp tcpfin udp
//	gvsadm -R < rules            the lines gvsadm -S (or ipvsadm -S) wrote
//	gvsadm --reload              gvsd re-reads its configuration file
//	gvsadm -L -n [--stats | --rate | --health | --thresholds | --persistent-conn] [--exact] [-t|-u VIP:port]
//	gvsadm -L -n -c              the connection table
//	gvsadm -L --daemon           the connection sync daemon
//	gvsadm capture [-w FILE|-] [-c N] [-G S] [filter]   what the dataplane does with frames
//	gvsadm simulate -t|-u VIP:port --client IP[:port] [--json]   which real a new connection would get, and why
//	gvsadm doctor [--json]       gvsd checks the director's setup, with fixes
//	gvsadm -S -n                 the services as rules for -R
//	gvsadm -L --json             everything, for programs
//	gvsadm -v | -h
//
// It talks to gvsd over its unix socket (--socket PATH, GVS_SOCKET, or
// /run/gvs/gvsd.sock), which only root may use. Addresses are always
// numeric (-n is accepted and implied). A change lasts until gvsd reloads
// its configuration file, which is the truth.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/bits"
	"net/netip"
	"os"
	"strconv"
	"strings"

	"github.com/gvs-lb/gvs/control/api"
)

func main() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) }

// version is what -v prints; the formats are ipvsadm's of IPVS 1.2.1.
const version = "gvsadm v0.1.0 (gvs; ipvsadm formats of IPVS v1.2.1)"

func run(args []string, stdout, stderr io.Writer) int {
	return runWithInput(args, os.Stdin, stdout, stderr)
}

func runWithInput(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	// capture is a command word, after the socket option if any.
	for i := 0; i < len(args) && i < 3; i++ {
		if args[i] == "capture" {
			return runCapture(append(append([]string(nil), args[:i]...), args[i+1:]...), stdout, stderr)
		}
		if args[i] == "simulate" {
			return runSimulate(append(append([]string(nil), args[:i]...), args[i+1:]...), stdout, stderr)
		}
		if args[i] == "doctor" {
			return runDoctor(args[i+1:], socketOf(args[:i]), stdout, stderr)
		}
	}
	o, err := parseArgs(args)
	if err != nil {
		fmt.Fprintf(stderr, "gvsadm: %v\n", err)
		fmt.Fprintf(stderr, "Try `gvsadm -h' for more information.\n")
		return 2
	}
	switch o.cmd {
	case cmdHelp:
		fmt.Fprint(stdout, usage)
		return 0
	case cmdVersion:
		fmt.Fprintln(stdout, version)
		return 0
	case cmdUnsupported:
		fmt.Fprintf(stderr, "gvsadm: %s is not implemented yet; change the configuration file and reload gvsd (SIGHUP)\n", o.unsupported)
		return 1
	}
	socket := socketPath(o.socket)
	switch o.cmd {
	case cmdEdit:
		if _, err := api.Call(context.Background(), socket, &api.Request{Op: api.OpEdit, Edit: o.edit}); err != nil {
			fmt.Fprintf(stderr, "%v\n", err)
			return 1
		}
		return 0
	case cmdRestore:
		return restore(socket, stdin, stderr)
	case cmdReload:
		if _, err := api.Call(context.Background(), socket, &api.Request{Op: api.OpReload}); err != nil {
			fmt.Fprintf(stderr, "gvsadm: reload refused, the running configuration stays:\n%v\n", err)
			return 1
		}
		return 0
	}
	op := api.OpList
	if o.conns {
		op = api.OpConnections
	}
	resp, err := api.Call(context.Background(), socket, &api.Request{Op: op})
	if err != nil {
		fmt.Fprintf(stderr, "gvsadm: %v\n", err)
		return 1
	}
	if o.service != "" {
		if resp.Services, err = only(resp.Services, o.proto, o.service); err != nil {
			fmt.Fprintf(stderr, "%v\n", err)
			return 1
		}
	}
	switch {
	case o.json:
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		_ = enc.Encode(resp)
	case o.cmd == cmdSave:
		writeSave(stdout, resp.Services)
	case o.conns:
		writeConnections(stdout, resp.Connections)
	case o.daemon:
		writeDaemon(stdout, resp.Sync)
	default:
		writeList(stdout, resp, o.format)
	}
	return 0
}

// only keeps the service proto VIP:port, or says "No such service" as
// ipvsadm does. An address is compared as an address, so that any way of
// writing an IPv6 one ("[fd00:20:0::100]:80") names its service.
func only(svcs []api.Service, proto, addr string) ([]api.Service, error) {
	want, err := netip.ParseAddrPort(addr)
	for _, s := range svcs {
		if s.Protocol != proto {
			continue
		}
		if got, gerr := netip.ParseAddrPort(s.Address); s.Address == addr || err == nil && gerr == nil && got == want {
			return []api.Service{s}, nil
		}
	}
	return nil, fmt.Errorf("No such service")
}

type command int

const (
	cmdList command = iota
	cmdSave
	cmdHelp
	cmdVersion
	cmdUnsupported
	cmdEdit
	cmdRestore
	cmdReload
)

// format bits of a listing, as ipvsadm's FMT_*.
type format uint8

const (
	fmtStats format = 1 << iota
	fmtThresholds
	fmtPersistentConn
	fmtExact
	fmtRate
	fmtHealth
)

type options struct {
	cmd         command
	unsupported string
	format      format
	conns, json bool
	daemon      bool   // -L --daemon: the sync daemon, as ipvsadm
	proto       string // "tcp" or "udp" with service
	service     string // VIP:port of -t/-u
	socket      string
	edit        *api.Edit // cmdEdit's change
}

// unsupported are ipvsadm's commands and options gvsadm does not do.
var unsupported = map[string]bool{
	"--start-daemon": true, "--stop-daemon": true, "-f": true, "--fwmark-service": true,
}

// editCommands are ipvsadm's commands that change the running services.
var editCommands = map[string]string{
	"-A": api.AddService, "--add-service": api.AddService,
	"-E": api.EditService, "--edit-service": api.EditService,
	"-D": api.DeleteService, "--delete-service": api.DeleteService,
	"-a": api.AddServer, "--add-server": api.AddServer,
	"-e": api.EditServer, "--edit-server": api.EditServer,
	"-d": api.DeleteServer, "--delete-server": api.DeleteServer,
	"-C": api.Clear, "--clear": api.Clear,
	"-Z": api.Zero, "--zero": api.Zero,
	"--set": api.SetTimeouts,
}

// argLetters are the short options that take an argument, which may be
// the rest of a group (-t10.0.0.1:80, -w3).
const argLetters = "tusrwxyMp"

// parseArgs reads ipvsadm-style arguments: short options may be grouped
// (-Ln, -lnc), and -t/-u take VIP:port as the next argument or the rest
// of the group.
func parseArgs(args []string) (options, error) {
	o := options{cmd: cmdList}
	var toks []string
	for _, a := range args {
		if strings.HasPrefix(a, "--") || !strings.HasPrefix(a, "-") || len(a) <= 2 {
			toks = append(toks, a)
			continue
		}
		for j := 1; j < len(a); j++ {
			toks = append(toks, "-"+a[j:j+1])
			if strings.IndexByte(argLetters, a[j]) >= 0 && j+1 < len(a) {
				toks = append(toks, a[j+1:])
				break
			}
		}
	}
	list, save := false, false
	var e api.Edit
	next := func(i *int, t string) (string, error) {
		if *i+1 >= len(toks) {
			return "", fmt.Errorf("option %s needs an argument", t)
		}
		*i++
		return toks[*i], nil
	}
	number := func(i *int, t string) (int, error) {
		v, err := next(i, t)
		if err != nil {
			return 0, err
		}
		n, err := strconv.Atoi(v)
		if err != nil {
			return 0, fmt.Errorf("illegal %s value %q", t, v)
		}
		return n, nil
	}
	for i := 0; i < len(toks); i++ {
		t := toks[i]
		if v, ok := strings.CutPrefix(t, "--socket="); ok {
			o.socket = v
			continue
		}
		if unsupported[t] {
			o.cmd, o.unsupported = cmdUnsupported, t
			return o, nil
		}
		if c, ok := editCommands[t]; ok {
			if e.Command != "" || list || save {
				return o, fmt.Errorf("%s: only one command at a time", t)
			}
			e.Command = c
			if c == api.SetTimeouts {
				for _, dst := range []*uint32{&e.TCP, &e.TCPFin, &e.UDP} {
					n, err := number(&i, t)
					if err != nil || n < 0 {
						return o, fmt.Errorf("--set needs three timeouts in seconds: tcp tcpfin udp")
					}
					*dst = uint32(n)
				}
			}
			continue
		}
		var err error
		switch t {
		case "-L", "-l", "--list":
			list = true
		case "-S", "--save":
			save = true
		case "-R", "--restore":
			o.cmd = cmdRestore
		case "--reload":
			o.cmd = cmdReload
		case "-n", "--numeric":
		case "-c", "--connection":
			o.conns = true
		case "--stats":
			o.format |= fmtStats
		case "--rate":
			o.format |= fmtRate
		case "--health":
			o.format |= fmtHealth
		case "--thresholds":
			o.format |= fmtThresholds
		case "--persistent-conn":
			o.format |= fmtPersistentConn
		case "--exact":
			o.format |= fmtExact
		case "--json":
			o.json = true
		case "--daemon":
			o.daemon = true
		case "-h", "--help":
			o.cmd = cmdHelp
			return o, nil
		case "-v", "--version":
			o.cmd = cmdVersion
			return o, nil
		case "--socket":
			o.socket, err = next(&i, t)
		case "-t", "--tcp-service", "-u", "--udp-service":
			o.proto = "tcp"
			if t == "-u" || t == "--udp-service" {
				o.proto = "udp"
			}
			o.service, err = next(&i, t)
		case "-s", "--scheduler":
			e.Scheduler, err = next(&i, t)
		case "-b", "--sched-flags":
			// -b is FULLNAT for a real (DPVS's ipvsadm), scheduler flags
			// for a service.
			if e.Command == api.AddServer || e.Command == api.EditServer {
				e.Forward = "fullnat"
				break
			}
			var v string
			if v, err = next(&i, t); err == nil {
				e.SchedulerFlags = strings.Split(v, ",")
			}
		case "--fullnat":
			e.Forward = "fullnat"
		case "-p", "--persistent":
			secs := uint32(300) // ipvsadm's default persistence
			if i+1 < len(toks) {
				if n, perr := strconv.ParseUint(toks[i+1], 10, 32); perr == nil {
					secs = uint32(n)
					i++
				}
			}
			e.Persistence = &secs
		case "-M", "--netmask":
			var v string
			if v, err = next(&i, t); err == nil {
				var bits int
				if bits, err = parseNetmask(v); err == nil {
					e.Netmask = &bits
				}
			}
		case "-o", "--ops":
			yes := true
			e.OPS = &yes
		case "--proxy-protocol":
			// gvs's: the PROXY protocol header a NAT or FULLNAT real gets.
			var v string
			if v, err = next(&i, t); err == nil {
				switch v {
				case "v1", "v2":
				case "none":
					v = ""
				default:
					err = fmt.Errorf("illegal --proxy-protocol value %q (want v1, v2 or none)", v)
				}
				e.ProxyProtocol = &v
			}
		case "-r", "--real-server":
			e.Real, err = next(&i, t)
		case "-g", "--gatewaying":
			e.Forward = "dr"
		case "-i", "--ipip":
			e.Forward = "tun"
		case "-m", "--masquerading":
			e.Forward = "nat"
		case "-w", "--weight", "-x", "--u-threshold", "-y", "--l-threshold":
			var n int
			if n, err = number(&i, t); err == nil {
				switch t {
				case "-w", "--weight":
					e.Weight = &n
				case "-x", "--u-threshold":
					e.UpperThreshold = &n
				default:
					e.LowerThreshold = &n
				}
			}
		default:
			return o, fmt.Errorf("unknown option %s", t)
		}
		if err != nil {
			return o, err
		}
	}
	if o.cmd == cmdReload {
		if e.Command != "" || list || save {
			return o, fmt.Errorf("--reload goes alone")
		}
		return o, nil
	}
	if o.cmd == cmdRestore {
		if e.Command != "" || list || save {
			return o, fmt.Errorf("-R takes its commands from standard input")
		}
		return o, nil
	}
	if e.Command != "" {
		if list || save || o.conns || o.format != 0 {
			return o, fmt.Errorf("%s cannot be combined with listing options", e.Command)
		}
		e.Protocol, e.Address = o.proto, o.service
		needService := e.Command != api.Clear && e.Command != api.Zero && e.Command != api.SetTimeouts
		if needService && e.Address == "" {
			return o, fmt.Errorf("a service is needed: -t or -u VIP:port")
		}
		needReal := e.Command == api.AddServer || e.Command == api.EditServer || e.Command == api.DeleteServer
		if needReal && e.Real == "" {
			return o, fmt.Errorf("a real server is needed: -r RIP[:port]")
		}
		o.cmd, o.edit = cmdEdit, &e
		return o, nil
	}
	switch {
	case list && save:
		return o, fmt.Errorf("-L and -S cannot be combined")
	case save:
		o.cmd = cmdSave
	case !list && (o.format != 0 || o.conns || o.daemon):
		return o, fmt.Errorf("--stats, --rate, --health, --thresholds, --persistent-conn, --exact, --daemon and -c go with -L")
	}
	return o, nil
}

// parseNetmask reads -M as ipvsadm does: a dotted mask (IPv4) or a
// prefix length (IPv4 up to 32, IPv6 up to 128; gvsd checks it against the
// service's family).
func parseNetmask(v string) (int, error) {
	if n, err := strconv.Atoi(v); err == nil && n >= 1 && n <= 128 {
		return n, nil
	}
	a, err := netip.ParseAddr(v)
	if err != nil || !a.Is4() {
		return 0, fmt.Errorf("illegal netmask %q", v)
	}
	b := a.As4()
	m := uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
	ones := bits.LeadingZeros32(^m)
	if ones == 0 || m<<ones != 0 {
		return 0, fmt.Errorf("illegal netmask %q", v)
	}
	return ones, nil
}

const usage = `gvsadm: ipvsadm's syntax for gvsd
  gvsadm -A|-E -t|-u VIP:port [-s scheduler] [-b sched-flags] [-p [timeout]] [-M netmask] [-o]
                [--proxy-protocol v1|v2|none]
  gvsadm -D -t|-u VIP:port
  gvsadm -a|-e -t|-u VIP:port -r RIP[:port] [-g|-i|-m|-b] [-w weight] [-x upper] [-y lower]
                [--proxy-protocol v1|v2|none]
  gvsadm -d -t|-u VIP:port -r RIP[:port]
  gvsadm -C                     delete every service
  gvsadm -Z [-t|-u VIP:port]    zero the counters
  gvsadm --set tcp tcpfin udp   timeouts in seconds (0 = unchanged)
  gvsadm -R                     apply the rules on standard input (as gvsadm -S wrote them)
  gvsadm --reload               gvsd re-reads its configuration file (as SIGHUP)
  gvsadm -L|-l [-n] [--stats|--rate|--health|--thresholds|--persistent-conn] [--exact] [-t|-u VIP:port] [--json]
  gvsadm -L|-l [-n] -c          list the connection table
  gvsadm -L --daemon            the connection sync daemon ([sync])
  gvsadm capture [-w FILE|-] [-c N] [-G S] [filter]  record what the dataplane does (capture -h)
  gvsadm simulate -t|-u VIP:port --client IP[:port] [--json]  which real a new connection
                                would get now, and why, changing nothing (simulate -h)
  gvsadm doctor [--json]        check the director's setup; each problem with its fix
  gvsadm -S [-n]                save the services as rules
  gvsadm -v | -h
Forwarding: -g Route (DR, default), -i Tunnel, -m Masq (NAT), -b FullNat.
IPv6 addresses go in brackets, as ipvsadm writes them: -t [fd00:20::100]:80 -r [fd00:20::11]:80;
-M is then a prefix length (default 128).
--proxy-protocol (gvs's): the PROXY protocol header NAT and FULLNAT reals of a TCP service
  get with the client's address; on -a/-e, the real's own instead of its service's.
Options:
  --socket PATH                 gvsd's control socket (default $GVS_SOCKET or /run/gvs/gvsd.sock)
Changes last until gvsd reloads its configuration file (SIGHUP).
`

// restore applies the commands of in, one per line as ipvsadm -S writes
// them (ipvsadm -R). It stops at the first line that fails.
func restore(socket string, in io.Reader, stderr io.Writer) int {
	sc := bufio.NewScanner(in)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		o, err := parseArgs(strings.Fields(line))
		if err == nil && o.cmd != cmdEdit {
			err = fmt.Errorf("not a command that changes services")
		}
		if err == nil {
			_, err = api.Call(context.Background(), socket, &api.Request{Op: api.OpEdit, Edit: o.edit})
		}
		if err != nil {
			fmt.Fprintf(stderr, "gvsadm: line %d: %s: %v\n", n, line, err)
			return 1
		}
	}
	if err := sc.Err(); err != nil {
		fmt.Fprintf(stderr, "gvsadm: reading standard input: %v\n", err)
		return 1
	}
	return 0
}

// socketOf returns the control socket named by leading arguments
// (--socket PATH or --socket=PATH), else socketPath's default.
func socketOf(args []string) string {
	for i, a := range args {
		if v, ok := strings.CutPrefix(a, "--socket="); ok {
			return v
		}
		if a == "--socket" && i+1 < len(args) {
			return args[i+1]
		}
	}
	return socketPath("")
}

// socketPath is the control socket: given, else $GVS_SOCKET, else
// api.DefaultSocket.
func socketPath(given string) string {
	if given != "" {
		return given
	}
	if s := os.Getenv("GVS_SOCKET"); s != "" {
		return s
	}
	return api.DefaultSocket
}
