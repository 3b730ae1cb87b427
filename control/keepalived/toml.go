package keepalived

import (
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// This file writes TOML v1.0.0 (https://toml.io/en/v1.0.0) by hand: only
// control/config imports the TOML library, and the subset needed here —
// tables, strings, integers, booleans and flat arrays, with comments — is
// small.

// table is one [table] or [[array-of-tables]] of the output.
type table struct {
	comments []string // lines above the header
	header   string   // "[vrrp]", "[[service.real]]"
	indent   string
	entries  []entry
}

// entry is one key = value line; value is already TOML.
type entry struct{ key, value, comment string }

func (t *table) add(key, value, comment string) {
	t.entries = append(t.entries, entry{key, value, comment})
}

// commentColumn is where trailing comments start, as in configs/*.toml.
const commentColumn = 32

// render writes the tables, a blank line between two.
func render(head []string, tables []*table) []byte {
	var b strings.Builder
	for _, c := range head {
		writeComment(&b, "", c)
	}
	for _, t := range tables {
		b.WriteByte('\n')
		for _, c := range t.comments {
			writeComment(&b, t.indent, c)
		}
		b.WriteString(t.indent + t.header + "\n")
		for _, e := range t.entries {
			l := t.indent + e.key + " = " + e.value
			if e.comment != "" {
				l += strings.Repeat(" ", max(1, commentColumn-len(l))) + "# " + commentText(e.comment)
			}
			b.WriteString(l + "\n")
		}
	}
	return []byte(b.String())
}

func writeComment(b *strings.Builder, indent, c string) {
	b.WriteString(indent + "# " + commentText(c) + "\n")
}

// commentText makes s fit in a TOML comment: valid UTF-8, and no control
// character but tab.
func commentText(s string) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	return strings.Map(func(r rune) rune {
		if r < 0x20 && r != '\t' || r == 0x7f {
			return '?'
		}
		return r
	}, s)
}

// tomlString writes s as a TOML basic string. Invalid UTF-8, which TOML
// cannot carry, becomes U+FFFD.
func tomlString(s string) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range s {
		switch r {
		case '"':
			b.WriteString(`\"`)
		case '\\':
			b.WriteString(`\\`)
		case '\b':
			b.WriteString(`\b`)
		case '\t':
			b.WriteString(`\t`)
		case '\n':
			b.WriteString(`\n`)
		case '\f':
			b.WriteString(`\f`)
		case '\r':
			b.WriteString(`\r`)
		default:
			if r < 0x20 || r == 0x7f {
				b.WriteString(`\u00`)
				b.WriteString(strconv.FormatInt(int64(r)>>4, 16))
				b.WriteString(strconv.FormatInt(int64(r)&0xf, 16))
				continue
			}
			var buf [utf8.UTFMax]byte
			b.Write(buf[:utf8.EncodeRune(buf[:], r)])
		}
	}
	b.WriteByte('"')
	return b.String()
}

func tomlStrings(ss []string) string {
	q := make([]string, len(ss))
	for i, s := range ss {
		q[i] = tomlString(s)
	}
	return "[" + strings.Join(q, ", ") + "]"
}

func tomlInt(n int) string { return strconv.Itoa(n) }

func tomlBool(v bool) string { return strconv.FormatBool(v) }

func tomlDuration(d time.Duration) string { return tomlString(formatDuration(d)) }

// tomlInts writes a list of integers; a long one (a status range) wraps, ten
// to a line.
func tomlInts(ns []int, indent string) string {
	if len(ns) <= 10 {
		q := make([]string, len(ns))
		for i, n := range ns {
			q[i] = strconv.Itoa(n)
		}
		return "[" + strings.Join(q, ", ") + "]"
	}
	var b strings.Builder
	b.WriteString("[\n")
	for i := 0; i < len(ns); i += 10 {
		q := make([]string, 0, 10)
		for _, n := range ns[i:min(i+10, len(ns))] {
			q = append(q, strconv.Itoa(n))
		}
		b.WriteString(indent + "  " + strings.Join(q, ", ") + ",\n")
	}
	b.WriteString(indent + "]")
	return b.String()
}
