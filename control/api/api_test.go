package api

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestCallServe: a request goes through the socket and its answer, or
// its error, comes back; the socket is 0600 in a directory Listen made;
// a second Listen on a live socket is refused, and a stale one reused.
func TestCallServe(t *testing.T) {
	path := filepath.Join(t.TempDir(), "run", "gvsd.sock")
	l, err := Listen(path)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		done <- Serve(context.Background(), l, func(_ context.Context, r *Request) *Response {
			if r.Op != OpList {
				return &Response{Error: "unknown operation " + r.Op}
			}
			return &Response{TableSize: 7, Services: []Service{{Name: "web", Reals: []Real{{Address: "10.0.0.1:80", Active: 3}}}}}
		})
	}()
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("socket mode %v, %v; want 0600", fi.Mode(), err)
	}
	resp, err := Call(context.Background(), path, &Request{Op: OpList})
	if err != nil || resp.TableSize != 7 || len(resp.Services) != 1 || resp.Services[0].Reals[0].Active != 3 {
		t.Fatalf("Call = %+v, %v", resp, err)
	}
	if _, err := Call(context.Background(), path, &Request{Op: "nope"}); err == nil || err.Error() != "unknown operation nope" {
		t.Errorf("bad op: %v", err)
	}
	if _, err := Listen(path); err == nil || !strings.Contains(err.Error(), "another gvsd") {
		t.Errorf("second Listen: %v, want a refusal", err)
	}
	l.Close()
	if err := <-done; err != nil {
		t.Errorf("Serve: %v", err)
	}
	// The socket file of a gvsd that died stays; the next one takes it.
	dead, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	dead.(*net.UnixListener).SetUnlinkOnClose(false)
	dead.Close()
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("no stale socket to test with: %v", err)
	}
	l2, err := Listen(path)
	if err != nil {
		t.Fatalf("Listen over a stale socket: %v", err)
	}
	l2.Close()
	os.Remove(path)
	if _, err := Call(context.Background(), path, &Request{Op: OpList}); err == nil || !strings.Contains(err.Error(), "is it running?") {
		t.Errorf("Call without gvsd: %v", err)
	}
}
