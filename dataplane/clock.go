package dataplane

import "encoding/binary"

// clockBase turns the dataplane's monotonic time (nanotime: since this
// process started) into time since the host booted, which a restart of
// gvsd does not reset. The director's ISN and timestamp clocks (proxyISN,
// fullnatClocks) run on it, with a key a restarted gvsd gets back
// (SetISNKey): the numbers it gives a tuple then go on growing from where
// the last process left them, so the reals' TIME_WAIT sockets from before
// a restart take the new SYNs on their tuples, as they do within one
// process.
var clockBase = bootClock() - nanotime()

// isnTime is the time the ISN and timestamp clocks read at monotonic time
// now.
func isnTime(now int64) int64 { return now + clockBase }

// SetISNKey sets the key of the hash in the director's ISNs and timestamp
// offsets (RFC 6528's secret key). It is random per process until set;
// the control plane sets it from a file that outlives the process. Call
// it before the workers start.
func SetISNKey(key [16]byte) {
	isnKey = cookieKey{binary.LittleEndian.Uint64(key[:8]), binary.LittleEndian.Uint64(key[8:])}
}
