package afpacket

import (
	"go/parser"
	"go/token"
	"os"
	"strconv"
	"strings"
	"testing"
)

// TestImports enforces the dependency rules of DESIGN.md for this package:
// the standard library without net/http and log/slog, x/net/bpf,
// x/sys/unix and dataplane/header, and nothing of the control plane.
func TestImports(t *testing.T) {
	allowed := map[string]bool{
		"github.com/gvs-lb/gvs/dataplane/header": true, // header.Offload, the virtio_net_hdr
		"golang.org/x/net/bpf":                   true,
		"golang.org/x/sys/unix":                  true,
	}
	forbidden := map[string]bool{"net/http": true, "log/slog": true}
	entries, err := os.ReadDir(".")
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	checked := 0
	for _, e := range entries {
		name := e.Name()
		if !strings.HasSuffix(name, ".go") || strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, name, nil, parser.ImportsOnly)
		if err != nil {
			t.Fatal(err)
		}
		checked++
		for _, imp := range f.Imports {
			path, _ := strconv.Unquote(imp.Path.Value)
			std := !strings.Contains(strings.Split(path, "/")[0], ".")
			if forbidden[path] || (!std && !allowed[path]) {
				t.Errorf("%s imports %s", name, path)
			}
		}
	}
	if checked == 0 {
		t.Fatal("no source files found")
	}
}
