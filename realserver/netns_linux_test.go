package realserver

import (
	"testing"

	"github.com/gvs-lb/gvs/internal/netnstest"
)

// testNamePrefix names every namespace-local interface these tests create,
// so they never collide with other packages' tests running concurrently.
const testNamePrefix = "gvsrs"

type testNetns = netnstest.NS

func requireRoot(t *testing.T)                    { netnstest.RequireRoot(t) }
func newNetns(t *testing.T) *testNetns            { return netnstest.New(t) }
func testName(t *testing.T, suffix string) string { return netnstest.Name(t, testNamePrefix, suffix) }

var (
	vethPair   = netnstest.VethPair
	waitOperUp = netnstest.WaitOperUp
	linkUp     = netnstest.LinkUp
)
