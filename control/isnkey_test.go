package control

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestLoadISNKey: the first load writes a 16-byte key with mode 0600, the
// next one reads the same key back, and a file of another size is refused.
func TestLoadISNKey(t *testing.T) {
	path := filepath.Join(t.TempDir(), "gvs", ISNKeyFile)
	if err := LoadISNKey(path); err != nil {
		t.Fatal(err)
	}
	first, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(first) != 16 || st.Mode().Perm() != 0o600 || bytes.Equal(first, make([]byte, 16)) {
		t.Fatalf("key file: %d bytes, mode %v, %x; want 16 random bytes, 0600", len(first), st.Mode().Perm(), first)
	}
	if err := LoadISNKey(path); err != nil {
		t.Fatal(err)
	}
	if again, _ := os.ReadFile(path); !bytes.Equal(again, first) {
		t.Error("a second load changed the key")
	}
	if err := os.WriteFile(path, []byte("short"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := LoadISNKey(path); err == nil || !strings.Contains(err.Error(), "5 bytes, want 16") {
		t.Errorf("a 5-byte key file: %v", err)
	}
}
