// Command gvsadm manages and inspects gvsd with ipvsadm's syntax and
// prints ipvsadm's formats, so scripts written for ipvsadm keep working:
//
//	gvsadm -L -n [--stats | --thresholds | --persistent-conn] [--exact] [-t|-u VIP:port]
//	gvsadm -L -n -c              the connection table
//	gvsadm -S -n                 the services as ipvsadm -R input
//	gvsadm -L --json             everything, for programs
//	gvsadm -v | -h
//
// It talks to gvsd over its unix socket (--socket PATH, GVS_SOCKET, or
// /run/gvs/gvsd.sock), which only root may use. Addresses are always
// numeric (-n is accepted and implied). Commands that change the running
// services (-A -E -D -a -e -d -C -Z -R --set) and --rate are not
// implemented yet: gvsadm says so and exits 1.
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/gvs-lb/gvs/control/api"
)

func main() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) }

// version is what -v prints; the formats are ipvsadm's of IPVS 1.2.1.
const version = "gvsadm v0.1.0 (gvs; ipvsadm formats of IPVS v1.2.1)"

func run(args []string, stdout, stderr io.Writer) int {
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
	socket := o.socket
	if socket == "" {
		socket = os.Getenv("GVS_SOCKET")
	}
	if socket == "" {
		socket = api.DefaultSocket
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
	default:
		writeList(stdout, resp, o.format)
	}
	return 0
}

// only keeps the service proto VIP:port, or says "No such service" as
// ipvsadm does.
func only(svcs []api.Service, proto, addr string) ([]api.Service, error) {
	for _, s := range svcs {
		if s.Protocol == proto && s.Address == addr {
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
)

// format bits of a listing, as ipvsadm's FMT_*.
type format uint8

const (
	fmtStats format = 1 << iota
	fmtThresholds
	fmtPersistentConn
	fmtExact
)

type options struct {
	cmd         command
	unsupported string
	format      format
	conns, json bool
	proto       string // "tcp" or "udp" with service
	service     string // VIP:port of -t/-u
	socket      string
}

// unsupported are ipvsadm's commands and options gvsadm does not do yet.
var unsupported = map[string]bool{
	"-A": true, "--add-service": true, "-E": true, "--edit-service": true, "-D": true, "--delete-service": true,
	"-a": true, "--add-server": true, "-e": true, "--edit-server": true, "-d": true, "--delete-server": true,
	"-C": true, "--clear": true, "-Z": true, "--zero": true, "-R": true, "--restore": true, "--set": true,
	"--rate": true, "--start-daemon": true, "--stop-daemon": true, "-f": true, "--fwmark-service": true,
}

// parseArgs reads ipvsadm-style arguments: short options may be grouped
// (-Ln, -lnc), and -t/-u take VIP:port as the next argument or the rest
// of the group.
func parseArgs(args []string) (options, error) {
	o := options{cmd: cmdList}
	var toks []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		if strings.HasPrefix(a, "--") || !strings.HasPrefix(a, "-") || len(a) <= 2 {
			toks = append(toks, a)
			continue
		}
		for j := 1; j < len(a); j++ {
			f := "-" + a[j:j+1]
			toks = append(toks, f)
			if (f == "-t" || f == "-u") && j+1 < len(a) {
				toks = append(toks, a[j+1:])
				break
			}
		}
	}
	list, save := false, false
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
		switch t {
		case "-L", "-l", "--list":
			list = true
		case "-S", "--save":
			save = true
		case "-n", "--numeric":
		case "-c", "--connection":
			o.conns = true
		case "--stats":
			o.format |= fmtStats
		case "--thresholds":
			o.format |= fmtThresholds
		case "--persistent-conn":
			o.format |= fmtPersistentConn
		case "--exact":
			o.format |= fmtExact
		case "--json":
			o.json = true
		case "-h", "--help":
			o.cmd = cmdHelp
			return o, nil
		case "-v", "--version":
			o.cmd = cmdVersion
			return o, nil
		case "-t", "--tcp-service", "-u", "--udp-service", "--socket":
			if i+1 >= len(toks) {
				return o, fmt.Errorf("option %s needs an argument", t)
			}
			i++
			switch t {
			case "--socket":
				o.socket = toks[i]
			case "-t", "--tcp-service":
				o.proto, o.service = "tcp", toks[i]
			default:
				o.proto, o.service = "udp", toks[i]
			}
		default:
			return o, fmt.Errorf("unknown option %s", t)
		}
	}
	switch {
	case list && save:
		return o, fmt.Errorf("-L and -S cannot be combined")
	case save:
		o.cmd = cmdSave
	case !list && (o.format != 0 || o.conns):
		return o, fmt.Errorf("--stats, --thresholds, --persistent-conn, --exact and -c go with -L")
	}
	return o, nil
}

const usage = `gvsadm: ipvsadm's syntax for gvsd
  gvsadm -L|-l [-n] [--stats|--thresholds|--persistent-conn] [--exact] [-t|-u VIP:port] [--json]
  gvsadm -L|-l [-n] -c          list the connection table
  gvsadm -S [-n]                save the services as ipvsadm rules
  gvsadm -v | -h
Options:
  --socket PATH                 gvsd's control socket (default $GVS_SOCKET or /run/gvs/gvsd.sock)
Changing services from gvsadm (-A -E -D -a -e -d -C -Z -R --set) and --rate are not implemented
yet: edit the configuration file and reload gvsd (kill -HUP).
`
