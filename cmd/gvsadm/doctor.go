package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"

	"github.com/gvs-lb/gvs/control/api"
)

// runDoctor is gvsadm doctor [--json]: gvsd checks the director's setup
// and gvsadm prints each finding, with the command that fixes a problem.
// It exits 1 when a check failed.
func runDoctor(args []string, socket string, stdout, stderr io.Writer) int {
	asJSON := false
	for _, a := range args {
		switch a {
		case "--json":
			asJSON = true
		case "-h", "--help":
			fmt.Fprint(stdout, "gvsadm doctor [--json]\n  gvsd checks the director: interface, GRO/LRO, ingress table, FULLNAT ports,\n  every real's next hop (on the LAN for DR), the VIPs against VRRP, VRRP peers\n  configured otherwise (version, authentication, interval), connection sync.\n  Each problem comes with the command that fixes it; exit status 1 if one failed.\n")
			return 0
		default:
			fmt.Fprintf(stderr, "gvsadm: doctor: unknown option %s\n", a)
			return 2
		}
	}
	resp, err := api.Call(context.Background(), socket, &api.Request{Op: api.OpDoctor})
	if err != nil {
		fmt.Fprintf(stderr, "gvsadm: %v\n", err)
		return 1
	}
	if asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		_ = enc.Encode(resp.Checks)
	} else {
		writeChecks(stdout, resp.Checks)
	}
	for _, c := range resp.Checks {
		if c.Status == "fail" {
			return 1
		}
	}
	return 0
}

// writeChecks prints one line a check, the fix indented under a problem.
func writeChecks(w io.Writer, checks []api.Check) {
	width := 0
	for _, c := range checks {
		width = max(width, len(c.Name))
	}
	for _, c := range checks {
		status := strings.ToUpper(c.Status)
		if c.Status == "ok" {
			status = "ok"
		}
		fmt.Fprintf(w, "%-5s %-*s  %s\n", status, width, c.Name, c.Detail)
		if c.Fix != "" {
			fmt.Fprintf(w, "      fix: %s\n", c.Fix)
		}
	}
}
