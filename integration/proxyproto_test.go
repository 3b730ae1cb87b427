package integration

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"

	"github.com/gvs-lb/gvs/control/config"
	"github.com/gvs-lb/gvs/integration/lab"
	"github.com/gvs-lb/gvs/integration/scenario"
)

// The PROXY protocol services of TestProxyProtocol: nginx on the reals'
// ppNginxPort behind VIP:ppNginxVPort, and a Go server that reads the
// header, says who it saw and echoes, on ppEchoPort behind VIP:ppEchoVPort.
const (
	ppNginxVPort = 80
	ppNginxPort  = 8082
	ppEchoVPort  = 81
	ppEchoPort   = 8083
	// ppBigFile is the size of the file nginx serves; ppEchoBytes what the
	// client sends the echo server, and gets back, at the same time.
	ppBigFile   = 3 << 20
	ppEchoBytes = 4 << 20
)

// TestProxyProtocol runs services with proxy_protocol in front of stock
// nginx (listen ... proxy_protocol) on both reals, in FULLNAT and NAT, with
// and without the SYN proxy, v2 and v1. nginx must answer every request
// with the client's own address and port as $proxy_protocol_addr and
// _port (in FULLNAT its $remote_addr is the director's local address), and
// serve a 3 MiB file intact. A server that speaks first (it reads the
// header, then greets the client with the address it saw, before the
// client sends anything) must greet at once, and then echo 4 MiB the
// client sends while it reads them back, byte for byte. gvsadm -L shows
// the option; gvsadm capture records the header segment gvsd sent, and
// gvsadm doctor's probe finds the FULLNAT reals' ports expecting it. The
// http health check of the nginx service, which starts the reals down,
// must find them up: it sends nginx a PROXY header of its own.
// In
// the "lost-header" case each real drops the first header segment it gets
// for the echo service (an nft rule): gvsd must send it again on its own
// (the client, waiting for the greeting, sends nothing), and the greeting
// come. In the "lost-synack" case the client drops the first SYN-ACK of
// the echo service: its SYN sent again must still get an answer (it would
// not, had the header gone with that SYN-ACK and completed the real's
// handshake).
func TestProxyProtocol(t *testing.T) {
	if _, err := exec.LookPath("nginx"); err != nil {
		t.Skip("needs nginx (apt-get install nginx-light)")
	}
	for _, c := range []struct {
		mode     config.Forward
		version  string
		synproxy bool
		lose     string // "", "header" or "synack"
	}{
		{config.FullNAT, "v2", false, ""},
		{config.NAT, "v2", false, ""},
		{config.FullNAT, "v1", true, ""},
		{config.NAT, "v1", false, ""},
		{config.FullNAT, "v2", false, "header"},
		{config.FullNAT, "v2", false, "synack"},
	} {
		name := c.mode.String() + "/" + c.version
		if c.synproxy {
			name += "/synproxy"
		}
		if c.lose != "" {
			name += "/lost-" + c.lose
		}
		t.Run(name, func(t *testing.T) { testProxyProtocol(t, c.mode, c.version, c.synproxy, c.lose) })
	}
}

func testProxyProtocol(t *testing.T, mode config.Forward, version string, synproxy bool, lose string) {
	l := needLab(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	dir := t.TempDir()
	o := scenario.Options{Gvsd: []string{bins.gvsd}, Realserver: []string{bins.realserver}, Dir: dir, Logf: t.Logf}
	env, err := scenario.Setup(ctx, l, mode, o, proxyProtocolConfig(l, mode, version, synproxy))
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		env.Close()
		if t.Failed() {
			t.Logf("gvsd log:\n%s", env.Gvsd.Log())
		}
	}()
	big := make([]byte, ppBigFile)
	rand.Read(big)
	for _, r := range l.Reals {
		startNginx(ctx, t, r, filepath.Join(dir, "nginx-"+r.Name), big)
		stop, err := servePROXYEcho(r, netip.AddrPortFrom(r.Addr, ppEchoPort), true, netip.Addr{})
		if err != nil {
			t.Fatal(err)
		}
		defer stop()
	}

	// nginx sees the client, on every real (rr: one request each, twice),
	// once the health checks (with their own headers) found them up.
	if err := waitCond(ctx, 10*time.Second, func() bool {
		st := gvsStatus(ctx, t, env.SocketPath)
		for _, r := range st.Services[0].Reals {
			if r.Health != "up" {
				return false
			}
		}
		return len(st.Services[0].Reals) == len(l.Reals)
	}); err != nil {
		t.Fatalf("nginx's reals never passed their health check: %+v", gvsStatus(ctx, t, env.SocketPath).Services[0].Reals)
	}
	web := netip.AddrPortFrom(scenario.VIP, ppNginxVPort)
	for i := range 2 * len(l.Reals) {
		local, body, err := httpGet(ctx, l.Client, web, "/")
		if err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		f := strings.Fields(string(body))
		if len(f) != 3 || f[0] != l.Client.Addr.String() || f[1] != strconv.Itoa(int(local.Port())) {
			t.Fatalf("request %d from %s: nginx saw %q, want the client's address and port as $proxy_protocol_addr and _port", i, local, body)
		}
		if mode == config.FullNAT && f[2] == l.Client.Addr.String() {
			t.Fatalf("request %d: $remote_addr %s is the client's in FULLNAT", i, f[2])
		}
	}
	for i := range len(l.Reals) {
		_, body, err := httpGet(ctx, l.Client, web, "/big")
		if err != nil {
			t.Fatalf("big file %d: %v", i, err)
		}
		if !bytes.Equal(body, big) {
			t.Fatalf("big file %d: %d bytes, not the file's %d", i, len(body), len(big))
		}
	}

	// A server that speaks first, then an echo both ways at once.
	// One packet is dropped: a quota between one packet's length and
	// two's (nft counts the IP packet).
	dropFirst := func(h *lab.Host, match string, size int) {
		rules := fmt.Sprintf("table inet gvsitpp {\n chain input {\n  type filter hook input priority -300;\n"+
			"  %s quota until %d bytes drop\n }\n}\n", match, size+size/2)
		cmd := h.Command(ctx, "nft", "-f", "-")
		cmd.Stdin = strings.NewReader(rules)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("nft on %s: %v\n%s", h.Name, err, out)
		}
	}
	switch lose {
	case "header":
		// The first v2 header to the echo port: behind a TCP header
		// with timestamps (32 bytes), its signature's first word.
		for _, r := range l.Reals {
			dropFirst(r, fmt.Sprintf("tcp dport %d @th,256,32 0x0d0a0d0a", ppEchoPort), 20+32+28)
		}
	case "synack":
		// A SYN-ACK with MSS, SACK, timestamps and window scaling.
		dropFirst(l.Client, fmt.Sprintf("tcp sport %d tcp flags & (syn|ack) == syn|ack", ppEchoVPort), 20+40)
	}
	before, _ := signalCounters(ctx, t, env.Gvsd)
	for i := range len(l.Reals) {
		if err := proxyEchoOnce(ctx, l.Client, netip.AddrPortFrom(scenario.VIP, ppEchoVPort), ppEchoBytes); err != nil {
			t.Fatalf("echo %d: %v", i, err)
		}
	}

	after, raw := signalCounters(ctx, t, env.Gvsd)
	sent, resent := after.Dataplane.ProxyHeaders-before.Dataplane.ProxyHeaders, after.Dataplane.ProxyResent-before.Dataplane.ProxyResent
	t.Logf("echo connections: %d headers sent, %d sent again, %d acknowledged", sent, resent, after.Dataplane.ProxyAcked-before.Dataplane.ProxyAcked)
	if sent != uint64(len(l.Reals)) || lose == "header" && resent < uint64(len(l.Reals)) {
		t.Fatalf("%d headers sent and %d again for %d connections (lost: %v); counters %s", sent, resent, len(l.Reals), lose, raw)
	}
	st := gvsStatus(ctx, t, env.SocketPath)
	if len(st.Services) == 0 || st.Services[0].ProxyProtocol != version {
		t.Fatalf("gvsadm -L --json: services %+v, want proxy_protocol %s", st.Services, version)
	}
	if out, err := exec.CommandContext(ctx, bins.gvsadm, "--socket", env.SocketPath, "-L", "-n").Output(); err != nil ||
		!strings.Contains(string(out), "proxy-protocol "+version) {
		t.Fatalf("gvsadm -L -n: %v\n%s", err, out)
	}
	if mode == config.FullNAT && !synproxy {
		checkCaptureHeader(ctx, t, env, l, version)
	}
	if mode == config.FullNAT {
		// doctor finds every real's port expecting the header: nginx
		// closes on the probe's broken header, the echo server too.
		out, _ := exec.CommandContext(ctx, bins.gvsadm, "--socket", env.SocketPath, "doctor").CombinedOutput()
		for _, r := range l.Reals {
			for _, port := range []int{ppNginxPort, ppEchoPort} {
				if !regexp.MustCompile(`(?m)^ok +proxy_protocol ` + regexp.QuoteMeta(netip.AddrPortFrom(r.Addr, uint16(port)).String()) + ` `).Match(out) {
					t.Errorf("gvsadm doctor has no ok line for %s:%d:\n%s", r.Addr, port, out)
				}
			}
		}
	}
	if env.Gvsd.Exited() {
		t.Fatal("gvsd exited")
	}
}

// ppFailoverPort is where the reals of TestFailoverProxyProtocol serve the
// PROXY echo (servePROXYEcho without the greeting).
const ppFailoverPort = 8084

// TestFailoverProxyProtocol is TestFailover's NAT and FULLNAT kill cases
// with proxy_protocol = "v2" on the TCP service, whose reals strip the
// header and echo (in FULLNAT the local address moves with the VIP): the stream's connection, its header sent by the master and
// its offset learnt by the backup from sync, must carry on through the
// takeover byte for byte (a backup that did not shift the client's
// sequence numbers by the header's length would feed the real bytes it
// already has, and the stream would stall), and the new connections of
// the request load, given their headers by whichever director holds the
// VIP, must all succeed.
func TestFailoverProxyProtocol(t *testing.T) {
	for _, mode := range []config.Forward{config.NAT, config.FullNAT} {
		c := failoverCase{mode, true, 100 * time.Millisecond, true, false, true}
		t.Run(c.name(), func(t *testing.T) { runFailover(t, c) })
	}
}

// proxyFailoverConfig turns the scenario's configuration base into
// TestFailoverProxyProtocol's: the TCP service (the first) gets
// proxy_protocol = "v2" and its reals listen on ppFailoverPort.
func proxyFailoverConfig(t *testing.T, base string, mode config.Forward) string {
	t.Helper()
	fwd := fmt.Sprintf("forward = %q\n", mode)
	port := fmt.Sprintf(":%d\"\n", scenario.TCPPort+8000)
	if mode != config.NAT && mode != config.FullNAT || !strings.Contains(base, fwd) || !strings.Contains(base, port) {
		t.Fatalf("the scenario's config has no NAT or FULLNAT TCP service on %q:\n%s", port, base)
	}
	base = strings.Replace(base, fwd, fwd+"proxy_protocol = \"v2\"\n", 1)
	return strings.ReplaceAll(base, port, fmt.Sprintf(":%d\"\n", ppFailoverPort))
}

// proxyProtocolConfig is the lab's configuration of TestProxyProtocol.
func proxyProtocolConfig(l *lab.Lab, mode config.Forward, version string, synproxy bool) string {
	var b strings.Builder
	fmt.Fprintf(&b, "[director]\ninterface = %q\nworkers = 2\n\n", l.Director.Iface)
	for _, s := range []struct{ vport, port uint16 }{{ppNginxVPort, ppNginxPort}, {ppEchoVPort, ppEchoPort}} {
		fmt.Fprintf(&b, "[[service]]\naddress = \"%s:%d\"\nscheduler = \"rr\"\nforward = %q\nproxy_protocol = %q\nsynproxy = %v\n",
			scenario.VIP, s.vport, mode, version, synproxy)
		if s.vport == ppNginxVPort {
			// The reals start down and come up only once nginx takes
			// the check's connection: with a PROXY header of its own.
			b.WriteString("  [service.check]\n  type = \"http\"\n  interval = \"200ms\"\n  timeout = \"200ms\"\n  rise = 1\n  alpha = true\n")
		}
		for _, r := range l.Reals {
			fmt.Fprintf(&b, "  [[service.real]]\n  address = \"%s:%d\"\n", r.Addr, s.port)
		}
	}
	return b.String()
}

// startNginx runs nginx on h, in dir, listening on ppNginxPort with the
// PROXY protocol: / answers "$proxy_protocol_addr $proxy_protocol_port
// $remote_addr", /big serves big. It waits until nginx listens and stops
// it at the end of the test.
func startNginx(ctx context.Context, t *testing.T, h *lab.Host, dir string, big []byte) {
	t.Helper()
	if err := os.MkdirAll(filepath.Join(dir, "tmp"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "big"), big, 0o644); err != nil {
		t.Fatal(err)
	}
	conf := fmt.Sprintf(`daemon off;
master_process off;
pid %[1]s/nginx.pid;
error_log %[1]s/error.log info;
events {}
http {
	access_log off;
	client_body_temp_path %[1]s/tmp;
	proxy_temp_path %[1]s/tmp;
	fastcgi_temp_path %[1]s/tmp;
	uwsgi_temp_path %[1]s/tmp;
	scgi_temp_path %[1]s/tmp;
	server {
		listen %[2]s:%[3]d proxy_protocol;
		location = / { return 200 "$proxy_protocol_addr $proxy_protocol_port $remote_addr\n"; }
		location = /big { default_type application/octet-stream; alias %[1]s/big; }
	}
}
`, dir, h.Addr, ppNginxPort)
	path := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(path, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	p, err := scenario.Start(ctx, h, filepath.Join(dir, "nginx.log"), []string{"nginx", "-p", dir, "-c", path, "-e", filepath.Join(dir, "error.log")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Stop() })
	addr := netip.AddrPortFrom(h.Addr, ppNginxPort)
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := h.DialTCP(ctx, addr)
		if err == nil {
			c.Close()
			return
		}
		if p.Exited() || time.Now().After(deadline) {
			t.Fatalf("nginx on %s does not listen on %s: %v\n%s", h.Name, addr, err, p.Log())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// httpGet makes one HTTP/1.0 request for path over a new connection from
// h and returns the connection's local address and the response's body.
func httpGet(ctx context.Context, h *lab.Host, addr netip.AddrPort, path string) (netip.AddrPort, []byte, error) {
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	c, err := h.DialTCP(ctx, addr)
	if err != nil {
		return netip.AddrPort{}, nil, err
	}
	defer c.Close()
	local := c.LocalAddr().(*net.TCPAddr).AddrPort()
	c.SetDeadline(time.Now().Add(20 * time.Second))
	if _, err := io.WriteString(c, "GET "+path+" HTTP/1.0\r\nHost: vip\r\n\r\n"); err != nil {
		return local, nil, err
	}
	b, err := io.ReadAll(c)
	if err != nil {
		return local, nil, err
	}
	head, body, ok := bytes.Cut(b, []byte("\r\n\r\n"))
	if !ok || !bytes.HasPrefix(head, []byte("HTTP/1.1 200")) {
		return local, nil, fmt.Errorf("response %q", b[:min(len(b), 80)])
	}
	return local, body, nil
}

// servePROXYEcho serves, on h at addr, connections that start with a PROXY
// header (v1 or v2): it reads the header, writes "hello ADDR:PORT\n" with
// the source it names if greet, and then echoes everything after the
// header. A connection without a valid header is closed without a word,
// as nginx and HAProxy close it.
//
// With client valid, a connection whose header names another source is
// closed at once, so whatever runs through it fails.
func servePROXYEcho(h *lab.Host, addr netip.AddrPort, greet bool, client netip.Addr) (stop func(), err error) {
	var ln net.Listener
	if err := h.Do(func() error {
		var err error
		network := "tcp4"
		if addr.Addr().Is6() {
			network = "tcp6"
		}
		ln, err = net.Listen(network, addr.String())
		return err
	}); err != nil {
		return nil, fmt.Errorf("PROXY echo on %s %s: %w", h.Name, addr, err)
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { // the accept loop, ended by stop
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() { // one connection
				defer wg.Done()
				defer c.Close()
				r := bufio.NewReader(c)
				src, err := readPROXYHeader(r)
				if err != nil || client.IsValid() && src.Addr() != client {
					return
				}
				if greet {
					fmt.Fprintf(c, "hello %s\n", src)
				}
				io.Copy(c, r)
			}()
		}
	}()
	return func() { ln.Close(); wg.Wait() }, nil
}

// readPROXYHeader reads a PROXY protocol header of TCP over IPv4 or IPv6,
// v1 or v2 (proxy-protocol.txt), and returns the source it names.
func readPROXYHeader(r *bufio.Reader) (netip.AddrPort, error) {
	sig := []byte("\r\n\r\n\x00\r\nQUIT\n")
	first, err := r.Peek(len(sig))
	if err != nil {
		return netip.AddrPort{}, err
	}
	if bytes.Equal(first, sig) {
		var h [16 + 36]byte
		if _, err := io.ReadFull(r, h[:16]); err != nil {
			return netip.AddrPort{}, err
		}
		switch n := binary.BigEndian.Uint16(h[14:]); {
		case h[12] == 0x21 && h[13] == 0x11 && n == 12: // TCP over IPv4
			if _, err := io.ReadFull(r, h[16:16+12]); err != nil {
				return netip.AddrPort{}, err
			}
			return netip.AddrPortFrom(netip.AddrFrom4([4]byte(h[16:20])), binary.BigEndian.Uint16(h[24:])), nil
		case h[12] == 0x21 && h[13] == 0x21 && n == 36: // TCP over IPv6
			if _, err := io.ReadFull(r, h[16:16+36]); err != nil {
				return netip.AddrPort{}, err
			}
			return netip.AddrPortFrom(netip.AddrFrom16([16]byte(h[16:32])), binary.BigEndian.Uint16(h[48:])), nil
		}
		return netip.AddrPort{}, fmt.Errorf("v2 header % x", h[12:16])
	}
	line, err := r.ReadString('\n')
	if err != nil {
		return netip.AddrPort{}, err
	}
	f := strings.Fields(strings.TrimSuffix(line, "\r\n"))
	if len(f) != 6 || f[0] != "PROXY" || (f[1] != "TCP4" && f[1] != "TCP6") || !strings.HasSuffix(line, "\r\n") {
		return netip.AddrPort{}, fmt.Errorf("v1 header %q", line)
	}
	a, err := netip.ParseAddr(f[2])
	if err != nil {
		return netip.AddrPort{}, err
	}
	p, err := strconv.ParseUint(f[4], 10, 16)
	if err != nil {
		return netip.AddrPort{}, err
	}
	return netip.AddrPortFrom(a, uint16(p)), nil
}

// proxyEchoOnce connects from h to a servePROXYEcho service at addr, waits
// for its greeting before sending anything and checks that it names the
// connection's own address, then sends n random bytes while reading them
// back, and compares.
func proxyEchoOnce(ctx context.Context, h *lab.Host, addr netip.AddrPort, n int) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	c, err := h.DialTCP(ctx, addr)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(30 * time.Second))
	local := c.LocalAddr().(*net.TCPAddr).AddrPort()
	r := bufio.NewReader(c)
	hello, err := r.ReadString('\n')
	if err != nil {
		return fmt.Errorf("greeting: %w", err)
	}
	if want := "hello " + local.String() + "\n"; hello != want {
		return fmt.Errorf("greeting %q, want %q", hello, want)
	}
	out := make([]byte, n)
	rand.Read(out)
	werr := make(chan error, 1)
	go func() { // the client's sending half
		_, err := c.Write(out)
		werr <- err
	}()
	back := make([]byte, n)
	if _, err := io.ReadFull(r, back); err != nil {
		return fmt.Errorf("reading the echo: %w", err)
	}
	if err := <-werr; err != nil {
		return fmt.Errorf("sending: %w", err)
	}
	if !bytes.Equal(back, out) {
		i := 0
		for i < n && back[i] == out[i] {
			i++
		}
		return fmt.Errorf("echo differs from byte %d of %d", i, n)
	}
	return nil
}

// checkCaptureHeader runs gvsadm capture while requests go to nginx, and
// looks in its pcapng file for the header segment gvsd sent a real: a
// frame sent without one received, carrying exactly the header of one of
// the client's connections.
func checkCaptureHeader(ctx context.Context, t *testing.T, env *scenario.Env, l *lab.Lab, version string) {
	t.Helper()
	cctx, ccancel := context.WithTimeout(ctx, 30*time.Second)
	defer ccancel()
	file := filepath.Join(t.TempDir(), "pp.pcapng")
	cmd := exec.CommandContext(cctx, bins.gvsadm, "--socket", env.SocketPath, "capture", "-w", file, "-c", "30",
		"-t", netip.AddrPortFrom(scenario.VIP, ppNginxVPort).String())
	var errb bytes.Buffer
	cmd.Stderr = &errb
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	var locals []netip.AddrPort
wait:
	for {
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("gvsadm capture: %v\n%s", err, errb.String())
			}
			break wait
		case <-time.After(100 * time.Millisecond):
			local, _, err := httpGet(ctx, l.Client, netip.AddrPortFrom(scenario.VIP, ppNginxVPort), "/")
			if err != nil {
				t.Fatalf("request during the capture: %v", err)
			}
			locals = append(locals, local)
		}
	}
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r, err := pcapgo.NewNgReader(f, pcapgo.DefaultNgReaderOptions)
	if err != nil {
		t.Fatal(err)
	}
	var frames []string
	for {
		data, ci, opts, err := r.ReadPacketDataWithOptions()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		p := gopacket.NewPacket(data, layers.LayerTypeEthernet, gopacket.Default)
		tcp, _ := p.Layer(layers.LayerTypeTCP).(*layers.TCP)
		frames = append(frames, fmt.Sprintf("if %d %q %v", ci.InterfaceIndex, opts.Comments, p))
		if ci.InterfaceIndex != 1 || tcp == nil || len(tcp.Payload) == 0 {
			continue
		}
		for _, local := range locals {
			var want []byte
			if version == "v1" {
				want = fmt.Appendf(nil, "PROXY TCP4 %s %s %d %d\r\n", local.Addr(), scenario.VIP, local.Port(), ppNginxVPort)
			} else {
				want = append([]byte("\r\n\r\n\x00\r\nQUIT\n\x21\x11\x00\x0c"), local.Addr().AsSlice()...)
				want = append(want, scenario.VIP.AsSlice()...)
				want = binary.BigEndian.AppendUint16(binary.BigEndian.AppendUint16(want, local.Port()), ppNginxVPort)
			}
			if bytes.Equal(tcp.Payload, want) && tcp.PSH && tcp.ACK {
				return
			}
		}
	}
	t.Fatalf("no header segment among the captured frames:\n%s", strings.Join(frames, "\n"))
}
