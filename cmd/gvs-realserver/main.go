package main

import (
	"io"
	"os"

	"github.com/gvs-lb/gvs/realserver"
)

const name = "gvs-realserver"

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run is main without the process: it returns the exit status.
func run(args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 && args[0] == "doctor" {
		return realserver.Doctor(name+" doctor", args[1:], stdout, stderr)
	}
	return realserver.Main(name, args, stderr)
}
