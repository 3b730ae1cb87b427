package main

import (
	"errors"
	"fmt"
	"io"

	"github.com/gvs-lb/gvs/control/keepalived"
)

// importKeepalivedMain is `gvsd import-keepalived FILE`: the gvs TOML of a
// keepalived.conf on stdout, and on stderr, with its file and line, every
// option it could not carry over. It exits 1 if there was any, 2 if the file
// could not be read or parsed, 0 otherwise.
func importKeepalivedMain(args []string, stdout, stderr io.Writer) int {
	if len(args) != 1 || args[0] == "" || args[0][0] == '-' {
		fmt.Fprintf(stderr, "usage: gvsd import-keepalived FILE\n")
		return 2
	}
	res, err := keepalived.Import(keepalived.OS, args[0])
	if err != nil {
		var se *keepalived.SyntaxError
		if errors.As(err, &se) {
			fmt.Fprintf(stderr, "%v\n", se) // file:line: what, as compilers say it
		} else {
			fmt.Fprintf(stderr, "gvsd: %v\n", err)
		}
		return 2
	}
	if _, err := stdout.Write(res.TOML); err != nil {
		fmt.Fprintf(stderr, "gvsd: import-keepalived: %v\n", err)
		return 2
	}
	for _, w := range res.Warnings {
		fmt.Fprintln(stderr, w)
	}
	if len(res.Warnings) > 0 {
		return 1
	}
	return 0
}
