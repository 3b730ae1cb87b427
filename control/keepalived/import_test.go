package keepalived

import (
	"bytes"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/gvs-lb/gvs/control/config"
)

var update = flag.Bool("update", false, "rewrite the golden files of testdata/*/ from what Import returns")

// TestCorpus imports each testdata/NAME/keepalived.conf — configurations in
// the styles found in the field — and compares the TOML with want.toml and
// the warnings with want.warnings, or the error with want.error for a file
// keepalived's grammar cannot read. Every want.toml must load with
// control/config. `go test -run TestCorpus -update` rewrites the golden files;
// review the diff.
func TestCorpus(t *testing.T) {
	confs, err := filepath.Glob("testdata/*/keepalived.conf")
	if err != nil {
		t.Fatal(err)
	}
	if len(confs) < 10 && !*update {
		t.Fatalf("found %d cases in testdata/*/keepalived.conf, want at least 10", len(confs))
	}
	for _, conf := range confs {
		dir := filepath.Dir(conf)
		t.Run(filepath.Base(dir), func(t *testing.T) {
			// Import from the case's directory, so that file names in the
			// output are as a user would see them.
			t.Chdir(dir)
			res, err := Import(OS, "keepalived.conf")
			if err != nil {
				var se *SyntaxError
				if !errors.As(err, &se) {
					t.Fatalf("Import: %v (want a *SyntaxError or success)", err)
				}
				golden(t, "want.error", []byte(err.Error()+"\n"))
				for _, f := range []string{"want.toml", "want.warnings"} {
					if _, err := os.Stat(f); err == nil {
						t.Errorf("%s exists but Import failed: %v", f, err)
					}
				}
				return
			}
			if _, err := os.Stat("want.error"); err == nil {
				t.Errorf("want.error exists but Import succeeded")
			}
			var w bytes.Buffer
			for _, x := range res.Warnings {
				w.WriteString(x.String() + "\n")
			}
			golden(t, "want.toml", res.TOML)
			golden(t, "want.warnings", w.Bytes())

			want, err := os.ReadFile("want.toml")
			if err != nil {
				t.Fatal(err)
			}
			mustLoad(t, want)
		})
	}
}

// golden compares got with the file, or rewrites the file with -update.
func golden(t *testing.T, file string, got []byte) {
	t.Helper()
	if *update {
		if len(got) == 0 {
			os.Remove(file)
			return
		}
		if err := os.WriteFile(file, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(file)
	if err != nil && !(os.IsNotExist(err) && len(got) == 0) {
		t.Fatalf("%v (run go test -update to write it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs (go test -update rewrites it):\n%s", file, lineDiff(string(want), string(got)))
	}
}

// lineDiff shows the lines of want and got that differ, in order.
func lineDiff(want, got string) string {
	w, g := strings.Split(want, "\n"), strings.Split(got, "\n")
	var b strings.Builder
	for i := 0; i < max(len(w), len(g)); i++ {
		var wl, gl string
		if i < len(w) {
			wl = w[i]
		}
		if i < len(g) {
			gl = g[i]
		}
		if wl != gl {
			b.WriteString("line " + strconv.Itoa(i+1) + ":\n  want: " + wl + "\n   got: " + gl + "\n")
		}
	}
	return b.String()
}

// mustLoad checks that a gvs TOML loads with control/config and validates.
func mustLoad(t *testing.T, toml []byte) *config.Config {
	t.Helper()
	c, err := config.Parse(toml)
	if err != nil {
		t.Fatalf("control/config refuses the output:\n%v\n--- TOML:\n%s", err, toml)
	}
	if err := config.Validate(c); err != nil {
		t.Fatalf("config.Validate(Parse(output)):\n%v", err)
	}
	return c
}
