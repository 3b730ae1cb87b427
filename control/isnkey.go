package control

import (
	"crypto/rand"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/gvs-lb/gvs/dataplane"
)

// ISNKeyFile is the name of the file, beside the control socket, that
// keeps the key of the director's ISNs and timestamp offsets across
// restarts (dataplane.SetISNKey).
const ISNKeyFile = "isn.key"

// LoadISNKey gives the dataplane the ISN key kept in path, first writing a
// new random one there (mode 0600) if there is none. A restarted gvsd then
// numbers FULLNAT and SYN-proxied connections on from where the last one
// stopped, and the real servers' TIME_WAIT sockets take them. On an error
// the key stays random for this process, and the error says why.
func LoadISNKey(path string) error {
	var key [16]byte
	b, err := os.ReadFile(path)
	switch {
	case err == nil && len(b) == len(key):
		copy(key[:], b)
		dataplane.SetISNKey(key)
		return nil
	case err == nil:
		return fmt.Errorf("ISN key %s: %d bytes, want %d", path, len(b), len(key))
	case !errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("ISN key: %w", err)
	}
	rand.Read(key[:])
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("ISN key: %w", err)
	}
	// Written to a temporary file and renamed, so a reader never sees half
	// a key.
	tmp := path + ".new"
	if err := os.WriteFile(tmp, key[:], 0o600); err != nil {
		return fmt.Errorf("ISN key: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("ISN key: %w", err)
	}
	dataplane.SetISNKey(key)
	return nil
}
