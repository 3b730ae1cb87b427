package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestImportKeepalived runs `gvsd import-keepalived` on control/keepalived's
// corpus: stdout is the golden TOML, stderr the golden warnings (or error),
// the exit status 0, 1 or 2 by the contract, and `gvsd -check` accepts what
// it printed.
func TestImportKeepalived(t *testing.T) {
	corpus, err := filepath.Abs("../../control/keepalived/testdata")
	if err != nil {
		t.Fatal(err)
	}
	confs, err := filepath.Glob(filepath.Join(corpus, "*", "keepalived.conf"))
	if err != nil || len(confs) == 0 {
		t.Fatalf("no corpus in %s: %v", corpus, err)
	}
	codes := map[int]int{}
	for _, conf := range confs {
		dir := filepath.Dir(conf)
		t.Run(filepath.Base(dir), func(t *testing.T) {
			t.Chdir(dir) // the goldens name files as seen from there
			var stdout, stderr bytes.Buffer
			code := run([]string{"import-keepalived", "keepalived.conf"}, &stdout, &stderr)
			codes[code]++

			if want, err := os.ReadFile("want.error"); err == nil {
				if code != 2 || stderr.String() != string(want) || stdout.Len() != 0 {
					t.Fatalf("exit %d, stderr %q, stdout %d bytes; want 2, %q and nothing", code, stderr.String(), stdout.Len(), want)
				}
				return
			}
			wantTOML, err := os.ReadFile("want.toml")
			if err != nil {
				t.Fatal(err)
			}
			wantWarn, _ := os.ReadFile("want.warnings") // absent: none
			wantCode := 0
			if len(wantWarn) > 0 {
				wantCode = 1
			}
			if code != wantCode || stdout.String() != string(wantTOML) || stderr.String() != string(wantWarn) {
				t.Fatalf("exit %d (want %d); stdout same as want.toml: %v; stderr:\n%s\nwant:\n%s",
					code, wantCode, stdout.String() == string(wantTOML), stderr.String(), wantWarn)
			}

			out := filepath.Join(t.TempDir(), "gvs.toml")
			if err := os.WriteFile(out, stdout.Bytes(), 0o644); err != nil {
				t.Fatal(err)
			}
			stdout.Reset()
			stderr.Reset()
			if code := run([]string{"-check", "-config", out}, &stdout, &stderr); code != 0 || !strings.Contains(stdout.String(), ": ok, ") {
				t.Fatalf("gvsd -check: exit %d\n%s%s", code, stdout.String(), stderr.String())
			}
		})
	}
	for code := range 3 {
		if codes[code] == 0 {
			t.Errorf("no case of the corpus exits %d", code)
		}
	}
}

func TestImportKeepalivedUsage(t *testing.T) {
	for _, args := range [][]string{
		{"import-keepalived"},
		{"import-keepalived", "a", "b"},
		{"import-keepalived", "-h"},
		{"import-keepalived", filepath.Join(t.TempDir(), "missing.conf")},
	} {
		var stdout, stderr bytes.Buffer
		if code := run(args, &stdout, &stderr); code != 2 || stdout.Len() != 0 || stderr.Len() == 0 {
			t.Errorf("%q: exit %d, stdout %q, stderr %q; want 2, nothing and a message", args, code, stdout.String(), stderr.String())
		}
	}
}
