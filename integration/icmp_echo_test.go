package integration

import (
	"context"
	"net"
	"os"
	"testing"
	"time"

	"golang.org/x/net/icmp"
	"golang.org/x/net/ipv4"

	"github.com/gvs-lb/gvs/control/config"
	"github.com/gvs-lb/gvs/integration/scenario"
)

// TestPingVIP: an ICMP echo to the VIP is answered by the director (its
// kernel owns the VIP; the dataplane and its ingress table leave echo
// alone), as ping to an LVS VIP is.
func TestPingVIP(t *testing.T) {
	l := needLab(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	o := scenario.Options{Gvsd: []string{bins.gvsd}, Realserver: []string{bins.realserver}, Dir: t.TempDir(), Logf: t.Logf}
	env, err := scenario.Setup(ctx, l, config.DR, o, "")
	if err != nil {
		t.Fatal(err)
	}
	defer env.Close()
	var c *icmp.PacketConn
	if err := l.Client.Do(func() (err error) {
		c, err = icmp.ListenPacket("ip4:icmp", "0.0.0.0")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	echo := icmp.Message{Type: ipv4.ICMPTypeEcho, Body: &icmp.Echo{ID: os.Getpid() & 0xffff, Seq: 1, Data: []byte("gvs ping")}}
	b, err := echo.Marshal(nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.WriteTo(b, &net.IPAddr{IP: scenario.VIP.AsSlice()}); err != nil {
		t.Fatal(err)
	}
	c.SetReadDeadline(time.Now().Add(3 * time.Second))
	buf := make([]byte, 1500)
	for {
		n, from, err := c.ReadFrom(buf)
		if err != nil {
			t.Fatalf("no echo reply from the VIP: %v", err)
		}
		m, err := icmp.ParseMessage(1, buf[:n])
		if err != nil || m.Type != ipv4.ICMPTypeEchoReply {
			continue
		}
		if from.String() != scenario.VIP.String() {
			t.Fatalf("echo reply from %v, want the VIP", from)
		}
		if e, ok := m.Body.(*icmp.Echo); !ok || string(e.Data) != "gvs ping" {
			t.Fatalf("echo reply body %+v", m.Body)
		}
		return
	}
}
