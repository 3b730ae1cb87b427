package keepalived

import (
	"math/bits"
	"net/netip"
	"strconv"
	"strings"
	"time"
)

// parseUint parses a decimal integer in lo..hi.
func parseUint(s string, lo, hi int) (int, bool) {
	if s == "" || len(s) > 10 || strings.TrimLeft(s, "0123456789") != "" {
		return 0, false
	}
	n, err := strconv.Atoi(s)
	return n, err == nil && n >= lo && n <= hi
}

// maxTimer bounds a keepalived <TIMER>: keepalived's own bound
// (TIMER_MAX_SEC) is far below what a Duration holds.
const maxTimer = 1_000_000 * time.Second

// parseSeconds parses a keepalived <TIMER>: decimal seconds with up to six
// fractional digits (its resolution is a microsecond), e.g. "3" or "0.25".
func parseSeconds(s string) (time.Duration, bool) {
	whole, frac, _ := strings.Cut(s, ".")
	if whole == "" && frac == "" || len(frac) > 6 {
		return 0, false
	}
	w := 0
	if whole != "" {
		var ok bool
		if w, ok = parseUint(whole, 0, int(maxTimer/time.Second)); !ok {
			return 0, false
		}
	}
	f := 0
	if frac != "" {
		var ok bool
		if f, ok = parseUint(frac, 0, 999999); !ok {
			return 0, false
		}
		for range 6 - len(frac) {
			f *= 10
		}
	}
	d := time.Duration(w)*time.Second + time.Duration(f)*time.Microsecond
	return d, d <= maxTimer
}

// parseBool parses keepalived's <BOOL>; no word at all means true.
func parseBool(args []string) (bool, bool) {
	if len(args) == 0 {
		return true, true
	}
	switch strings.ToLower(args[0]) {
	case "on", "true", "yes":
		return true, len(args) == 1
	case "off", "false", "no":
		return false, len(args) == 1
	}
	return false, false
}

// parseIP parses an IP address of either family.
func parseIP(s string) (netip.Addr, bool) {
	a, err := netip.ParseAddr(s)
	return a, err == nil
}

// usable reports whether a is an IPv4 unicast address gvs can use for a VIP,
// a real or a peer (control/config's checkAddr).
func usable(a netip.Addr) bool {
	return a.Is4() && !a.IsUnspecified() && !a.IsMulticast() && a != netip.AddrFrom4([4]byte{255, 255, 255, 255})
}

// usable6 reports whether a is an IPv6 address gvs can use for a VIP, a
// real or a peer (control/config's checkAddr6): a global or unique-local
// unicast address without a zone. An IPv4-mapped one is refused there, and
// here: keepalived would take it as IPv6.
func usable6(a netip.Addr) bool {
	return a.Is6() && !a.Is4In6() && a.Zone() == "" && !a.IsUnspecified() && !a.IsMulticast() && !a.IsLoopback() && !a.IsLinkLocalUnicast()
}

// usableAny reports whether a is usable in either family.
func usableAny(a netip.Addr) bool {
	return usable(a) || usable6(a)
}

// family names a's address family in messages.
func family(a netip.Addr) string {
	if a.Is6() {
		return "IPv6"
	}
	return "IPv4"
}

// maskBits returns the prefix length of a contiguous IPv4 netmask.
func maskBits(s string) (int, bool) {
	a, err := netip.ParseAddr(s)
	if err != nil || !a.Is4() {
		return 0, false
	}
	b := a.As4()
	m := uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
	n := bits.LeadingZeros32(^m)
	return n, m<<n == 0
}

// parseHex parses keepalived's free-form <HEX_STR> (UDP_CHECK payload): groups
// separated by whitespace, each read two digits at a time, a last odd digit
// being a byte of its own ("Ab12f 3" = AB 12 0F 03). wild is true if the
// string uses keepalived's X/x wildcard nibbles, which only require_reply
// allows.
func parseHex(words []string) (b []byte, wild, ok bool) {
	nib := func(c byte) (byte, bool) {
		switch {
		case c >= '0' && c <= '9':
			return c - '0', true
		case c >= 'a' && c <= 'f':
			return c - 'a' + 10, true
		case c >= 'A' && c <= 'F':
			return c - 'A' + 10, true
		case c == 'x' || c == 'X':
			wild = true
			return 0, true
		}
		return 0, false
	}
	for _, w := range words {
		for i := 0; i < len(w); i += 2 {
			hi, ok1 := nib(w[i])
			if !ok1 {
				return nil, false, false
			}
			if i+1 == len(w) {
				b = append(b, hi)
				break
			}
			lo, ok2 := nib(w[i+1])
			if !ok2 {
				return nil, false, false
			}
			b = append(b, hi<<4|lo)
		}
	}
	return b, wild, len(b) > 0
}

// splitScript splits a script's command line as keepalived does
// (alloc_strvec_quoted_escaped): at unquoted whitespace, with '...' and
// "..." quoting and the shell's backslash escapes (\n, \t, \xHH, \NNN, \cC,
// \C for any other C).
func splitScript(s string) ([]string, bool) {
	var words []string
	var cur []byte
	inWord := false
	quote := byte(0)
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '\\':
			i++
			if i == len(s) {
				return nil, false
			}
			var e byte
			e, i = unescape(s, i)
			cur = append(cur, e)
			inWord = true
		case quote != 0:
			if c == quote {
				quote = 0
			} else {
				cur = append(cur, c)
			}
		case c == '"' || c == '\'':
			quote = c
			inWord = true
		case c == ' ' || c == '\t':
			if inWord {
				words = append(words, string(cur))
				cur, inWord = cur[:0], false
			}
		default:
			cur = append(cur, c)
			inWord = true
		}
	}
	if quote != 0 {
		return nil, false
	}
	if inWord {
		words = append(words, string(cur))
	}
	return words, len(words) > 0
}

// unescape decodes the escape whose letter is at s[i] and returns the byte
// and the index of the escape's last character.
func unescape(s string, i int) (byte, int) {
	isHex := func(c byte) bool { return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F' }
	switch c := s[i]; {
	case c == 'x' && i+1 < len(s) && isHex(s[i+1]):
		n, j := 0, i+1
		for ; j < len(s) && j < i+3 && isHex(s[j]); j++ {
			v, _ := strconv.ParseUint(s[j:j+1], 16, 8)
			n = n<<4 | int(v)
		}
		return byte(n), j - 1
	case c == 'c' && i+1 < len(s):
		return s[i+1] & 0x1f, i + 1
	case c >= '0' && c <= '7':
		n, j := 0, i
		for ; j < len(s) && j < i+3 && s[j] >= '0' && s[j] <= '7'; j++ {
			n = n<<3 | int(s[j]-'0')
		}
		return byte(n), j - 1
	default:
		if e, ok := map[byte]byte{'a': '\a', 'b': '\b', 'E': 0x1b, 'f': '\f', 'n': '\n', 'r': '\r', 't': '\t', 'v': '\v'}[c]; ok {
			return e, i
		}
		return c, i
	}
}

// A shell word is made of literal text and environment variables.
type wordPart struct {
	text  string
	isVar bool // text is a variable's name
}

// shellWord quotes a word for sh(1): literal text in single quotes when it
// needs any, with variables in double quotes so that they expand.
func shellWord(parts []wordPart) string {
	hasVar := false
	for _, p := range parts {
		hasVar = hasVar || p.isVar
	}
	if !hasVar {
		s := ""
		for _, p := range parts {
			s += p.text
		}
		return shellQuote(s)
	}
	var b strings.Builder
	b.WriteByte('"')
	for _, p := range parts {
		if p.isVar {
			b.WriteString("${" + p.text + "}")
			continue
		}
		for i := 0; i < len(p.text); i++ {
			if strings.IndexByte("$`\"\\", p.text[i]) >= 0 {
				b.WriteByte('\\')
			}
			b.WriteByte(p.text[i])
		}
	}
	b.WriteByte('"')
	return b.String()
}

// shellQuote returns s as one sh(1) word: as is when it is made of safe
// characters only, else in single quotes.
func shellQuote(s string) string {
	if s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789@%+=:,./_-") == "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// shellJoin quotes each word and joins them with spaces.
func shellJoin(words []string) string {
	q := make([]string, len(words))
	for i, w := range words {
		q[i] = shellQuote(w)
	}
	return strings.Join(q, " ")
}

// formatDuration writes d as control/config reads it: whole seconds as
// "60s" (keepalived's unit), anything else in Go's own syntax ("1.5s",
// "250ms").
func formatDuration(d time.Duration) string {
	if d%time.Second == 0 {
		return strconv.FormatInt(int64(d/time.Second), 10) + "s"
	}
	return d.String()
}

// validIfName applies the kernel's dev_valid_name (net/core/dev.c), as
// control/config does: shorter than IFNAMSIZ (16), not "." or "..", no '/',
// ':' or whitespace.
func validIfName(s string) bool {
	return s != "" && len(s) < 16 && s != "." && s != ".." && !strings.ContainsAny(s, "/: \t\n\v\f\r")
}
