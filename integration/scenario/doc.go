// Package scenario owns the end-to-end check of one LVS forwarding method
// on a lab topology: it configures the real servers (ipvsadm(8) DR, TUN,
// NAT or FULLNAT requirements), runs gvsd on the director, drives real TCP
// and UDP traffic from the client with random payloads, and reports what
// each real server received and every check that failed. `gvsd demo` prints
// its report; the integration tests assert on it.
package scenario
