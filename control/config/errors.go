package config

import (
	"slices"
	"strings"
)

// FieldError is one problem in a config, at Path (e.g. `service[1].real[0].address`).
// A TOML syntax error has an empty Path and a Msg that starts with "line N, column M".
type FieldError struct{ Path, Msg string }

// Error returns "path: msg", or msg alone when there is no path.
func (e FieldError) Error() string {
	if e.Path == "" {
		return e.Msg
	}
	return e.Path + ": " + e.Msg
}

// Errors is every problem found in a config, each with its path, sorted by path
// (indices in numeric order).
type Errors []FieldError

// Error returns one problem per line.
func (e Errors) Error() string {
	if len(e) == 0 {
		return "config: no errors"
	}
	var b strings.Builder
	for i, fe := range e {
		if i > 0 {
			b.WriteByte('\n')
		}
		b.WriteString(fe.Error())
	}
	return b.String()
}

// sort orders the problems by path, comparing indices as numbers so that service[2]
// comes before service[10]; problems at one path keep the order they were found in.
func (e Errors) sort() {
	slices.SortStableFunc(e, func(a, b FieldError) int { return comparePaths(a.Path, b.Path) })
}

// comparePaths is a natural-order comparison: runs of digits compare as numbers.
func comparePaths(a, b string) int {
	for a != "" && b != "" {
		da, db := digitRun(a), digitRun(b)
		if da > 0 && db > 0 {
			na, nb := strings.TrimLeft(a[:da], "0"), strings.TrimLeft(b[:db], "0")
			if c := len(na) - len(nb); c != 0 {
				return c
			}
			if c := strings.Compare(na, nb); c != 0 {
				return c
			}
			a, b = a[da:], b[db:]
			continue
		}
		if a[0] != b[0] {
			return int(a[0]) - int(b[0])
		}
		a, b = a[1:], b[1:]
	}
	return len(a) - len(b)
}

func digitRun(s string) int {
	n := 0
	for n < len(s) && s[n] >= '0' && s[n] <= '9' {
		n++
	}
	return n
}
