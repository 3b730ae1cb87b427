package keepalived

import (
	"errors"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/gvs-lb/gvs/control/config"
)

// mapFiles is Files over a map, for tests: no file system, no surprises.
type mapFiles map[string][]byte

var _ Files = mapFiles(nil)

func (m mapFiles) ReadFile(name string) ([]byte, error) {
	if b, ok := m[path.Clean(name)]; ok {
		return b, nil
	}
	return nil, os.ErrNotExist
}

func (m mapFiles) Glob(pattern string) ([]string, error) {
	if _, err := path.Match(pattern, ""); err != nil {
		return nil, err
	}
	var out []string
	for name := range m {
		if ok, _ := path.Match(path.Clean(pattern), name); ok {
			out = append(out, name)
		}
	}
	slices.Sort(out)
	return out, nil
}

// FuzzImport feeds arbitrary text to Import as keepalived.conf, and as a file
// it may include (itself, too), and checks that Import never panics, that it
// fails only with a *SyntaxError, and that what it writes always loads with
// control/config: the importer must refuse or change, with a warning, every
// value gvs would refuse.
func FuzzImport(f *testing.F) {
	// The corpus's configurations, and a few shapes that stress the grammar.
	confs, _ := filepath.Glob("testdata/*/keepalived.conf")
	for _, c := range confs {
		if b, err := os.ReadFile(c); err == nil {
			f.Add(b, []byte("virtual_server 10.0.0.1 80 { protocol TCP }"))
		}
	}
	for _, seed := range []string{
		"include inc.conf\n", // includes itself through inc.conf
		// Each file includes the other twice: without loop detection, 2^32
		// reads before the depth limit (found by this fuzz test, as a hang;
		// also in testdata/fuzz).
		"include inc.conf\ninclude inc.conf\ninclude keepalived.conf\n",
		"include {a,b}{c,d}{e,f}{g,h}{i,j}{k,l}.conf", // brace expansion
		"a { b { c { d } } }", // nesting
		"vrrp_instance X {\nvirtual_router_id 1\nadvert_int 0.001\npriority 255\nstate MASTER\nnotify \"'\\x00\"\n}",
		"virtual_server 1.2.3.4 1 { lb_kind DR\nsorry_server 1.2.3.4 2\nreal_server 1.2.3.4 3 { uthreshold 1\nlthreshold 2 } }",
		"virtual_server_group G { 1.2.3.0/24 80\n1.2.3.4-1.2.4.4 80 }\nvirtual_server group G { real_server 1.2.3.4 80 }",
		"virtual_server 1.1.1.1 80 { real_server 2.2.2.2 80 { HTTP_GET { url { status_code 599-100 regex \"(\" } } } }",
		"virtual_server 1.1.1.1 80 { real_server 2.2.2.2 80 { UDP_CHECK { payload ZZ\nrequire_reply ff 0a } } }",
		"global_defs { lvs_sync_daemon a/b\nlvs_timeouts tcp 0 udp 9999999999 }",
		// IPv6: ranges, reals and sorry servers of the other family, and a
		// VRRPv2 instance without addresses that gvs would have advertise them.
		"virtual_server_group G { 2001:db8::ff-10a 80\n2001:db8::/120 80\n10.0.0.1 80 }\nvirtual_server group G { persistence_granularity 64\nreal_server 10.0.0.2 80\nreal_server 2001:db8::2 80 }",
		"vrrp_instance V {\nvirtual_router_id 1\nunicast_peer { 10.0.0.9 }\n}\nvirtual_server 2001:db8::1 80 { sorry_server 10.0.0.1 80\nreal_server 2001:db8::2 80 }",
		"\"unterminated",
		"} {",
		"\xff\xfe{\x00}",
	} {
		f.Add([]byte(seed), []byte(seed))
	}
	f.Fuzz(func(t *testing.T, conf, inc []byte) {
		files := mapFiles{"keepalived.conf": conf, "inc.conf": inc}
		res, err := Import(files, "keepalived.conf")
		if err != nil {
			var se *SyntaxError
			if !errors.As(err, &se) {
				t.Fatalf("Import failed with %T, not a *SyntaxError: %v", err, err)
			}
			return
		}
		for _, w := range res.Warnings {
			if w.Pos.File == "" || w.Pos.Line < 0 || w.Msg == "" || strings.Contains(w.Msg, "\n") {
				t.Fatalf("malformed warning %+v", w)
			}
		}
		c, err := config.Parse(res.TOML)
		if err != nil {
			t.Fatalf("control/config refuses the output:\n%v\n--- TOML:\n%s", err, res.TOML)
		}
		if err := config.Validate(c); err != nil {
			t.Fatalf("config.Validate(Parse(output)):\n%v", err)
		}
	})
}
