package schedule

import "testing"

// TestOverloadHysteresis follows the overload flag through the script of
// ip_vs_bind_dest / ip_vs_unbind_dest: set when a new connection brings
// the total to the upper threshold, cleared when the total falls below
// the lower threshold, or without one below 3/4 of the upper.
func TestOverloadHysteresis(t *testing.T) {
	type step struct {
		op   string // bind, bindi, unbind, unbindi, set
		u, l int64  // for set
		want bool
	}
	for _, tc := range []struct {
		name  string
		steps []step
	}{
		{"upper only: set at upper, kept at 3/4, cleared below", []step{
			{op: "set", u: 4},
			{op: "bind"}, {op: "bind"}, {op: "bindi"}, // total 3
			{op: "bind", want: true},     // 4 = upper
			{op: "unbind", want: true},   // 3: 3*4 = 4*3, not below 3/4
			{op: "unbindi", want: false}, // 2 < 3
			{op: "bind"},                 // 3
			{op: "bind", want: true},     // 4
		}},
		{"upper and lower: kept down to lower, cleared below", []step{
			{op: "set", u: 6, l: 3},
			{op: "bind"}, {op: "bind"}, {op: "bind"}, {op: "bind"}, {op: "bind"},
			{op: "bindi", want: true},    // 6
			{op: "unbind", want: true},   // 5
			{op: "unbind", want: true},   // 4 < 3/4 of 6 but not below lower
			{op: "unbind", want: true},   // 3 = lower
			{op: "unbindi", want: false}, // 2 < 3
		}},
		{"raising upper clears; lowering does not", []step{
			{op: "set", u: 2},
			{op: "bind"}, {op: "bind", want: true},
			{op: "set", u: 1, want: true}, // lowered: still overloaded
			{op: "set", u: 3, want: false},
			{op: "bind", want: true},       // 3
			{op: "set", u: 0, want: false}, // removed
			{op: "bind", want: false},      // no threshold: never
		}},
		{"no threshold: never overloaded", []step{
			{op: "bind"}, {op: "bind"}, {op: "bind"}, {op: "unbind"},
		}},
	} {
		var c Counters
		for k, s := range tc.steps {
			switch s.op {
			case "bind":
				c.Bind(true)
			case "bindi":
				c.Bind(false)
			case "unbind":
				c.Unbind(true)
			case "unbindi":
				c.Unbind(false)
			case "set":
				c.SetThresholds(s.u, s.l)
			}
			if got := c.Overloaded(); got != s.want {
				t.Errorf("%s: step %d (%s, total %d): Overloaded() = %v, want %v",
					tc.name, k, s.op, c.Active.Load()+c.Inactive.Load(), got, s.want)
			}
		}
	}
}
