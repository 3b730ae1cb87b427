package keepalived

import (
	"errors"
	"math/rand/v2"
	"net/netip"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gvs-lb/gvs/control/config"
)

// TestLines checks the reader against keepalived's read_line: comments,
// braces as lines of their own, quoted words.
func TestLines(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want []string // one line per element, words joined by "|"
	}{
		{"a b c", []string{"a|b|c"}},
		{"  a\tb  ", []string{"a|b"}},
		{"a ! comment", []string{"a"}},
		{"a # comment { }", []string{"a"}},
		{"a#b", []string{"a"}},             // a comment starts anywhere
		{`a \#b`, []string{"a|#b"}},        // but not escaped
		{`a "b # c"`, []string{"a|b # c"}}, // nor in quotes
		{"a {", []string{"a", "{"}},        // a brace is a line of its own
		{"a { b } c", []string{"a", "{", "b", "}", "c"}},
		{"a{b}", []string{"a", "{", "b", "}"}},
		{`a "{b}"`, []string{"a|{b}"}}, // not in quotes
		{`a "b c" d`, []string{"a|b c|d"}},
		{`a b"c d"`, []string{"a|b|c d"}}, // an unquoted word ends at a quote
		{`a ""`, []string{"a|"}},          // an empty word
		{"a\r", []string{"a"}},            // CRLF
		{"", nil},
		{"! only a comment", nil},
	} {
		lines, err := readString(tc.in)
		if err != nil {
			t.Errorf("%q: %v", tc.in, err)
			continue
		}
		var got []string
		for _, l := range lines {
			got = append(got, strings.Join(l.words, "|"))
		}
		if !slices.Equal(got, tc.want) {
			t.Errorf("%q: lines %q, want %q", tc.in, got, tc.want)
		}
	}
}

func readString(s string) ([]line, error) {
	r := reader{files: mapFiles{"k.conf": []byte(s)}, warn: func(Pos, string, ...any) {}, order: map[string]int{}}
	err := r.read("k.conf", nil)
	return r.lines, err
}

func TestSyntaxErrors(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{`a "b`, `k.conf:1: unterminated quote`},
		{"}", `k.conf:1: '}' closes no block`},
		{"{", `k.conf:1: '{' opens no block: no keyword before it`},
		{"a { }\n{", `k.conf:2: '{' opens no block: no keyword before it`},
		{"a {\nb {\n}", `k.conf:1: block of a is not closed: missing '}'`},
		{"a {\n  b {\n  }\n  c {\n", `k.conf:4: block of c is not closed: missing '}'`},
	} {
		_, err := Import(mapFiles{"k.conf": []byte(tc.in)}, "k.conf")
		var se *SyntaxError
		if !errors.As(err, &se) || err.Error() != tc.want {
			t.Errorf("%q: error %v, want %s", tc.in, err, tc.want)
		}
	}
}

// TestIncludes checks include's path resolution and its limits.
func TestIncludes(t *testing.T) {
	files := mapFiles{
		"etc/keepalived.conf":      []byte("include conf.d/*.conf\ninclude /abs/{x,y}.conf\n"),
		"etc/conf.d/b.conf":        []byte("b {\ninclude ../inc/inner\n"),
		"etc/conf.d/a.conf":        []byte("a\n"),
		"etc/inc/inner":            []byte("}\n"), // closes b's block
		"/abs/y.conf":              []byte("y\n"),
		"/abs/x.conf":              []byte("x\n"),
		"loop/keepalived.conf":     []byte("include one.conf\n"),
		"loop/one.conf":            []byte("include two.conf\n"),
		"loop/two.conf":            []byte("include one.conf\n"),
		"missing/keepalived.conf":  []byte("include nothing/*.conf\n"),
		"badglob/keepalived.conf":  []byte("include [\n"),
		"explode/keepalived.conf":  []byte("include " + strings.Repeat("{a,b}", 11) + "\n"),
		"isnotone/keepalived.conf": []byte("includex foo\n"),
	}
	r := reader{files: files, warn: func(Pos, string, ...any) {}, order: map[string]int{}}
	if err := r.read("etc/keepalived.conf", nil); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, l := range r.lines {
		got = append(got, l.pos.String()+" "+strings.Join(l.words, " "))
	}
	want := []string{
		"etc/conf.d/a.conf:1 a", // glob order
		"etc/conf.d/b.conf:1 b",
		"etc/conf.d/b.conf:1 {",
		"etc/inc/inner:1 }", // relative to the including file
		"/abs/x.conf:1 x",   // brace expansion, in its order
		"/abs/y.conf:1 y",
	}
	if !slices.Equal(got, want) {
		t.Errorf("lines\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}

	for _, tc := range []struct{ file, want string }{
		{"loop/keepalived.conf", "loop/two.conf:1: include loop: loop/one.conf is already being read (loop/keepalived.conf → loop/one.conf → loop/two.conf → loop/one.conf)"},
		{"badglob/keepalived.conf", "badglob/keepalived.conf:1: include badglob/[: syntax error in pattern"},
		{"explode/keepalived.conf", "explode/keepalived.conf:1: include explode/" + strings.Repeat("{a,b}", 11) + ": more than 1024 brace expansions"},
	} {
		_, err := Import(files, tc.file)
		if err == nil || err.Error() != tc.want {
			t.Errorf("%s: error %v\nwant %s", tc.file, err, tc.want)
		}
	}
	for file, want := range map[string]string{
		"missing/keepalived.conf":  "missing/keepalived.conf:1: include missing/nothing/*.conf: no file matches",
		"isnotone/keepalived.conf": "isnotone/keepalived.conf:1: includex foo: not carried over (not a keepalived keyword gvs knows)",
	} {
		res, err := Import(files, file)
		if err != nil {
			t.Errorf("%s: %v", file, err)
			continue
		}
		if !slices.ContainsFunc(res.Warnings, func(w Warning) bool { return w.String() == want }) {
			t.Errorf("%s: warnings %q, want one %q", file, res.Warnings, want)
		}
	}
	if _, err := Import(files, "no/such.conf"); err == nil || errors.As(err, new(*SyntaxError)) {
		t.Errorf("a main file that cannot be read: %v, want the read error", err)
	}
}

func TestExpandBraces(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want []string
	}{
		{"a", []string{"a"}},
		{"{a,b}", []string{"a", "b"}},
		{"x{a,b}y", []string{"xay", "xby"}},
		{"{a,b{c,d}}e", []string{"ae", "bce", "bde"}},
		{"{a,b}{c,d}", []string{"ac", "ad", "bc", "bd"}},
		{"{,x}", []string{"", "x"}},
		{"{a}", []string{"{a}"}},   // no comma: literal
		{"{a,b", []string{"{a,b"}}, // no close: literal
		{"{x}{a,b}", []string{"{x}a", "{x}b"}},
	} {
		got, ok := expandBraces(tc.in)
		if !ok || !slices.Equal(got, tc.want) {
			t.Errorf("expandBraces(%q) = %q, %v, want %q", tc.in, got, ok, tc.want)
		}
	}
}

func TestSplitScript(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want []string
	}{
		{"/bin/check", []string{"/bin/check"}},
		{"/bin/check  a\tb", []string{"/bin/check", "a", "b"}},
		{`/bin/check 'a b' "c d"`, []string{"/bin/check", "a b", "c d"}},
		{`x a'b c'd`, []string{"x", "ab cd"}},
		{`x \x41\101\n\\ \"`, []string{"x", "AA\n\\", `"`}},
		{`x ''`, []string{"x", ""}},
		// keepalved.conf(5)'s own example.
		{`/etc/keepalived/notify_event.sh ' spaces\\x20f\x69le ' '\"s p a c e \"' SG1.low master`,
			[]string{"/etc/keepalived/notify_event.sh", ` spaces\x20file `, `"s p a c e "`, "SG1.low", "master"}},
	} {
		got, ok := splitScript(tc.in)
		if !ok || !slices.Equal(got, tc.want) {
			t.Errorf("splitScript(%q) = %q, %v, want %q", tc.in, got, ok, tc.want)
		}
	}
	for _, bad := range []string{"", "  ", `x 'a`, `x \`} {
		if got, ok := splitScript(bad); ok {
			t.Errorf("splitScript(%q) = %q, want failure", bad, got)
		}
	}
}

func TestParseHex(t *testing.T) {
	b, wild, ok := parseHex(strings.Fields("Ab12f 3 456 546443123"))
	want := []byte{0xAB, 0x12, 0x0F, 0x03, 0x45, 0x06, 0x54, 0x64, 0x43, 0x12, 0x03} // keepalived.conf(5)'s example
	if !ok || wild || !slices.Equal(b, want) {
		t.Errorf("parseHex = % x, %v, %v, want % x", b, wild, ok, want)
	}
	if _, wild, ok := parseHex([]string{"12xX"}); !ok || !wild {
		t.Errorf("X digits: wild %v ok %v, want both", wild, ok)
	}
	if _, _, ok := parseHex([]string{"12g4"}); ok {
		t.Errorf("parseHex accepts g")
	}
}

func TestParseSeconds(t *testing.T) {
	for in, want := range map[string]time.Duration{
		"3": 3 * time.Second, "0.25": 250 * time.Millisecond, ".5": 500 * time.Millisecond,
		"2.": 2 * time.Second, "1.000001": time.Second + time.Microsecond, "0": 0,
	} {
		if got, ok := parseSeconds(in); !ok || got != want {
			t.Errorf("parseSeconds(%q) = %v, %v, want %v", in, got, ok, want)
		}
	}
	for _, bad := range []string{"", ".", "-1", "1e3", "1.0000001", "abc", "1,5", "99999999999"} {
		if got, ok := parseSeconds(bad); ok {
			t.Errorf("parseSeconds(%q) = %v, want failure", bad, got)
		}
	}
}

// TestShellCommands runs the sh(1) commands the importer writes — the notify
// wrapper and a MISC_CHECK with the real's address and port — and checks the
// argv the keepalived scripts would get.
func TestShellCommands(t *testing.T) {
	sh, err := exec.LookPath("sh")
	if err != nil {
		t.Skip("no sh(1) here")
	}
	argv := func(cmd []string, env ...string) string {
		t.Helper()
		c := exec.Command(sh, cmd[1:]...) // cmd[0] is /bin/sh
		c.Env = env
		out, err := c.CombinedOutput()
		if err != nil {
			t.Fatalf("%q: %v\n%s", cmd, err, out)
		}
		return strings.TrimSpace(string(out))
	}
	// printf stands in for the scripts: it prints the arguments it got.
	p := func(args ...string) opt[[]string] { return some(append([]string{"printf", "<%s>"}, args...), Pos{}) }
	c := &converter{}
	v := &vrrpOut{name: "VI 1", priority: 150}
	cmd := c.notifyCommand([3]opt[[]string]{p("master", "it's"), p("backup"), p("all")}, v)
	for state, want := range map[string]string{
		"MASTER": "<master><it's><all><INSTANCE><VI 1><MASTER><150>",
		"BACKUP": "<backup><all><INSTANCE><VI 1><BACKUP><150>",
		"INIT":   "",
	} {
		if got := argv(append(slices.Clone(cmd), state)); got != want { // gvsd appends the state
			t.Errorf("notify on %s: %s, want %s", state, got, want)
		}
	}

	rs := &rsDef{addr: netip.MustParseAddr("10.0.0.1")}
	r := realOut{addr: netip.MustParseAddrPort("10.0.0.1:3306"), rs: rs, kaPort: 3306}
	for _, tc := range []struct {
		misc []string
		want string
	}{
		{[]string{"printf", "<%s>", "10.0.0.1", "3306", "x"}, "<10.0.0.9><4406><x>"},
		{[]string{"printf", "<%s>", "http://10.0.0.1:3306/$x", "10.0.0.10", "110.0.0.1"}, "<http://10.0.0.9:4406/$x><10.0.0.10><110.0.0.1>"},
		{[]string{"printf", "<%s>", "'10.0.0.1'\"`"}, "<'10.0.0.9'\"`>"},
	} {
		cmd := miscCommand(tc.misc, r)
		if cmd[0] != "/bin/sh" {
			t.Fatalf("miscCommand(%q) = %q: no substitution", tc.misc, cmd)
		}
		if got := argv(cmd, "GVS_REAL_ADDR=10.0.0.9", "GVS_REAL_PORT=4406"); got != tc.want {
			t.Errorf("miscCommand(%q) runs %s, want %s", tc.misc, got, tc.want)
		}
	}
	if cmd := miscCommand([]string{"/bin/true", "10.0.0.2"}, r); !slices.Equal(cmd, []string{"/bin/true", "10.0.0.2"}) {
		t.Errorf("a misc_path without the real's address became %q", cmd)
	}
}

// TestTOMLString round-trips seeded random strings through tomlString and
// control/config's parser.
func TestTOMLString(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range 2000 {
		b := make([]byte, rng.IntN(20))
		for j := range b {
			switch rng.IntN(3) {
			case 0:
				b[j] = byte(rng.IntN(0x80)) // ASCII, control characters included
			case 1:
				b[j] = `"\'#$`[rng.IntN(5)]
			default:
				b[j] = byte(rng.IntN(256)) // and invalid UTF-8
			}
		}
		s := string(b)
		if i%7 == 0 {
			s = "é€😀" + s
		}
		toml := "[director]\ninterface = \"eth0\"\n[vrrp]\nrouter_id = 1\nnotify = [" + tomlString(s) + "] # " + commentText(s) + "\n"
		c, err := config.Parse([]byte(toml))
		if err != nil {
			t.Fatalf("%q: %v\n%s", s, err, toml)
		}
		if want := strings.ToValidUTF8(s, "\uFFFD"); c.VRRP.Notify[0] != want {
			t.Fatalf("%q came back as %q, want %q", s, c.VRRP.Notify[0], want)
		}
	}
}
