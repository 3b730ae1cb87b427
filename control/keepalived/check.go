package keepalived

import (
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

// checkDefaults are the checker options that a virtual_server sets for its
// real servers and a real_server for its checkers (keepalived.conf(5): "the
// virtual server setting is the default for real servers, and the real server
// setting is the default for checkers").
type checkDefaults struct {
	delayLoop      opt[time.Duration]
	connectTimeout opt[time.Duration]
	retry          opt[int]
	inhibit        opt[bool]
	alpha          opt[bool]
}

// keepalived's defaults (check_data.c, check_api.c).
const (
	kaDelayLoop      = 60 * time.Second // KEEPALIVED_DEFAULT_DELAY
	kaConnectTimeout = 5 * time.Second
	kaRetry          = 1 // 0 for MISC_CHECK
	maxRetry         = 99
)

// defaultShapes are the keywords of checkDefaults, checkerShapes and
// urlShapes those of checkers and their url blocks that gvs carries over.
var (
	defaultShapes = map[string]shape{
		"delay_loop": flat, "connect_timeout": flat, "retry": flat, "nb_get_retry": flat,
		"inhibit_on_failure": flat, "alpha": flat,
	}
	checkerShapes = withShapes(defaultShapes, map[string]shape{
		"connect_port": flat, "url": block, "misc_path": flat, "misc_timeout": flat, "payload": flat, "require_reply": flat,
	})
	urlShapes = map[string]shape{"path": flat, "status_code": flat, "regex": flat}
)

// checkDefault reads one of the options of checkDefaults, at any level, and
// warns about the timing options gvs has no place for; it reports whether n
// was one of them.
func (c *converter) checkDefault(n *node, d *checkDefaults) bool {
	switch n.keyword() {
	case "delay_loop":
		if v, ok := c.seconds(n, time.Millisecond, maxTimer); ok {
			d.delayLoop = some(v, n.pos)
		}
	case "connect_timeout":
		if v, ok := c.seconds(n, time.Millisecond, maxTimer); ok {
			d.connectTimeout = some(v, n.pos)
		}
	case "retry", "nb_get_retry":
		if v, ok := c.integer(n, 0, 1_000_000); ok {
			d.retry = some(v, n.pos)
		}
	case "inhibit_on_failure":
		if v, ok := c.flag(n); ok {
			d.inhibit = some(v, n.pos)
		}
	case "alpha":
		if v, ok := c.flag(n); ok {
			d.alpha = some(v, n.pos)
		}
	case "delay_before_retry":
		c.drop(n, "gvs checks again after the interval: its retries are the next checks, up to fall")
	case "warmup":
		c.drop(n, "gvs starts each real's first check at a random point of the interval")
	default:
		return false
	}
	return true
}

// checkerTypes maps keepalived's checkers to gvs's check types; "" has none.
var checkerTypes = map[string]string{
	"TCP_CHECK":  "tcp",
	"HTTP_GET":   "http",
	"SSL_GET":    "https",
	"MISC_CHECK": "exec",
	"UDP_CHECK":  "udp",
	"SMTP_CHECK": "",
	"DNS_CHECK":  "",
	"PING_CHECK": "",
	"BFD_CHECK":  "",
	"FILE_CHECK": "",
}

// checkerDef is one checker block of a real_server.
type checkerDef struct {
	n        *node
	typ      string
	defaults checkDefaults
	port     opt[int] // connect_port

	url         *node // the first url block (http, https)
	path        string
	status      []int // nil: keepalived's default, 200-299
	expect      string
	expectNote  string
	send        string // udp
	needReply   bool
	command     []string // exec: misc_path
	miscTimeout opt[time.Duration]
}

// checkerReasons say why a checker keyword has no gvs equivalent.
var checkerReasons = map[string]string{
	"connect_ip":       "gvs checks the real's own address",
	"bindto":           "gvs checks from the director's own address",
	"bind_port":        "gvs checks from the director's own address",
	"bind_if":          "gvs checks from the director's own address",
	"fwmark":           "gvs marks no check traffic",
	"log_all_failures": "gvs logs each health transition once; gvsadm -Ln --health shows the last error",
	"http_protocol":    "gvs's http check speaks HTTP/1.1",
	"fast_recovery":    "gvs's http check fetches one url",
	"enable_sni":       "gvs's https check sends no SNI of its choosing and verifies no certificate",
	"sni_name":         "gvs's https check sends no SNI of its choosing and verifies no certificate",
	"tls_compliant":    "gvs's https check sends no SNI of its choosing and verifies no certificate",
	"virtualhost":      "gvs's http check sends the real's address as Host",
	"digest":           "gvs's http check matches the body against expect, a regexp, not an MD5 digest",
	"regex_no_match":   "gvs's expect must match; it cannot be inverted",
	"regex_options":    "gvs's expect is a Go (RE2) regexp without options",
	"regex_stack":      "gvs's expect is a Go (RE2) regexp without options",
	"regex_min_offset": "gvs matches expect against the first 64 KiB of the body",
	"regex_max_offset": "gvs matches expect against the first 64 KiB of the body",
	"misc_dynamic":     "gvs's exec check is up or down: its exit status sets no weight",
	"user":             "gvsd runs scripts as its own user",
	"min_reply_length": "gvs checks a reply's content only",
	"max_reply_length": "gvs checks a reply's content only",
}

// checker reads a checker block; nil if gvs has no such check, or it is
// unusable.
func (c *converter) checker(n *node) *checkerDef {
	typ := checkerTypes[n.keyword()]
	if typ == "" {
		c.drop(n, "gvs has no such check: its checks are tcp, http, https, udp and exec")
		return nil
	}
	ck := &checkerDef{n: n, typ: typ}
	if len(n.args()) > 0 {
		c.warnf(n.pos, "%s: %s not carried over (%s takes no arguments)", n.keyword(), strings.Join(n.args(), " "), n.keyword())
	}
	for _, s := range n.block {
		k := s.keyword()
		if sh, ok := checkerShapes[k]; ok && !c.shaped(s, sh) {
			continue
		}
		if c.checkDefault(s, &ck.defaults) {
			continue
		}
		switch {
		case k == "connect_port":
			if p, ok := c.integer(s, 1, 65535); ok {
				ck.port = some(p, s.pos)
			}
		case k == "url" && (typ == "http" || typ == "https"):
			c.url(s, ck)
		case k == "misc_path" && typ == "exec":
			if argv, ok := c.script(s); ok {
				ck.command = argv
			}
		case k == "misc_timeout" && typ == "exec":
			if d, ok := c.seconds(s, time.Second, maxTimer); ok {
				ck.miscTimeout = some(d, s.pos)
			}
		case k == "payload" && typ == "udp":
			b, wild, ok := parseHex(s.args())
			if !ok || wild {
				c.bad(s, "hex digits")
				continue
			}
			ck.send = "0x" + fmt.Sprintf("%x", b)
		case k == "require_reply" && typ == "udp":
			ck.needReply = true
			if len(s.args()) > 0 {
				c.requireReply(s, ck)
			}
		default:
			why, ok := checkerReasons[k]
			if !ok {
				why = "not a " + n.keyword() + " keyword gvs knows"
			}
			c.drop(s, why)
		}
	}
	switch {
	case typ == "exec" && len(ck.command) == 0:
		c.drop(n, "no misc_path")
		return nil
	case (typ == "http" || typ == "https") && ck.url == nil:
		ck.path = "/"
		c.warnf(n.pos, "%s: has no url: gvs fetches / (keepalived checks nothing)", n.keyword())
	case typ == "udp" && !ck.needReply:
		c.warnf(n.pos, "UDP_CHECK without require_reply: not carried over as it is (keepalived passes a real that sends no ICMP error; gvs's udp check needs a reply)")
	}
	return ck
}

// url reads the first url block of an HTTP_GET or SSL_GET.
func (c *converter) url(u *node, ck *checkerDef) {
	if ck.url != nil {
		c.drop(u, "gvs's http check fetches one url: the first, at "+ck.url.pos.String())
		return
	}
	ck.url = u
	ck.path = "/"
	for _, s := range u.block {
		k := s.keyword()
		if sh, ok := urlShapes[k]; ok && !c.shaped(s, sh) {
			continue
		}
		switch k {
		case "path":
			if len(s.args()) != 1 {
				c.bad(s, "one path")
				continue
			}
			ck.path = s.args()[0]
		case "status_code":
			if codes, ok := statusCodes(s.args()); ok {
				ck.status = codes
			} else {
				c.bad(s, "codes in 100..599 or ranges LO-HI")
			}
		case "regex":
			if len(s.args()) != 1 {
				c.bad(s, "one regular expression")
				continue
			}
			if _, err := regexp.Compile(s.args()[0]); err != nil {
				c.drop(s, "not a Go (RE2) regexp, which gvs's expect is")
				continue
			}
			ck.expect = s.args()[0]
			ck.expectNote = "regex (keepalived's is PCRE2, gvs's RE2 on the first 64 KiB)"
		default:
			why, ok := checkerReasons[k]
			if !ok {
				why = "not a url keyword gvs knows"
			}
			c.drop(s, why)
		}
	}
}

// statusCodes expands `status_code 200 301-303 ...`.
func statusCodes(args []string) ([]int, bool) {
	var out []int
	for _, a := range args {
		lo, hi, isRange := strings.Cut(a, "-")
		if !isRange {
			hi = lo
		}
		l, ok1 := parseUint(lo, 100, 599)
		h, ok2 := parseUint(hi, 100, 599)
		if !ok1 || !ok2 || h < l {
			return nil, false
		}
		for code := l; code <= h; code++ {
			if !slices.Contains(out, code) {
				out = append(out, code)
			}
		}
	}
	slices.Sort(out)
	return out, len(out) > 0
}

// requireReply turns `require_reply HEX` into gvs's expect: a regexp that the
// reply must start with these bytes. Go regexps match text, so only a reply of
// ASCII bytes without keepalived's X wildcards can be written.
func (c *converter) requireReply(s *node, ck *checkerDef) {
	b, wild, ok := parseHex(s.args())
	if !ok {
		c.bad(s, "hex digits")
		return
	}
	var re strings.Builder
	re.WriteString("^")
	for _, x := range b {
		switch {
		case x >= 0x80 || wild:
			c.warnf(s.pos, "require_reply %s: not carried over (gvs's expect is a text regexp: it can match only ASCII bytes without X wildcards; any reply passes)", strings.Join(s.args(), " "))
			return
		case x >= 0x20 && x < 0x7f:
			re.WriteString(regexp.QuoteMeta(string(rune(x))))
		default:
			fmt.Fprintf(&re, `\x{%02x}`, x)
		}
	}
	ck.expect = re.String()
	ck.expectNote = "require_reply: the reply starts with these bytes"
}

// checkOut is the [service.check] of a service, as one real's checker gives it.
type checkOut struct {
	typ          string
	interval     time.Duration
	intervalNote string
	timeout      time.Duration
	timeoutNote  string
	fall         int
	fallNote     string
	port         int
	portNote     string
	path         string
	status       []int
	statusNote   string
	expect       string
	expectNote   string
	send         string
	sendNote     string
	command      []string
	commandNote  string
	quiesce      bool
	alpha        bool

	from  *node     // the checker
	warns []Warning // said only if this is the service's check
}

// spec is the check that real r's checker would be in gvs.
func (c *converter) spec(vs *vsDef, r realOut) *checkOut {
	rs, ck := r.rs, r.rs.checker
	d := []checkDefaults{ck.defaults, rs.defaults, vs.defaults}
	pick := func(get func(checkDefaults) opt[time.Duration], def time.Duration) opt[time.Duration] {
		return or(def, get(d[0]), get(d[1]), get(d[2]))
	}
	out := &checkOut{typ: ck.typ, from: ck.n, path: ck.path, status: ck.status, expect: ck.expect, expectNote: ck.expectNote, send: ck.send}

	interval := pick(func(x checkDefaults) opt[time.Duration] { return x.delayLoop }, kaDelayLoop)
	out.interval, out.intervalNote = interval.v, "delay_loop"
	if !interval.set {
		out.intervalNote = "keepalived's default delay_loop"
	}

	var timeout opt[time.Duration]
	var what string
	if ck.typ == "exec" {
		timeout, what = or(interval.v, ck.miscTimeout), "misc_timeout"
		out.timeoutNote = "misc_timeout"
		if !timeout.set {
			out.timeoutNote = "keepalived's default misc_timeout, the delay_loop"
		}
	} else {
		timeout, what = pick(func(x checkDefaults) opt[time.Duration] { return x.connectTimeout }, kaConnectTimeout), "connect_timeout"
		out.timeoutNote = "connect_timeout"
		if !timeout.set {
			out.timeoutNote = "keepalived's default connect_timeout"
		}
	}
	out.timeout = timeout.v
	if timeout.v > interval.v {
		out.timeout = interval.v
		out.timeoutNote = fmt.Sprintf("%s %s, bounded by the interval", what, strings.TrimSuffix(formatDuration(timeout.v), "s"))
		if !timeout.set {
			out.timeoutNote = "keepalived's default " + out.timeoutNote
		} else {
			out.warns = append(out.warns, Warning{timeout.pos, fmt.Sprintf("%s %s: written as %s (longer than the interval, %s, which bounds a gvs check)",
				what, strings.TrimSuffix(formatDuration(timeout.v), "s"), formatDuration(interval.v), formatDuration(interval.v))})
		}
	}

	retryDef := kaRetry
	if ck.typ == "exec" {
		retryDef = 0
	}
	retry := or(retryDef, d[0].retry, d[1].retry, d[2].retry)
	out.fall = retry.v + 1
	out.fallNote = fmt.Sprintf("retry %d, + the check that failed", retry.v)
	if !retry.set {
		out.fallNote = fmt.Sprintf("keepalived's default retry %d, + the check that failed", retry.v)
	}
	if retry.v > maxRetry {
		out.fall = maxRetry + 1
		out.warns = append(out.warns, Warning{retry.pos, fmt.Sprintf("retry %d: written as fall = %d (gvs's highest)", retry.v, out.fall)})
	}
	out.quiesce = or(false, d[0].inhibit, d[1].inhibit, d[2].inhibit).v
	out.alpha = or(false, d[0].alpha, d[1].alpha, d[2].alpha).v

	switch ck.typ {
	case "http", "https":
		if out.status == nil {
			out.status, out.statusNote = httpDefaultStatus, "keepalived's default 200-299"
		}
	case "udp":
		if out.send == "" {
			out.sendNote = "keepalived sends random bytes without a payload; gvs an empty datagram"
		} else {
			out.sendNote = "payload"
		}
	case "exec":
		out.command = miscCommand(ck.command, r)
		if !slices.Equal(out.command, ck.command) {
			out.commandNote = "misc_path with the real's address and port from gvs's environment"
		} else {
			out.commandNote = "misc_path"
		}
	}
	return out
}

// httpDefaultStatus is keepalived's default status_code, 200-299.
var httpDefaultStatus = func() []int {
	s := make([]int, 100)
	for i := range s {
		s[i] = 200 + i
	}
	return s
}()

// miscCommand is the exec command of a MISC_CHECK. keepalived names each real
// in its own misc_path ("check.sh 10.0.0.1 80"); gvs runs one command for
// every real of a service with the real in GVS_REAL_ADDR and GVS_REAL_PORT.
// So the real's address (and its port just after it, or after a ':', or
// after "]:" for an IPv6 one in brackets) become those variables, through
// sh(1); a misc_path without them runs as it is.
func miscCommand(argv []string, r realOut) []string {
	ip := r.rs.addr.String()
	port := strconv.Itoa(int(r.kaPort))
	portOK := r.addr.Port() == r.kaPort // GVS_REAL_PORT is gvs's port of the real
	words := make([][]wordPart, len(argv))
	subst := false
	for i, w := range argv {
		if portOK && i > 0 && argv[i-1] == ip && w == port {
			words[i], subst = []wordPart{{"GVS_REAL_PORT", true}}, true
			continue
		}
		for w != "" {
			j := indexAddr(w, ip)
			if j < 0 {
				words[i] = append(words[i], wordPart{text: w})
				break
			}
			subst = true
			if j > 0 {
				words[i] = append(words[i], wordPart{text: w[:j]})
			}
			words[i] = append(words[i], wordPart{"GVS_REAL_ADDR", true})
			w = w[j+len(ip):]
			sep := ":"
			if r.rs.addr.Is6() {
				sep = "]:" // [2001:db8::11]:80; 2001:db8::11:80 is another address
			}
			if rest, ok := strings.CutPrefix(w, sep+port); ok && portOK && (rest == "" || rest[0] < '0' || rest[0] > '9') {
				words[i] = append(words[i], wordPart{text: sep}, wordPart{"GVS_REAL_PORT", true})
				w = rest
			}
		}
	}
	if !subst {
		return argv
	}
	q := make([]string, len(words))
	for i, w := range words {
		q[i] = shellWord(w)
	}
	return []string{"/bin/sh", "-c", "exec " + strings.Join(q, " ")}
}

// indexAddr finds ip in s as a whole address: not inside a longer number
// (10.0.0.1 is not in 10.0.0.10 or 110.0.0.1, 2001:db8::a not in
// 2001:db8::ab or 2001:db8::a:1).
func indexAddr(s, ip string) int {
	isNum := func(c byte) bool { return c >= '0' && c <= '9' }
	if strings.Contains(ip, ":") {
		isNum = func(c byte) bool {
			return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F' || c == ':'
		}
	}
	for off := 0; ; {
		j := strings.Index(s[off:], ip)
		if j < 0 {
			return -1
		}
		j += off
		end := j + len(ip)
		before := j == 0 || !isNum(s[j-1]) && s[j-1] != '.'
		after := end == len(s) || !isNum(s[end]) && !(s[end] == '.' && end+1 < len(s) && isNum(s[end+1]))
		if before && after {
			return j
		}
		off = j + 1
	}
}

// differs names the fields in which o differs from the service's check s.
func (s *checkOut) differs(o *checkOut) []string {
	var d []string
	add := func(name string, same bool) {
		if !same {
			d = append(d, name)
		}
	}
	add("type", s.typ == o.typ)
	add("interval", s.interval == o.interval)
	add("timeout", s.timeout == o.timeout)
	add("fall", s.fall == o.fall)
	add("path", s.path == o.path)
	add("status", slices.Equal(s.status, o.status))
	add("expect", s.expect == o.expect)
	add("send", s.send == o.send)
	add("command", slices.Equal(s.command, o.command))
	add("on_failure", s.quiesce == o.quiesce)
	add("alpha", s.alpha == o.alpha)
	return d
}

// serviceCheck picks the service's check: the first real's checker; every
// other real whose checker would be another check, or that has none, is
// warned about, since gvs checks all the reals of a service alike.
func (c *converter) serviceCheck(vs *vsDef, s *serviceOut) *checkOut {
	var first *checkOut
	var firstReal realOut
	for _, r := range s.reals {
		if r.rs.checker == nil {
			continue
		}
		sp := c.spec(vs, r)
		if first == nil {
			first, firstReal = sp, r
			continue
		}
		if d := first.differs(sp); len(d) > 0 {
			c.warnf(r.rs.checker.n.pos, "%s: differs from the service's check (%s at %s) in %s: not carried over (gvs runs one check per service)",
				r.rs.checker.n.keyword(), first.from.keyword(), first.from.pos, strings.Join(d, ", "))
		}
	}
	if first == nil {
		return nil
	}
	c.warns = append(c.warns, first.warns...)
	for _, r := range s.reals {
		if r.rs.checker == nil {
			c.warnf(r.rs.n.pos, "%s: has no checker gvs can run: not carried over as it is (keepalived never takes it out; gvs checks it with the service's check, from %s)",
				r.rs.n.text(), first.from.pos)
		}
	}
	if first.typ == "exec" {
		return first // the command names its own port
	}

	// The port: 0 (each real's own) if every real is checked on its own
	// port, else the first real's port if they all share it.
	checkPort := func(r realOut) int {
		if p := r.rs.checker.port; p.set {
			return p.v
		}
		return int(r.kaPort)
	}
	own, shared := true, true
	p := checkPort(firstReal)
	for _, r := range s.reals {
		if r.rs.checker == nil {
			continue
		}
		own = own && checkPort(r) == int(r.addr.Port())
		shared = shared && checkPort(r) == p
	}
	switch {
	case own:
	case shared:
		first.port, first.portNote = p, "connect_port"
		if !firstReal.rs.checker.port.set {
			first.portNote = "the real's port in keepalived.conf"
		}
	default:
		first.port, first.portNote = p, "the first real's"
		for _, r := range s.reals {
			if r.rs.checker != nil && checkPort(r) != p {
				c.warnf(r.rs.checker.n.pos, "%s: port %d not carried over (gvs checks every real of a service on one port: %d, the first real's)",
					r.rs.checker.n.keyword(), checkPort(r), p)
			}
		}
	}
	return first
}
