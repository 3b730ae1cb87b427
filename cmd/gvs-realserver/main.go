package main

import (
	"io"
	"os"

	"github.com/gvs-lb/gvs/realserver"
)

const name = "gvs-realserver"

func main() {
	os.Exit(run(os.Args[1:], os.Stderr))
}

// run is main without the process: it returns the exit status.
func run(args []string, stderr io.Writer) int { return realserver.Main(name, args, stderr) }
