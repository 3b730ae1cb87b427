package control

import (
	"runtime"
	"testing"
)

func TestHoldProcs(t *testing.T) {
	base := runtime.GOMAXPROCS(0)
	a := holdProcs(2)
	if got := runtime.GOMAXPROCS(0); got != base+2 {
		t.Fatalf("after holding 2: GOMAXPROCS %d, want %d", got, base+2)
	}
	b := holdProcs(3)
	if got := runtime.GOMAXPROCS(0); got != base+5 {
		t.Fatalf("after holding 2 and 3: GOMAXPROCS %d, want %d", got, base+5)
	}
	a()
	a() // a second release gives nothing back twice
	if got := runtime.GOMAXPROCS(0); got != base+3 {
		t.Fatalf("after releasing 2: GOMAXPROCS %d, want %d", got, base+3)
	}
	b()
	if got := runtime.GOMAXPROCS(0); got != base {
		t.Fatalf("after releasing all: GOMAXPROCS %d, want %d", got, base)
	}
}
