// Repository rules from DESIGN.md and STYLE.md that a test can check: the
// dependency direction, a doc.go in every package, gofmt'd code and no
// grab-bag package names.
package gvs_test

import (
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

const module = "github.com/gvs-lb/gvs"

type pkg struct {
	ImportPath string
	Dir        string
	Name       string
	Imports    []string
	Deps       []string
	GoFiles    []string
}

func listPackages(t *testing.T) []pkg {
	t.Helper()
	if _, err := exec.LookPath("go"); err != nil {
		t.Skip("go tool not in PATH: cannot list packages")
	}
	out, err := exec.Command("go", "list", "-json", "./...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	var pkgs []pkg
	dec := json.NewDecoder(strings.NewReader(string(out)))
	for {
		var p pkg
		if err := dec.Decode(&p); err == io.EOF {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		pkgs = append(pkgs, p)
	}
	if len(pkgs) < 10 {
		t.Fatalf("go list found only %d packages", len(pkgs))
	}
	return pkgs
}

func under(path string, prefixes ...string) bool {
	for _, p := range prefixes {
		full := module + "/" + p
		if path == full || strings.HasPrefix(path, full+"/") {
			return true
		}
	}
	return false
}

func TestDependencyDirection(t *testing.T) {
	for _, p := range listPackages(t) {
		if under(p.ImportPath, "dataplane", "schedule", "conntrack") {
			for _, d := range p.Deps {
				if under(d, "control", "arpctl") || d == "net/http" || d == "log/slog" || strings.HasPrefix(d, "github.com/BurntSushi/toml") {
					t.Errorf("%s depends on %s: the dataplane must not", p.ImportPath, d)
				}
			}
		}
		if p.ImportPath == module+"/cmd/gvsadm" || p.ImportPath == module+"/control/api" {
			// gvsadm speaks to gvsd through control/api and nothing else of
			// the project; the API imports nothing of it.
			for _, d := range p.Deps {
				if strings.HasPrefix(d, module+"/") && d != module+"/control/api" {
					t.Errorf("%s depends on %s: it may use control/api only", p.ImportPath, d)
				}
			}
		}
		if p.ImportPath == module+"/dataplane/header" {
			for _, d := range p.Deps {
				if strings.Contains(strings.SplitN(d, "/", 2)[0], ".") {
					t.Errorf("dataplane/header depends on %s: it must use the standard library only", d)
				}
			}
		}
		for _, imp := range p.Imports {
			if under(imp, "cmd") {
				t.Errorf("%s imports %s: nothing imports cmd/...", p.ImportPath, imp)
			}
			if strings.HasPrefix(imp, "github.com/BurntSushi/toml") && p.ImportPath != module+"/control/config" {
				t.Errorf("%s imports the TOML library: only control/config may", p.ImportPath)
			}
		}
		switch p.Name {
		case "util", "utils", "common", "types", "helpers", "manager":
			t.Errorf("package %s is called %q: name it after what it owns", p.ImportPath, p.Name)
		}
	}
}

func TestEveryPackageHasDocGo(t *testing.T) {
	for _, p := range listPackages(t) {
		if p.Name == "main" || len(p.GoFiles) == 0 {
			continue // commands document themselves in main.go; test-only directories have no package
		}
		if _, err := os.Stat(filepath.Join(p.Dir, "doc.go")); err != nil {
			t.Errorf("%s has no doc.go", p.ImportPath)
		}
	}
}

func TestGofmt(t *testing.T) {
	if _, err := exec.LookPath("gofmt"); err != nil {
		t.Skip("gofmt not in PATH")
	}
	out, err := exec.Command("gofmt", "-l", ".").CombinedOutput()
	if err != nil {
		t.Fatalf("gofmt: %v\n%s", err, out)
	}
	if s := strings.TrimSpace(string(out)); s != "" {
		t.Errorf("not gofmt'd:\n%s", s)
	}
}
