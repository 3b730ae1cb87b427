// Package health owns the health checks of real servers, in the manner of
// keepalived's checkers (keepalived.conf(5): TCP_CHECK, HTTP_GET, SSL_GET,
// UDP_CHECK, MISC_CHECK): a [Monitor] checks each target every Interval,
// each check bounded by Timeout, turns the results into up or down with
// rise/fall hysteresis, and calls back on every transition.
//
// The checks, one [Config.Type] each:
//
//	tcp    connect (RFC 9293) and close at once; success = connected
//	http   GET Path over a fresh connection (RFC 9110, RFC 9112); success = the
//	       status is in Status (default 200..399) and the first 64 KiB of the
//	       body match Expect; redirects are not followed
//	https  the same over TLS (RFC 8446) without verifying the certificate: it
//	       checks liveness, not identity
//	udp    one datagram out, one reply back that matches Expect; an ICMP port
//	       unreachable (RFC 792) is "connection refused"
//	exec   Command with GVS_REAL_ADDR and GVS_REAL_PORT added to the
//	       environment; success = exit status 0; on Timeout its process group
//	       is killed (kill(2) with SIGKILL)
//
// Each target has one goroutine, started by [Monitor.Set] and stopped by a
// later Set without it or by [Monitor.Close]; it runs at most one check at a
// time, the first at a random offset within Interval so that targets added
// together do not check together. At most Options.MaxParallel checks run at
// once across the Monitor; a check that cannot start before its next one is
// due is skipped, not queued.
package health
