package main

import (
	"io"

	"github.com/gvs-lb/gvs/realserver"
)

// realserverMain is `gvsd realserver -vip VIP[,VIP...] -mode dr|tun`: what
// gvs-realserver does, built into gvsd so that the demo runs from one
// binary.
func realserverMain(args []string, stderr io.Writer) int {
	return realserver.Main("gvsd realserver", args, stderr)
}
