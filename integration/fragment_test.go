package integration

import (
	"testing"

	"github.com/gvs-lb/gvs/control/config"
	"github.com/gvs-lb/gvs/integration/scenario"
)

// TestFragmentedUDP sends UDP datagrams of 4000 bytes through the VIP,
// which the client's kernel sends as three IP fragments each, in every
// forwarding method; the real servers' echoes come back fragmented too
// (through the director in NAT and FULLNAT). Every datagram must come back
// whole: gvsd sends the later fragments where their first fragment went,
// and in TUN, where a full-size fragment no longer fits the MTU once
// encapsulated, it fragments the outer packet.
func TestFragmentedUDP(t *testing.T) {
	for _, mode := range []config.Forward{config.DR, config.TUN, config.NAT, config.FullNAT} {
		t.Run(mode.String(), func(t *testing.T) {
			res := runScenario(t, mode, scenario.Options{Conns: 2, Datagrams: 8, DatagramSize: 4000})
			if res.UDPOK != 8 {
				t.Fatalf("%d of 8 fragmented datagrams came back whole", res.UDPOK)
			}
		})
	}
}
