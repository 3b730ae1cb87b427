package config

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/BurntSushi/toml"
)

// Parse decodes and validates a config file's contents; on failure it returns *Errors
// holding every problem found. A TOML syntax error stops decoding and is the only
// problem reported; otherwise type errors, unknown keys and rule violations are reported
// together.
func Parse(data []byte) (*Config, error) {
	// The TOML is decoded into a generic tree and walked by hand rather than decoded into
	// structs: struct decoding stops at the first type error, and the library's
	// MetaData.Undecoded() names an unknown key in an array of tables without its index
	// ("service.real.wieght"), where we want "service[0].real[1].wieght".
	var tree map[string]any
	if err := toml.Unmarshal(data, &tree); err != nil {
		return nil, &Errors{syntaxError(err)}
	}
	d := decoder{bad: make(map[string]bool)}
	c := d.config(tree)
	v := validator{bad: d.bad}
	v.config(c)
	errs := append(d.errs, v.errs...)
	if len(errs) > 0 {
		errs.sort()
		return nil, &errs
	}
	return c, nil
}

// Load reads the file at path and calls Parse. Every line of a returned error starts
// with the file's name; errors.As finds the *Errors inside.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	c, err := Parse(data)
	if err != nil {
		var errs *Errors
		if !errors.As(err, &errs) {
			return nil, fmt.Errorf("config: %s: %w", path, err)
		}
		return nil, &fileError{file: path, errs: errs}
	}
	return c, nil
}

// fileError is what Load returns for a file that does not parse: every problem prefixed
// with the file's name, as compilers do.
type fileError struct {
	file string
	errs *Errors
}

func (e *fileError) Error() string {
	var b strings.Builder
	for i, fe := range *e.errs {
		if i > 0 {
			b.WriteByte('\n')
		}
		b.WriteString(e.file)
		b.WriteString(": ")
		b.WriteString(fe.Error())
	}
	return b.String()
}

func (e *fileError) Unwrap() error { return e.errs }

// syntaxError turns the TOML library's error into a FieldError without a path.
func syntaxError(err error) FieldError {
	var pe toml.ParseError
	if errors.As(err, &pe) {
		return FieldError{Msg: fmt.Sprintf("line %d, column %d: %s", pe.Position.Line, pe.Position.Col, pe.Message)}
	}
	return FieldError{Msg: err.Error()}
}

// decoder walks the generic TOML tree against the schema, fills a Config with defaults
// and decoded values, and records type and syntax problems. Slices keep one element per
// element of the file (a zero value where decoding failed) so that paths line up with
// the validator's.
type decoder struct {
	errs Errors
	// bad holds the paths that already have a problem, or whose value could not be
	// derived because of one; the validator says nothing more about them or below them.
	bad map[string]bool
}

func (d *decoder) fail(path, format string, args ...any) {
	d.errs = append(d.errs, FieldError{Path: path, Msg: fmt.Sprintf(format, args...)})
	d.bad[path] = true
}

func (d *decoder) wrongType(path, want string, v any) {
	d.fail(path, "want %s, got %s", want, describe(v))
}

// field is one key of a table and the function that decodes its value.
type field struct {
	key    string
	decode func(path string, v any)
}

// table decodes the known keys of a table in schema order and reports every other key.
func (d *decoder) table(path string, v any, fields []field) {
	m, ok := v.(map[string]any)
	if !ok {
		d.wrongType(path, "a table", v)
		return
	}
	for _, f := range fields {
		if fv, ok := m[f.key]; ok {
			f.decode(join(path, f.key), fv)
		}
	}
	var unknown []string
	for k := range m {
		if !slices.ContainsFunc(fields, func(f field) bool { return f.key == k }) {
			unknown = append(unknown, k)
		}
	}
	slices.Sort(unknown)
	for _, k := range unknown {
		d.fail(join(path, k), "unknown key")
	}
}

// list accepts an array, including an array of tables.
func (d *decoder) list(path, want string, v any) ([]any, bool) {
	switch l := v.(type) {
	case []any:
		return l, true
	case []map[string]any:
		out := make([]any, len(l))
		for i, m := range l {
			out[i] = m
		}
		return out, true
	}
	d.wrongType(path, want, v)
	return nil, false
}

func (d *decoder) setString(dst *string) func(string, any) {
	return func(path string, v any) {
		if s, ok := v.(string); ok {
			*dst = s
			return
		}
		d.wrongType(path, "a string", v)
	}
}

func (d *decoder) setInt(dst *int) func(string, any) {
	return func(path string, v any) {
		n, ok := v.(int64)
		if !ok {
			d.wrongType(path, "an integer", v)
			return
		}
		if int64(int(n)) != n {
			d.fail(path, "%d is out of range", n)
			return
		}
		*dst = int(n)
	}
}

func (d *decoder) setStrings(dst *[]string) func(string, any) {
	return func(path string, v any) {
		items, ok := d.list(path, "an array of strings", v)
		if !ok || len(items) == 0 {
			return
		}
		*dst = make([]string, 0, len(items))
		for i, it := range items {
			s, ok := it.(string)
			if !ok {
				d.wrongType(index(path, i), "a string", it)
				continue
			}
			*dst = append(*dst, s)
		}
	}
}

func (d *decoder) setBool(dst *bool) func(string, any) {
	return func(path string, v any) {
		if b, ok := v.(bool); ok {
			*dst = b
			return
		}
		d.wrongType(path, "true or false", v)
	}
}

func (d *decoder) setDuration(dst *time.Duration) func(string, any) {
	return func(path string, v any) {
		s, ok := v.(string)
		if !ok {
			d.wrongType(path, `a duration string like "15m"`, v)
			return
		}
		dur, err := time.ParseDuration(s)
		if err != nil {
			d.fail(path, `%s is not a duration (want Go syntax like "15m" or "90s")`, quote(s))
			return
		}
		*dst = dur
	}
}

func (d *decoder) setAddrPort(dst *netip.AddrPort) func(string, any) {
	return func(path string, v any) {
		s, ok := v.(string)
		if !ok {
			d.wrongType(path, `an "IP:port" string`, v)
			return
		}
		ap, err := netip.ParseAddrPort(s)
		if err != nil {
			d.fail(path, "%s is not IP:port", quote(s))
			return
		}
		*dst = ap
	}
}

// setAddr decodes one IP address string; "" leaves the zero Addr (unset).
func (d *decoder) setAddr(dst *netip.Addr) func(string, any) {
	return func(path string, v any) {
		s, ok := v.(string)
		if !ok {
			d.wrongType(path, "an IPv4 address string", v)
			return
		}
		if s == "" {
			return
		}
		a, err := netip.ParseAddr(s)
		if err != nil {
			d.fail(path, "%s is not an IP address", quote(s))
			return
		}
		*dst = a
	}
}

func (d *decoder) setProtocol(dst *Protocol) func(string, any) {
	return func(path string, v any) {
		s, ok := v.(string)
		if !ok {
			d.wrongType(path, `"tcp" or "udp"`, v)
			return
		}
		p, err := ParseProtocol(s)
		if err != nil {
			d.fail(path, "%s is not a protocol (want tcp or udp)", quote(s))
			return
		}
		*dst = p
	}
}

func (d *decoder) setForward(dst *Forward) func(string, any) {
	return func(path string, v any) {
		s, ok := v.(string)
		if !ok {
			d.wrongType(path, `"dr", "tun", "nat" or "fullnat"`, v)
			return
		}
		f, err := ParseForward(s)
		if err != nil {
			d.fail(path, "%s is not a forwarding method (want dr, tun, nat or fullnat)", quote(s))
			return
		}
		*dst = f
	}
}

func (d *decoder) config(tree map[string]any) *Config {
	c := Default()
	d.table("", tree, []field{
		{"director", func(path string, v any) { d.director(path, v, &c.Director) }},
		{"timeouts", func(path string, v any) {
			d.table(path, v, []field{
				{"tcp", d.setDuration(&c.Timeouts.TCP)},
				{"tcp_fin", d.setDuration(&c.Timeouts.TCPFin)},
				{"udp", d.setDuration(&c.Timeouts.UDP)},
				{"drain", d.setDuration(&c.Timeouts.Drain)},
			})
		}},
		{"limits", func(path string, v any) {
			d.table(path, v, []field{
				{"connections", d.setInt(&c.Limits.Connections)},
			})
		}},
		{"service", func(path string, v any) { c.Services = d.services(path, v) }},
		{"vrrp", func(path string, v any) { d.vrrp(path, v, &c.VRRP) }},
		{"sync", func(path string, v any) {
			c.Sync.Enabled = true
			d.table(path, v, []field{
				{"enabled", d.setBool(&c.Sync.Enabled)},
				{"interface", d.setString(&c.Sync.Interface)},
				{"peer", d.setAddr(&c.Sync.Peer)},
				{"group", d.setAddr(&c.Sync.Group)},
				{"ttl", d.setInt(&c.Sync.TTL)},
				{"port", d.setInt(&c.Sync.Port)},
				{"sync_id", d.setInt(&c.Sync.SyncID)},
				{"refresh", d.setDuration(&c.Sync.Refresh)},
			})
		}},
		{"bgp", func(path string, v any) { d.bgp(path, v, &c.BGP) }},
	})
	return c
}

func (d *decoder) bgp(path string, v any, b *BGP) {
	b.Enabled = true
	d.table(path, v, []field{
		{"enabled", d.setBool(&b.Enabled)},
		{"local_as", d.setInt(&b.LocalAS)},
		{"router_id", d.setAddr(&b.RouterID)},
		{"hold_time", d.setDuration(&b.HoldTime)},
		{"next_hop", d.setAddr(&b.NextHop)},
		{"next_hop6", d.setAddr(&b.NextHop6)},
		{"drain", d.setDuration(&b.Drain)},
		{"med", d.setInt(&b.MED)},
		{"communities", d.setStrings(&b.Communities)},
		{"peer_local_addresses", d.setAddrs(&b.PeerLocalAddresses)},
		{"peer", func(path string, v any) {
			items, ok := d.list(path, "an array of tables ([[bgp.peer]])", v)
			if !ok {
				return
			}
			b.Peers = make([]BGPPeer, len(items))
			for i, it := range items {
				p := &b.Peers[i]
				d.table(index(path, i), it, []field{
					{"address", d.setAddr(&p.Address)},
					{"as", d.setInt(&p.AS)},
					{"password", d.setString(&p.Password)},
				})
			}
		}},
	})
}

func (d *decoder) director(path string, v any, dir *Director) {
	d.table(path, v, []field{
		{"interface", d.setString(&dir.Interface)},
		{"workers", d.setInt(&dir.Workers)},
		{"local_addresses", d.setAddrs(&dir.LocalAddresses)},
		{"local_ports", func(path string, v any) {
			s, ok := v.(string)
			if !ok {
				d.wrongType(path, `a "LO-HI" string`, v)
				return
			}
			r, ok := parsePortRange(s)
			if !ok {
				d.fail(path, "%s %s", quote(s), portRangeWant)
				return
			}
			dir.LocalPorts = r
		}},
		{"metrics", d.setString(&dir.Metrics)},
		{"disable_gro", d.setBool(&dir.DisableGRO)},
		{"worker_policy", d.setString(&dir.WorkerPolicy)},
		{"busy_poll", d.setDuration(&dir.BusyPoll)},
	})
}

func (d *decoder) services(path string, v any) []Service {
	items, ok := d.list(path, "an array of tables ([[service]])", v)
	if !ok {
		return nil
	}
	out := make([]Service, len(items))
	for i, it := range items {
		out[i] = defaultService()
		d.service(index(path, i), it, &out[i])
	}
	return out
}

func (d *decoder) service(path string, v any, s *Service) {
	named, netmask := false, false
	d.table(path, v, []field{
		{"name", func(p string, v any) { named = true; d.setString(&s.Name)(p, v) }},
		{"protocol", d.setProtocol(&s.Protocol)},
		{"address", d.setAddrPort(&s.Address)},
		{"scheduler", d.setString(&s.Scheduler)},
		{"scheduler_flags", d.setStrings(&s.SchedulerFlags)},
		{"forward", d.setForward(&s.Forward)},
		{"persistence", d.setDuration(&s.Persistence)},
		{"persistence_netmask", func(p string, v any) { netmask = true; d.setInt(&s.PersistenceNetmask)(p, v) }},
		{"ops", d.setBool(&s.OPS)},
		{"synproxy", d.setBool(&s.SynProxy)},
		{"proxy_protocol", d.setString(&s.ProxyProtocol)},
		{"sorry", d.setAddrPort(&s.Sorry)},
		{"check", func(p string, v any) { d.check(p, v, &s.Check) }},
		// Last, so the reals see the service's decoded address and forward.
		{"real", func(p string, v any) { s.Reals = d.reals(p, v, path, s) }},
	})
	if d.bad[path] {
		return
	}
	if !netmask && s.Address.Addr().Is6() {
		s.PersistenceNetmask = defaultNetmask6 // ipvsadm's default for an IPv6 service
	}
	if !named {
		s.Name = defaultName(s.Protocol, s.Address)
		if d.bad[join(path, "protocol")] || d.bad[join(path, "address")] {
			d.bad[join(path, "name")] = true // derived from a bad value: say nothing about it
		}
	}
}

// setAddrs decodes an array of IPv4 address strings; [] leaves nil.
func (d *decoder) setAddrs(dst *[]netip.Addr) func(string, any) {
	return func(path string, v any) {
		items, ok := d.list(path, `an array of IPv4 address strings`, v)
		if !ok || len(items) == 0 {
			return // [] is the default: nil
		}
		*dst = make([]netip.Addr, len(items))
		for i, it := range items {
			p := index(path, i)
			s, ok := it.(string)
			if !ok {
				d.wrongType(p, "an IPv4 address string", it)
				continue
			}
			a, err := netip.ParseAddr(s)
			if err != nil {
				d.fail(p, "%s is not an IP address", quote(s))
				continue
			}
			(*dst)[i] = a
		}
	}
}

func (d *decoder) vrrp(path string, v any, r *VRRP) {
	d.table(path, v, []field{
		{"interface", d.setString(&r.Interface)},
		{"router_id", d.setInt(&r.RouterID)},
		{"version", d.setInt(&r.Version)},
		{"priority", d.setInt(&r.Priority)},
		{"advert_interval", d.setDuration(&r.AdvertInterval)},
		{"auth_type", d.setString(&r.AuthType)},
		{"auth_pass", d.setString(&r.AuthPass)},
		{"preempt", d.setBool(&r.Preempt)},
		{"preempt_delay", d.setDuration(&r.PreemptDelay)},
		{"unicast_peers", d.setAddrs(&r.UnicastPeers)},
		{"addresses", d.setAddrs(&r.Addresses)},
		{"notify", d.setStrings(&r.Notify)},
		{"garp_repeat", d.setInt(&r.GARPRepeat)},
		{"garp_delay", d.setDuration(&r.GARPDelay)},
		{"garp_refresh", d.setDuration(&r.GARPRefresh)},
	})
}

func (d *decoder) check(path string, v any, c *Check) {
	d.table(path, v, []field{
		{"type", d.setString(&c.Type)},
		{"interval", d.setDuration(&c.Interval)},
		{"timeout", d.setDuration(&c.Timeout)},
		{"rise", d.setInt(&c.Rise)},
		{"fall", d.setInt(&c.Fall)},
		{"port", d.setInt(&c.Port)},
		{"path", d.setString(&c.Path)},
		{"status", d.setInts(&c.Status)},
		{"expect", d.setString(&c.Expect)},
		{"send", d.setString(&c.Send)},
		{"command", d.setStrings(&c.Command)},
		{"on_failure", d.setString(&c.OnFailure)},
		{"alpha", d.setBool(&c.Alpha)},
	})
}

func (d *decoder) setInts(dst *[]int) func(string, any) {
	return func(path string, v any) {
		items, ok := d.list(path, "an array of integers", v)
		if !ok {
			return
		}
		*dst = make([]int, 0, len(items))
		for i, it := range items {
			n, ok := it.(int64)
			if !ok || int64(int(n)) != n {
				d.wrongType(index(path, i), "an integer", it)
				continue
			}
			*dst = append(*dst, int(n))
		}
	}
}

func (d *decoder) reals(path string, v any, svcPath string, s *Service) []Real {
	items, ok := d.list(path, "an array of tables ([[service.real]])", v)
	if !ok {
		return nil
	}
	out := make([]Real, len(items))
	for i, it := range items {
		p := index(path, i)
		r := Real{Weight: defaultWeight}
		d.table(p, it, []field{
			{"address", d.setAddrPort(&r.Address)},
			{"weight", d.setInt(&r.Weight)},
			{"upper_threshold", d.setInt(&r.UpperThreshold)},
			{"lower_threshold", d.setInt(&r.LowerThreshold)},
			{"forward", d.setForward(&r.Forward)},
			{"proxy_protocol", func(p string, v any) { r.OwnProxyProtocol = true; d.setString(&r.ProxyProtocol)(p, v) }},
		})
		if !r.OwnProxyProtocol {
			r.ProxyProtocol = s.ProxyProtocol
		}
		if r.Forward == 0 && !d.bad[join(p, "forward")] { // no forward of its own
			r.Forward = s.Forward
			if d.bad[join(svcPath, "forward")] {
				d.bad[join(p, "forward")] = true // inherited a bad value: say nothing about it
			}
		}
		// Port 0 means "the service's port", in every forwarding mode.
		if r.Address.IsValid() && r.Address.Port() == 0 && s.Address.IsValid() && s.Address.Port() != 0 {
			r.Address = netip.AddrPortFrom(r.Address.Addr(), s.Address.Port())
		}
		out[i] = r
	}
	return out
}

// join appends a key to a path, quoting a key that is not a bare TOML key.
func join(path, key string) string {
	if !bareKey(key) {
		key = strconv.Quote(key)
	}
	if path == "" {
		return key
	}
	return path + "." + key
}

func index(path string, i int) string { return path + "[" + strconv.Itoa(i) + "]" }

func bareKey(k string) bool {
	if k == "" {
		return false
	}
	for i := 0; i < len(k); i++ {
		c := k[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// maxQuoted bounds how much of a bad value a message repeats.
const maxQuoted = 64

// quote returns s quoted, shortened to maxQuoted bytes.
func quote(s string) string {
	if len(s) > maxQuoted {
		return strconv.Quote(s[:maxQuoted]) + "..."
	}
	return strconv.Quote(s)
}

// describe names a decoded TOML value's type, with the value when it is short.
func describe(v any) string {
	switch v := v.(type) {
	case string:
		return "string " + quote(v)
	case int64:
		return "integer " + strconv.FormatInt(v, 10)
	case float64:
		return "float " + strconv.FormatFloat(v, 'g', -1, 64)
	case bool:
		return "boolean " + strconv.FormatBool(v)
	case time.Time:
		return "datetime"
	case []any, []map[string]any:
		return "array"
	case map[string]any:
		return "table"
	}
	return fmt.Sprintf("%T", v)
}
