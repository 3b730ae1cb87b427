//go:build !linux

package ingress

import (
	"fmt"
	"runtime"

	"github.com/gvs-lb/gvs/dataplane/afpacket"
)

// Table is the installed netdev table. nftables exists only on Linux.
type Table struct{}

// Install creates the table for ifname. Only Linux is supported.
func Install(ifname string, m *afpacket.Match) (*Table, error) {
	return nil, fmt.Errorf("ingress: install table netdev %s on %s: unsupported on %s", TableName, ifname, runtime.GOOS)
}

// Update replaces the rules. Only Linux is supported.
func (t *Table) Update(m *afpacket.Match) error {
	return fmt.Errorf("ingress: update table netdev %s: unsupported on %s", TableName, runtime.GOOS)
}

// Remove deletes the table. Only Linux is supported.
func (t *Table) Remove() error {
	return fmt.Errorf("ingress: remove table netdev %s: unsupported on %s", TableName, runtime.GOOS)
}

// Release forgets the table without deleting it. Only Linux is supported.
func (t *Table) Release() {}

// Check reports whether the table is in the kernel. Only Linux is supported.
func (t *Table) Check() error {
	return fmt.Errorf("ingress: check table netdev %s: unsupported on %s", TableName, runtime.GOOS)
}

// Counters are what the table counted. Only Linux has the table.
type Counters struct {
	Taken uint64 `json:"taken"`
	Left  uint64 `json:"left_to_kernel"`
}

// Counters reads the table's counters. Only Linux is supported.
func (t *Table) Counters() (Counters, error) {
	return Counters{}, fmt.Errorf("ingress: counters of table netdev %s: unsupported on %s", TableName, runtime.GOOS)
}
