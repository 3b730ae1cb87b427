package offload

import (
	"errors"
	"fmt"
)

// Feature is one offload feature of a network interface. The zero value is
// invalid.
type Feature uint8

// The features this package reads and sets. Names in comments are those of
// ethtool -k.
const (
	TxChecksum    Feature = iota + 1 // tx-checksumming
	ScatterGather                    // scatter-gather
	TSO                              // tcp-segmentation-offload
	GSO                              // generic-segmentation-offload
	GRO                              // generic-receive-offload
	LRO                              // large-receive-offload
)

// features lists every valid Feature, in declaration order.
var features = [...]Feature{TxChecksum, ScatterGather, TSO, GSO, GRO, LRO}

// String returns the ethtool -k name of f.
func (f Feature) String() string {
	switch f {
	case TxChecksum:
		return "tx-checksumming"
	case ScatterGather:
		return "scatter-gather"
	case TSO:
		return "tcp-segmentation-offload"
	case GSO:
		return "generic-segmentation-offload"
	case GRO:
		return "generic-receive-offload"
	case LRO:
		return "large-receive-offload"
	}
	return fmt.Sprintf("Feature(%d)", uint8(f))
}

func (f Feature) valid() bool { return f >= TxChecksum && f <= LRO }

// ErrNotSupported reports that an interface cannot change a feature (ethtool
// shows it as "[fixed]"). Set returns it wrapped only when a change was
// actually needed: asking for the value a fixed feature already has succeeds.
var ErrNotSupported = errors.New("feature cannot be changed on this interface")

// ErrNotApplied reports that the kernel accepted a change but the feature
// kept its old value, usually because a feature it depends on is off (TSO
// needs ScatterGather and TxChecksum). The request stays recorded by the
// kernel and takes effect once the dependency is turned on.
var ErrNotApplied = errors.New("kernel accepted the change but did not apply it")

// errInvalidFeature is returned for the zero Feature and out-of-range values.
var errInvalidFeature = errors.New("invalid feature")

// captureFeatures are the receive-side features that make a tap on the
// interface see frames larger than the MTU.
var captureFeatures = [...]Feature{GRO, LRO}

// allOff are the features DisableAll turns off, receive side first so that
// nothing merged is in flight when the transmit features change.
var allOff = [...]Feature{GRO, LRO, TSO, GSO, TxChecksum}

// DisableAll turns off TxChecksum, TSO, GSO, GRO and LRO on ifname, ignoring
// features the interface cannot change, for test topologies built from veth
// pairs: frames then stay within the MTU and checksums are final when a tap
// copies them. ScatterGather is left alone: it changes no frame.
func DisableAll(ifname string) error {
	for _, f := range allOff {
		if err := Set(ifname, f, false); err != nil && !errors.Is(err, ErrNotSupported) {
			return err
		}
	}
	return nil
}

// onOff spells a feature state as ethtool does.
func onOff(on bool) string {
	if on {
		return "on"
	}
	return "off"
}
