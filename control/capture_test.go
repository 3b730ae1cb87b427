package control

import (
	"net/netip"
	"testing"

	"github.com/gvs-lb/gvs/control/api"
	"github.com/gvs-lb/gvs/dataplane"
)

// TestCaptureFilter: gvsadm's capture options become the dataplane's
// filter, and nonsense is refused with what is wanted.
func TestCaptureFilter(t *testing.T) {
	f, err := captureFilter(&api.CaptureRequest{Protocol: "tcp", Service: "tcp:10.20.0.100:80", Real: "10.20.0.11",
		Host: "10.10.0.7/16", Port: 80, Verdicts: []string{"forward", "no_conn"}})
	if err != nil {
		t.Fatal(err)
	}
	want := dataplane.CaptureFilter{Proto: 6, Service: &dataplane.ServiceKey{Proto: 6, VIP: [4]byte{10, 20, 0, 100}, Port: 80},
		Real: netip.MustParseAddrPort("10.20.0.11:0"), Host: netip.MustParsePrefix("10.10.0.0/16"), Port: 80,
		Verdicts: 1<<dataplane.VerdictForward | 1<<dataplane.VerdictNoConn}
	if f.Proto != want.Proto || *f.Service != *want.Service || f.Real != want.Real || f.Host != want.Host || f.Port != want.Port || f.Verdicts != want.Verdicts {
		t.Fatalf("filter %+v (service %+v), want %+v", f, *f.Service, want)
	}
	if f, err := captureFilter(&api.CaptureRequest{Host: "10.10.0.7", Real: "10.20.0.11:8080"}); err != nil ||
		f.Host != netip.MustParsePrefix("10.10.0.7/32") || f.Real != netip.MustParseAddrPort("10.20.0.11:8080") {
		t.Fatalf("single host and real with port: %+v, %v", f, err)
	}
	// IPv6: the service as tcp:[VIP]:port, the real and the host in
	// IPv6 form.
	f, err = captureFilter(&api.CaptureRequest{Service: "udp:[fd00:20::100]:53", Real: "[fd00:20::11]:5353", Host: "fd00:10::7/64"})
	if err != nil {
		t.Fatal(err)
	}
	if f.Service != nil || f.Service6 == nil || *f.Service6 != (dataplane.ServiceKey6{Proto: 17, VIP: netip.MustParseAddr("fd00:20::100").As16(), Port: 53}) ||
		f.Real != netip.MustParseAddrPort("[fd00:20::11]:5353") || f.Host != netip.MustParsePrefix("fd00:10::/64") {
		t.Fatalf("IPv6 filter %+v", f)
	}
	if f, err := captureFilter(&api.CaptureRequest{Real: "fd00:20::11", Host: "fd00:10::7"}); err != nil ||
		f.Real != netip.MustParseAddrPort("[fd00:20::11]:0") || f.Host != netip.MustParsePrefix("fd00:10::7/128") {
		t.Fatalf("IPv6 real without a port and single host: %+v, %v", f, err)
	}
	for _, bad := range []api.CaptureRequest{
		{Protocol: "sctp"}, {Service: "10.20.0.100:80"}, {Service: "tcp:fd00::1:80"}, {Service: "tcp:[::ffff:10.0.0.1]:80"}, {Real: "rs1"},
		{Real: "fe80::1%eth0"}, {Host: "10.0.0.0/33"}, {Host: "fd00::/129"}, {Verdicts: []string{"lost"}}, {Seconds: -1},
	} {
		if _, err := captureFilter(&bad); err == nil {
			t.Errorf("%+v accepted", bad)
		}
	}
}
