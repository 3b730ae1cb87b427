package config

import (
	"reflect"
	"testing"
)

// TestParseProxyProtocol: proxy_protocol on a service applies to its reals;
// a real's own, "" included, overrides it.
func TestParseProxyProtocol(t *testing.T) {
	c := mustParse(t, head+`
[[service]]
address = "10.0.0.1:80"
forward = "fullnat"
proxy_protocol = "v2"
  [[service.real]]
  address = "10.0.0.2:8080"
  [[service.real]]
  address = "10.0.0.3:8080"
  proxy_protocol = "v1"
  forward = "nat"
  [[service.real]]
  address = "10.0.0.4:8080"
  proxy_protocol = ""
`)
	s := c.Services[0]
	var got []string
	for _, r := range s.Reals {
		got = append(got, r.ProxyProtocol)
	}
	if s.ProxyProtocol != "v2" || !reflect.DeepEqual(got, []string{"v2", "v1", ""}) {
		t.Fatalf("service %q, reals %q; want v2, [v2 v1 \"\"]", s.ProxyProtocol, got)
	}
	if s.Reals[0].OwnProxyProtocol || !s.Reals[1].OwnProxyProtocol || !s.Reals[2].OwnProxyProtocol {
		t.Fatalf("OwnProxyProtocol %v %v %v, want false true true", s.Reals[0].OwnProxyProtocol, s.Reals[1].OwnProxyProtocol, s.Reals[2].OwnProxyProtocol)
	}
}

// TestParseProxyProtocolErrors: an unknown version, UDP, and a dr or tun
// real (the service's value told at the real's forward, its own at its
// proxy_protocol) are refused, each at its path.
func TestParseProxyProtocolErrors(t *testing.T) {
	for _, tt := range []struct {
		name string
		src  string
		want []FieldError
	}{
		{"unknown version", "[[service]]\naddress = \"10.0.0.1:80\"\nforward = \"nat\"\nproxy_protocol = \"v3\"\n[[service.real]]\naddress = \"10.0.0.2:80\"\n",
			[]FieldError{{"service[0].proxy_protocol", `"v3" is not a PROXY protocol version (want "v1", "v2" or "" for none)`}}},
		{"udp", "[[service]]\nprotocol = \"udp\"\naddress = \"10.0.0.1:53\"\nforward = \"fullnat\"\nproxy_protocol = \"v2\"\n[[service.real]]\naddress = \"10.0.0.2:53\"\n",
			[]FieldError{{"service[0].proxy_protocol", "only valid with protocol tcp"}}},
		{"dr real of the service's", "[[service]]\naddress = \"10.0.0.1:80\"\nproxy_protocol = \"v2\"\n[[service.real]]\naddress = \"10.0.0.2:80\"\n",
			[]FieldError{{"service[0].real[0].forward", `dr with proxy_protocol "v2": the PROXY protocol needs nat or fullnat (the director writes the header into the stream to the real, so it must see the real's replies)`}}},
		{"tun real of its own", "[[service]]\naddress = \"10.0.0.1:80\"\nforward = \"fullnat\"\n[[service.real]]\naddress = \"10.0.0.2:80\"\nforward = \"tun\"\nproxy_protocol = \"v1\"\n[[service.real]]\naddress = \"10.0.0.3:80\"\nproxy_protocol = \"V2\"\n",
			[]FieldError{
				{"service[0].real[0].proxy_protocol", "needs forward nat or fullnat, not tun: the director writes the header into the stream to the real, so it must see the real's replies"},
				{"service[0].real[1].proxy_protocol", `"V2" is not a PROXY protocol version (want "v1", "v2" or "" for none)`},
			}},
		{"wrong type", "[[service]]\naddress = \"10.0.0.1:80\"\nforward = \"nat\"\nproxy_protocol = 2\n",
			[]FieldError{{"service[0].proxy_protocol", "want a string, got integer 2"}}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got := parseErrs(t, head+tt.src)
			if !reflect.DeepEqual([]FieldError(got), tt.want) {
				t.Fatalf("errors:\n%v\nwant:\n%v", got, tt.want)
			}
		})
	}
}
