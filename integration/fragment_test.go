package integration

import (
	"testing"

	"github.com/gvs-lb/gvs/control/config"
	"github.com/gvs-lb/gvs/integration/scenario"
)

// TestFragmentedUDP sends UDP datagrams of 4000 bytes through the VIP,
// which the client's kernel sends as three IP fragments each, in DR, NAT
// and FULLNAT; the real servers' echoes come back fragmented too (through
// the director in NAT and FULLNAT). Every datagram must come back whole:
// gvsd sends the later fragments where their first fragment went. TUN is
// left out: a full-size fragment does not fit the tunnel, and gvsd does
// not fragment the outer packet (see README, Limits).
func TestFragmentedUDP(t *testing.T) {
	for _, mode := range []config.Forward{config.DR, config.NAT, config.FullNAT} {
		t.Run(mode.String(), func(t *testing.T) {
			res := runScenario(t, mode, scenario.Options{Conns: 2, Datagrams: 8, DatagramSize: 4000})
			if res.UDPOK != 8 {
				t.Fatalf("%d of 8 fragmented datagrams came back whole", res.UDPOK)
			}
		})
	}
}
