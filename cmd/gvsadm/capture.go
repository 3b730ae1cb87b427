package main

import (
	"context"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"

	"github.com/gvs-lb/gvs/control/api"
)

// captureOptions are gvsadm capture's arguments.
type captureOptions struct {
	req    api.CaptureRequest
	write  string // -w: a pcapng file, "-" for standard output, "" to print lines
	socket string
}

const captureUsage = `gvsadm capture [-w FILE|-] [-c COUNT] [-G SECONDS] [filter]
  records what gvsd's dataplane does with the frames the filter selects: each frame as it
  arrived and as it was sent, with the verdict, the service and the real server.
  -w FILE        write pcapng (interface "in": frames as they arrived, "out": as sent; each
                 packet's comment says verdict, service, real); -w - writes to standard output,
                 so that gvsadm capture -w - | tcpdump -r - works. Without -w: one line a frame.
  -c COUNT       stop after COUNT frames        -G SECONDS   stop after SECONDS
Filter (all must match; none = every frame):
  -t|-u VIP:port the service    -r RIP[:port] the real server    --host ADDR[/LEN] from or to
  --port N       from or to     --proto tcp|udp|icmp             --verdict V[,V...] (forward,
  no_service, no_conn, no_real, table_full, malformed, fragment, too_big, not_ipv4, tx_error)
`

// parseCapture reads gvsadm capture's arguments (after "capture").
func parseCapture(args []string) (captureOptions, error) {
	var o captureOptions
	for i := 0; i < len(args); i++ {
		t := args[i]
		if v, ok := strings.CutPrefix(t, "--socket="); ok {
			o.socket = v
			continue
		}
		next := func() (string, error) {
			if i+1 >= len(args) {
				return "", fmt.Errorf("option %s needs an argument", t)
			}
			i++
			return args[i], nil
		}
		v, err := "", error(nil)
		switch t {
		case "-h", "--help":
			return o, errHelp
		case "-w", "-c", "-G", "-t", "--tcp-service", "-u", "--udp-service", "-r", "--real-server",
			"--host", "--port", "--proto", "--verdict", "--socket":
			if v, err = next(); err != nil {
				return o, err
			}
		default:
			return o, fmt.Errorf("capture: unknown option %s", t)
		}
		switch t {
		case "-w":
			o.write = v
		case "-c":
			n, err := strconv.ParseUint(v, 10, 64)
			if err != nil || n == 0 {
				return o, fmt.Errorf("capture: -c %q: want a positive count", v)
			}
			o.req.Count = n
		case "-G":
			s, err := strconv.ParseFloat(v, 64)
			if err != nil || s <= 0 {
				return o, fmt.Errorf("capture: -G %q: want a positive number of seconds", v)
			}
			o.req.Seconds = s
		case "-t", "--tcp-service":
			o.req.Service = "tcp:" + v
		case "-u", "--udp-service":
			o.req.Service = "udp:" + v
		case "-r", "--real-server":
			o.req.Real = v
		case "--host":
			o.req.Host = v
		case "--port":
			n, err := strconv.ParseUint(v, 10, 16)
			if err != nil || n == 0 {
				return o, fmt.Errorf("capture: --port %q: want 1 to 65535", v)
			}
			o.req.Port = uint16(n)
		case "--proto":
			o.req.Protocol = v
		case "--verdict":
			o.req.Verdicts = strings.Split(v, ",")
		case "--socket":
			o.socket = v
		}
	}
	return o, nil
}

var errHelp = fmt.Errorf("help")

// parsed handles what parsing a subcommand's arguments gave: -h prints
// its usage, an error the error and a hint; done says whether the
// subcommand ends there, with code.
func parsed(name, usage string, err error, stdout, stderr io.Writer) (code int, done bool) {
	switch {
	case err == errHelp:
		fmt.Fprint(stdout, usage)
		return 0, true
	case err != nil:
		fmt.Fprintf(stderr, "gvsadm: %v\n", err)
		fmt.Fprintf(stderr, "Try `gvsadm %s -h' for more information.\n", name)
		return 2, true
	}
	return 0, false
}

// runCapture is gvsadm capture: it streams the capture from gvsd into a
// pcapng file or as lines, until gvsd ends it (count, time) or Ctrl-C.
func runCapture(args []string, stdout, stderr io.Writer) int {
	o, err := parseCapture(args)
	if code, done := parsed("capture", captureUsage, err, stdout, stderr); done {
		return code
	}
	socket := socketPath(o.socket)
	var out io.Writer = stdout
	if o.write != "" && o.write != "-" {
		f, err := os.Create(o.write)
		if err != nil {
			fmt.Fprintf(stderr, "gvsadm: %v\n", err)
			return 1
		}
		defer f.Close()
		out = f
	}
	var sink captureSink
	if o.write == "" {
		sink = &lineSink{w: out}
	} else if sink, err = newPcapSink(out, o.write == "-"); err != nil {
		fmt.Fprintf(stderr, "gvsadm: %v\n", err)
		return 1
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var end *api.CaptureEnd
	err = api.Capture(ctx, socket, &o.req, func(e *api.CaptureEvent) error {
		if e.End != nil {
			end = e.End
			return nil
		}
		return sink.packet(e.Packet)
	})
	if ferr := sink.flush(); err == nil {
		err = ferr
	}
	switch {
	case err == context.Canceled:
		fmt.Fprintf(stderr, "gvsadm: capture interrupted\n")
	case err != nil:
		fmt.Fprintf(stderr, "gvsadm: %v\n", err)
		return 1
	case end != nil:
		fmt.Fprintf(stderr, "%d frames matched, %d dropped (capture queue full); stopped by %s\n", end.Matched, end.Dropped, end.Reason)
	}
	return 0
}

// captureSink is where captured packets go.
type captureSink interface {
	packet(p *api.CapturedPacket) error
	flush() error
}

// pcapSink writes pcapng: interface 0 "in" has the frames as they
// arrived, interface 1 "out" the frames gvsd sent, each with a comment
// saying what gvsd did.
type pcapSink struct {
	w     *pcapgo.NgWriter
	eager bool // flush every packet: a reader on a pipe sees them as they come
}

func newPcapSink(out io.Writer, eager bool) (*pcapSink, error) {
	in := pcapgo.NgInterface{Name: "in", Description: "frames as gvsd's dataplane received them", LinkType: layers.LinkTypeEthernet,
		TimestampResolution: 9}
	w, err := pcapgo.NewNgWriterInterface(out, in, pcapgo.NgWriterOptions{SectionInfo: pcapgo.NgSectionInfo{Application: "gvsadm capture"}})
	if err != nil {
		return nil, err
	}
	if _, err := w.AddInterface(pcapgo.NgInterface{Name: "out", Description: "frames as gvsd's dataplane sent them",
		LinkType: layers.LinkTypeEthernet, TimestampResolution: 9}); err != nil {
		return nil, err
	}
	return &pcapSink{w: w, eager: eager}, nil
}

func (s *pcapSink) packet(p *api.CapturedPacket) error {
	note := describe(p)
	// A frame gvsd made and sent on its own (a PROXY header, say) has no
	// frame that came in.
	if p.In != nil {
		ci := gopacket.CaptureInfo{Timestamp: p.Time, CaptureLength: len(p.In), Length: len(p.In)}
		if err := s.w.WritePacketWithOptions(ci, p.In, pcapgo.NgPacketOptions{Comments: []string{"in: " + note},
			Flags: &pcapgo.NgEpbFlags{Direction: pcapgo.NgEpbFlagDirectionInbound}}); err != nil {
			return err
		}
	}
	if p.Out != nil {
		ci := gopacket.CaptureInfo{Timestamp: p.Time, CaptureLength: len(p.Out), Length: len(p.Out), InterfaceIndex: 1}
		if err := s.w.WritePacketWithOptions(ci, p.Out, pcapgo.NgPacketOptions{Comments: []string{"out: " + note},
			Flags: &pcapgo.NgEpbFlags{Direction: pcapgo.NgEpbFlagDirectionOutbound}}); err != nil {
			return err
		}
	}
	if s.eager {
		return s.w.Flush()
	}
	return nil
}

// flush writes what the pcapng writer buffers.
func (s *pcapSink) flush() error { return s.w.Flush() }

// describe is the verdict, service, real and worker of a captured packet.
func describe(p *api.CapturedPacket) string {
	var b strings.Builder
	b.WriteString("verdict=" + p.Verdict)
	if p.Service != "" {
		b.WriteString(" service=" + p.Service)
	}
	if p.Real != "" {
		b.WriteString(" real=" + p.Real + " forward=" + p.Forward)
	}
	fmt.Fprintf(&b, " worker=%d", p.Worker)
	return b.String()
}

// lineSink prints one line a frame.
type lineSink struct{ w io.Writer }

func (s *lineSink) packet(p *api.CapturedPacket) error {
	if p.In == nil && p.Out != nil { // made and sent by gvsd on its own
		line := p.Time.Format("15:04:05.000000") + " sent by gvsd: " + summary(p.Out)
		if p.Real != "" {
			line += " -> " + p.Real + " (" + p.Forward + ")"
		}
		_, err := fmt.Fprintln(s.w, line)
		return err
	}
	line := p.Time.Format("15:04:05.000000") + " " + summary(p.In) + " " + p.Verdict
	if p.Real != "" {
		line += " -> " + p.Real + " (" + p.Forward + ")"
	}
	if p.Out != nil {
		line += " | out " + summary(p.Out)
	}
	_, err := fmt.Fprintln(s.w, line)
	return err
}

func (s *lineSink) flush() error { return nil }

// summary is a frame in tcpdump's terms: protocol, addresses and ports,
// TCP flags, length.
func summary(frame []byte) string {
	pkt := gopacket.NewPacket(frame, layers.LayerTypeEthernet, gopacket.DecodeOptions{Lazy: true, NoCopy: true})
	var src, dst netip.Addr
	var proto layers.IPProtocol
	if ip, _ := pkt.Layer(layers.LayerTypeIPv4).(*layers.IPv4); ip != nil {
		src, _ = netip.AddrFromSlice(ip.SrcIP)
		dst, _ = netip.AddrFromSlice(ip.DstIP)
		proto = ip.Protocol
	} else if ip6, _ := pkt.Layer(layers.LayerTypeIPv6).(*layers.IPv6); ip6 != nil {
		src, _ = netip.AddrFromSlice(ip6.SrcIP)
		dst, _ = netip.AddrFromSlice(ip6.DstIP)
		proto = ip6.NextHeader
	} else {
		return fmt.Sprintf("non-IP frame, %d bytes", len(frame))
	}
	switch l := pkt.TransportLayer().(type) {
	case *layers.TCP:
		flags := ""
		for _, f := range []struct {
			on bool
			c  string
		}{{l.SYN, "S"}, {l.FIN, "F"}, {l.RST, "R"}, {l.PSH, "P"}, {l.ACK, "."}} {
			if f.on {
				flags += f.c
			}
		}
		return fmt.Sprintf("tcp %s > %s [%s] len %d", netip.AddrPortFrom(src, uint16(l.SrcPort)), netip.AddrPortFrom(dst, uint16(l.DstPort)), flags, len(l.Payload))
	case *layers.UDP:
		return fmt.Sprintf("udp %s > %s len %d", netip.AddrPortFrom(src, uint16(l.SrcPort)), netip.AddrPortFrom(dst, uint16(l.DstPort)), len(l.Payload))
	}
	if ic, ok := pkt.Layer(layers.LayerTypeICMPv4).(*layers.ICMPv4); ok {
		return fmt.Sprintf("icmp %s > %s %s", src, dst, ic.TypeCode)
	}
	if ic, ok := pkt.Layer(layers.LayerTypeICMPv6).(*layers.ICMPv6); ok {
		return fmt.Sprintf("icmp6 %s > %s %s", src, dst, ic.TypeCode)
	}
	if src.Is6() {
		return fmt.Sprintf("ip6 next header %d %s > %s", proto, src, dst)
	}
	return fmt.Sprintf("ip proto %d %s > %s", proto, src, dst)
}
