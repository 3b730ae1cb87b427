package arpctl

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestRealServerSysctls(t *testing.T) {
	got := RealServerSysctls("eth0", "gvstun0", "eth0", "all", "", "default")
	want := []struct{ key, value string }{
		{"net/ipv4/conf/all/arp_ignore", "1"},
		{"net/ipv4/conf/all/arp_announce", "2"},
		{"net/ipv4/conf/eth0/arp_ignore", "1"},
		{"net/ipv4/conf/eth0/arp_announce", "2"},
		{"net/ipv4/conf/gvstun0/arp_ignore", "1"},
		{"net/ipv4/conf/gvstun0/arp_announce", "2"},
		{"net/ipv4/conf/all/rp_filter", "0"},
		{"net/ipv4/conf/default/rp_filter", "0"},
		{"net/ipv4/conf/eth0/rp_filter", "0"},
		{"net/ipv4/conf/gvstun0/rp_filter", "0"},
	}
	if len(got) != len(want) {
		t.Fatalf("got %d entries, want %d: %+v", len(got), len(want), got)
	}
	for i, w := range want {
		if got[i].Key != w.key || got[i].Value != w.value {
			t.Errorf("entry %d = %s=%s, want %s=%s", i, got[i].Key, got[i].Value, w.key, w.value)
		}
		if len(got[i].Why) < 20 {
			t.Errorf("entry %d (%s) has no real reason: %q", i, got[i].Key, got[i].Why)
		}
	}
	if n := len(RealServerSysctls()); n != 4 {
		t.Errorf("no interfaces: %d entries, want 4 (all and default only)", n)
	}
}

// fakeProcSys writes files under a temporary root standing in for
// /proc/sys. Values keep equal lengths so plain files behave like sysctls,
// which are rewritten at offset 0 without truncation.
func fakeProcSys(t *testing.T, files map[string]string) string {
	t.Helper()
	root := t.TempDir()
	for k, v := range files {
		p := filepath.Join(root, k)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(v), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

func readFake(t *testing.T, root, key string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(root, key))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestApplyRestoreFake(t *testing.T) {
	root := fakeProcSys(t, map[string]string{
		"net/a": "1\n",
		"net/b": "0\n",
		"net/c": "2\n",
	})
	table := []Sysctl{
		{Key: "net/a", Value: "0", Why: "test"},
		{Key: "net/b", Value: "0", Why: "already set: not written, not restored"},
		{Key: "net/c", Value: "1", Why: "test"},
	}
	restore, err := apply(root, table)
	if err != nil {
		t.Fatal(err)
	}
	for k, want := range map[string]string{"net/a": "0\n", "net/b": "0\n", "net/c": "1\n"} {
		if got := readFake(t, root, k); got != want {
			t.Errorf("after apply %s = %q, want %q", k, got, want)
		}
	}
	// Someone else sets b meanwhile: restore must not touch it.
	if err := os.WriteFile(filepath.Join(root, "net/b"), []byte("5\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := restore(); err != nil {
		t.Fatal(err)
	}
	for k, want := range map[string]string{"net/a": "1\n", "net/b": "5\n", "net/c": "2\n"} {
		if got := readFake(t, root, k); got != want {
			t.Errorf("after restore %s = %q, want %q", k, got, want)
		}
	}
	if err := restore(); err != nil {
		t.Errorf("second restore: %v", err)
	}
}

func TestApplyFailureUndoes(t *testing.T) {
	root := fakeProcSys(t, map[string]string{"net/a": "1\n"})
	_, err := apply(root, []Sysctl{
		{Key: "net/a", Value: "0"},
		{Key: "net/missing", Value: "0"},
	})
	if !errors.Is(err, os.ErrNotExist) || !strings.Contains(err.Error(), "arpctl: sysctl net/missing=0") {
		t.Fatalf("err = %v, want a wrapped not-exist error naming the key", err)
	}
	if got := readFake(t, root, "net/a"); got != "1\n" {
		t.Errorf("net/a = %q after a failed apply, want it restored to %q", got, "1\n")
	}
}

func TestApplyRejectsBadKeys(t *testing.T) {
	root := fakeProcSys(t, nil)
	for _, key := range []string{"", "/net/a", "../etc/passwd", "net/../../x", "net//a"} {
		if _, err := apply(root, []Sysctl{{Key: key, Value: "0"}}); err == nil {
			t.Errorf("key %q accepted", key)
		}
	}
}
