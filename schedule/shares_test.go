package schedule

import (
	"math"
	"math/rand/v2"
	"testing"
)

// TestShares: over 100,000 picks of random flows each real's share is
// within 1 percentage point of what the scheduler promises: weight/Σweight
// for wrr, sh and mh, an equal share for rr and for dh (whose kernel table
// ignores weights). Sampling noise is at most 0.16 points (one standard
// deviation at a share of 1/2); sh's table itself is up to 0.94 points off
// for 1,2,3,4 (100 of 256 buckets for 40%), which is checked separately so
// that the margin left to noise is visible.
func TestShares(t *testing.T) {
	const picks = 100_000
	r := rand.New(rand.NewPCG(51, 52))
	for _, w := range [][]int32{{1, 2, 3, 4}, {5, 3}, {2, 0, 7, 1}} {
		var sum float64
		var eligible int
		for _, x := range w {
			sum += float64(x)
			if x > 0 {
				eligible++
			}
		}
		for _, name := range []string{"rr", "wrr", "sh", "dh", "mh"} {
			d := mkDests(w...)
			s := mustNew(t, name, d)
			counts := make([]int, len(d))
			none := 0
			for range picks {
				f := randFlow(r)
				if i := s.Pick(d, &f); i >= 0 {
					counts[i]++
				} else {
					none++
				}
			}
			for i, x := range w {
				want := float64(x) / sum
				switch name {
				case "rr":
					want = 0
					if x > 0 {
						want = 1 / float64(eligible)
					}
				case "dh":
					want = float64(kernelDHShare(len(w), i))
				case "sh":
					// A quiescent real keeps one bucket per cycle of the
					// kernel's walk (its flows get -1), so the shares are
					// the weights' only without one.
					table := float64(countOf(kernelSHTable(w), i)) / 256
					if eligible == len(w) && math.Abs(table-want) > 0.01 {
						t.Errorf("sh %v: real %d has %.2f%% of the buckets, weight share %.2f%%", w, i, 100*table, 100*want)
					}
					want = table
				}
				got := float64(counts[i]) / picks
				if (name == "dh" || name == "sh") && x == 0 {
					// The flows hashed to a quiescent real get -1.
					got = float64(none) / picks
				}
				if math.Abs(got-want) > 0.01 {
					t.Errorf("%s %v: real %d got %.2f%%, want %.2f%%", name, w, i, 100*got, 100*want)
				}
			}
		}
	}
}

func countOf(table [256]int, i int) int {
	n := 0
	for _, x := range table {
		if x == i {
			n++
		}
	}
	return n
}

// kernelDHShare is real i's share of dh's 256 buckets among n reals.
func kernelDHShare(n, i int) float64 { return float64(countOf(kernelDHTable(n), i)) / 256 }
