package main

import (
	"fmt"
	"io"
	"net/netip"
	"strconv"
	"strings"

	"github.com/gvs-lb/gvs/control/api"
)

// The formats below are ipvsadm's (ipvsadm.c: list_all, print_service_entry,
// print_largenum, print_conn), column for column.

// forwardNames are ipvsadm's Forward column; FullNat is DPVS's.
var forwardNames = map[string]string{"dr": "Route", "tun": "Tunnel", "nat": "Masq", "fullnat": "FullNat"}

// forwardFlags are ipvsadm -a's forwarding options; -b is DPVS's FULLNAT.
var forwardFlags = map[string]string{"dr": "-g", "tun": "-i", "nat": "-m", "fullnat": "-b"}

func protoName(p string) string { return strings.ToUpper(p) }

func writeList(w io.Writer, r *api.Response, f format) {
	fmt.Fprintf(w, "IP Virtual Server version 1.2.1 (size=%d)\n", r.TableSize)
	switch {
	case f&fmtStats != 0:
		fmt.Fprintf(w, "%-33s %8s %8s %8s %8s %8s\n  -> RemoteAddress:Port\n",
			"Prot LocalAddress:Port", "Conns", "InPkts", "OutPkts", "InBytes", "OutBytes")
	case f&fmtRate != 0:
		fmt.Fprintf(w, "%-33s %8s %8s %8s %8s %8s\n  -> RemoteAddress:Port\n",
			"Prot LocalAddress:Port", "CPS", "InPPS", "OutPPS", "InBPS", "OutBPS")
	case f&fmtHealth != 0:
		fmt.Fprintf(w, "Prot LocalAddress:Port\n  -> RemoteAddress:Port           Health Checks     Since                LastError\n")
	case f&fmtThresholds != 0:
		fmt.Fprintf(w, "Prot LocalAddress:Port\n  -> RemoteAddress:Port            Uthreshold Lthreshold ActiveConn InActConn\n")
	case f&fmtPersistentConn != 0:
		fmt.Fprintf(w, "Prot LocalAddress:Port            Weight    PersistConn ActiveConn InActConn\n  -> RemoteAddress:Port\n")
	default:
		fmt.Fprintf(w, "Prot LocalAddress:Port Scheduler Flags\n  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\n")
	}
	for _, s := range r.Services {
		writeService(w, &s, f)
	}
}

func writeService(w io.Writer, s *api.Service, f format) {
	name := fmt.Sprintf("%s  %s", protoName(s.Protocol), s.Address)
	if f&fmtStats != 0 {
		fmt.Fprintf(w, "%-33s", name)
		writeNumbers(w, f, s.Stats.Conns, s.Stats.InPkts, s.Stats.OutPkts, s.Stats.InBytes, s.Stats.OutBytes)
		for _, r := range s.Reals {
			fmt.Fprintf(w, "  -> %-28s", r.Address)
			writeNumbers(w, f, r.Stats.Conns, r.Stats.InPkts, r.Stats.OutPkts, r.Stats.InBytes, r.Stats.OutBytes)
		}
		return
	}
	if f&fmtRate != 0 {
		fmt.Fprintf(w, "%-33s", name)
		writeNumbers(w, f, s.Rates.CPS, s.Rates.InPPS, s.Rates.OutPPS, s.Rates.InBPS, s.Rates.OutBPS)
		for _, r := range s.Reals {
			fmt.Fprintf(w, "  -> %-28s", r.Address)
			writeNumbers(w, f, r.Rates.CPS, r.Rates.InPPS, r.Rates.OutPPS, r.Rates.InBPS, r.Rates.OutBPS)
		}
		return
	}
	fmt.Fprintf(w, "%s %s", name, s.Scheduler)
	if len(s.SchedulerFlags) > 0 {
		fmt.Fprintf(w, " (%s)", strings.Join(s.SchedulerFlags, ","))
	}
	if s.Persistence > 0 {
		fmt.Fprintf(w, " persistent %d", s.Persistence)
		if m, ok := mask(s); ok {
			fmt.Fprintf(w, " mask %s", m)
		}
	}
	if s.OPS {
		fmt.Fprint(w, " ops")
	}
	if s.ProxyProtocol != "" {
		fmt.Fprintf(w, " proxy-protocol %s", s.ProxyProtocol)
	}
	fmt.Fprintln(w)
	for _, r := range s.Reals {
		switch {
		case f&fmtHealth != 0:
			health, since := r.Health, ""
			if health == "" {
				health = "-" // the service has no check
			}
			if !r.HealthChanged.IsZero() {
				since = r.HealthChanged.UTC().Format("2006-01-02T15:04:05Z")
			}
			fmt.Fprintf(w, "  -> %-28s %-6s %-10d %-20s %s\n", r.Address, health, r.HealthChecks, since, r.HealthError)
		case f&fmtThresholds != 0:
			fmt.Fprintf(w, "  -> %-28s %-10d %-10d %-10d %-10d\n", r.Address, r.UpperThreshold, r.LowerThreshold, r.Active, r.Inactive)
		case f&fmtPersistentConn != 0:
			fmt.Fprintf(w, "  -> %-28s %-9d %-11d %-10d %-10d\n", r.Address, r.Weight, r.Persistent, r.Active, r.Inactive)
		default:
			fmt.Fprintf(w, "  -> %-28s %-7s %-6d %-10d %-10d", r.Address, forwardNames[r.Forward], r.Weight, r.Active, r.Inactive)
			if r.ProxyProtocol != s.ProxyProtocol {
				// gvs's: a real whose PROXY protocol is not its service's.
				fmt.Fprintf(w, " proxy-protocol %s", proxyName(r.ProxyProtocol))
			}
			fmt.Fprintln(w)
		}
	}
}

// proxyName is a PROXY protocol version as gvsadm writes it: "none" for
// none.
func proxyName(v string) string {
	if v == "" {
		return "none"
	}
	return v
}

func writeNumbers(w io.Writer, f format, ns ...uint64) {
	for _, n := range ns {
		writeLargeNum(w, n, f&fmtExact != 0)
	}
	fmt.Fprintln(w)
}

// writeLargeNum is ipvsadm's print_largenum: nine columns, with K, M, G
// or T past 100 million unless exact.
func writeLargeNum(w io.Writer, n uint64, exact bool) {
	switch {
	case exact:
		s := fmt.Sprint(n)
		fmt.Fprintf(w, "%*s", max(len(s)+1, 9), s)
	case n < 100_000_000:
		fmt.Fprintf(w, "%9d", n)
	case n < 1_000_000_000:
		fmt.Fprintf(w, "%8dK", n/1_000)
	case n < 100_000_000_000:
		fmt.Fprintf(w, "%8dM", n/1_000_000)
	case n < 100_000_000_000_000:
		fmt.Fprintf(w, "%8dG", n/1_000_000_000)
	default:
		fmt.Fprintf(w, "%8dT", n/1_000_000_000_000)
	}
}

func maskString(bits int) string {
	m := ^uint32(0) << (32 - uint32(bits))
	return netip.AddrFrom4([4]byte{byte(m >> 24), byte(m >> 16), byte(m >> 8), byte(m)}).String()
}

// mask is the persistence netmask of s as ipvsadm prints it after "mask"
// and "-M", and whether it prints one: for IPv4 a dotted mask unless it is
// 255.255.255.255, for IPv6 the prefix length unless it is 128
// (print_service_entry).
func mask(s *api.Service) (string, bool) {
	if ipv6(s.Address) {
		if s.Netmask > 0 && s.Netmask < 128 {
			return strconv.Itoa(s.Netmask), true
		}
		return "", false
	}
	if s.Netmask > 0 && s.Netmask < 32 {
		return maskString(s.Netmask), true
	}
	return "", false
}

// ipv6 reports whether addr, as gvsd lists it ("[fd00::1]:80"), is an
// IPv6 address and port. Addresses are written as ipvsadm -n writes them,
// IPv6 in brackets, so the listings need nothing else to differ.
func ipv6(addr string) bool {
	ap, err := netip.ParseAddrPort(addr)
	return err == nil && ap.Addr().Is6()
}

// writeConnections is ipvsadm -L -c.
func writeConnections(w io.Writer, conns []api.Connection) {
	fmt.Fprintf(w, "IPVS connection entries\n")
	fmt.Fprintf(w, "pro expire %-11s %-18s %-18s %s\n", "state", "source", "virtual", "destination")
	for _, c := range conns {
		fmt.Fprintf(w, "%-3s %02d:%02d  %-11s %-18s %-18s %s\n",
			protoName(c.Protocol), c.Expires/60, c.Expires%60, c.State, c.Client, c.Virtual, c.Real)
	}
}

// writeSave is ipvsadm -S -n: rules that ipvsadm -R (and, later,
// gvsadm -R) reads back.
func writeSave(w io.Writer, svcs []api.Service) {
	for _, s := range svcs {
		flag := "-t"
		if s.Protocol == "udp" {
			flag = "-u"
		}
		fmt.Fprintf(w, "-A %s %s -s %s", flag, s.Address, s.Scheduler)
		if len(s.SchedulerFlags) > 0 {
			fmt.Fprintf(w, " -b %s", strings.Join(s.SchedulerFlags, ","))
		}
		if s.Persistence > 0 {
			fmt.Fprintf(w, " -p %d", s.Persistence)
			if m, ok := mask(&s); ok {
				fmt.Fprintf(w, " -M %s", m)
			}
		}
		if s.OPS {
			fmt.Fprint(w, " -o")
		}
		if s.ProxyProtocol != "" {
			fmt.Fprintf(w, " --proxy-protocol %s", s.ProxyProtocol)
		}
		fmt.Fprintln(w)
		for _, r := range s.Reals {
			fmt.Fprintf(w, "-a %s %s -r %s %s -w %d", flag, s.Address, r.Address, forwardFlags[r.Forward], r.Weight)
			if r.UpperThreshold > 0 {
				fmt.Fprintf(w, " -x %d", r.UpperThreshold)
			}
			if r.LowerThreshold > 0 {
				fmt.Fprintf(w, " -y %d", r.LowerThreshold)
			}
			if r.ProxyProtocol != s.ProxyProtocol {
				fmt.Fprintf(w, " --proxy-protocol %s", proxyName(r.ProxyProtocol))
			}
			fmt.Fprintln(w)
		}
	}
}

// writeDaemon prints the connection sync daemon as ipvsadm -L --daemon
// does: one line for the role it has now (gvsd always listens, and sends
// while it holds the VIPs). Nothing without [sync].
func writeDaemon(w io.Writer, s *api.SyncStatus) {
	if s == nil {
		return
	}
	fmt.Fprintf(w, "%s sync daemon (mcast=%s, syncid=%d, maxlen=%d", s.Role, s.Interface, s.SyncID, s.MaxLen)
	if s.Group != "" {
		fmt.Fprintf(w, ", group=%s", s.Group)
	} else {
		fmt.Fprintf(w, ", peer=%s", s.Peer)
	}
	fmt.Fprintf(w, ", port=%d, ttl=1)\n", s.Port)
}
