package offload

import "testing"

func TestFeatureString(t *testing.T) {
	want := map[Feature]string{
		TxChecksum:    "tx-checksumming",
		ScatterGather: "scatter-gather",
		TSO:           "tcp-segmentation-offload",
		GSO:           "generic-segmentation-offload",
		GRO:           "generic-receive-offload",
		LRO:           "large-receive-offload",
		0:             "Feature(0)",
		LRO + 1:       "Feature(7)",
	}
	for f, s := range want {
		if got := f.String(); got != s {
			t.Errorf("Feature(%d).String() = %q, want %q", uint8(f), got, s)
		}
	}
	if len(features) != int(LRO) {
		t.Errorf("features lists %d entries, want %d", len(features), LRO)
	}
}
