// Package netnstest owns the throwaway, unnamed network namespaces
// (network_namespaces(7)) and veth pairs (veth(4)) that privileged unit
// tests build, so each package's tests need not carry their own copy.
// Test code only.
package netnstest
