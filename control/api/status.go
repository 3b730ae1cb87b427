package api

import "time"

// Status is what gvsd's status page reads from GET /status.json on the
// metrics listener: the answer to OpList (what gvsadm -L --json prints,
// with each service's and real's History filled in), the workers' and
// links' counters, and the time axis of the histories. VRRP, sync and BGP
// are there when configured, as in the list answer.
type Status struct {
	Response
	Time      time.Time      `json:"time"`
	Workers   []WorkerStatus `json:"workers"`
	Relinks   uint64         `json:"relinks"`   // links reopened after the interface came back
	Templates int            `json:"templates"` // persistence templates, shared by the workers
	History   HistoryAxis    `json:"history"`
}

// HistoryAxis is the time axis every History shares.
type HistoryAxis struct {
	// IntervalSeconds is the estimator's sampling period (2 s, as IPVS's);
	// Capacity the most samples kept, so the window is their product.
	IntervalSeconds float64 `json:"interval_seconds"`
	Capacity        int     `json:"capacity"`
	// Times are the samples' times in Unix milliseconds, oldest first.
	Times []int64 `json:"times"`
}

// History is the rates of a service or a real in each sampling interval
// (not smoothed as Rates are), oldest first. Its slices have one length,
// at most that of HistoryAxis.Times, and cover its last samples: a series
// younger than the window is shorter.
type History struct {
	CPS    []float32 `json:"cps"`
	InPPS  []float32 `json:"in_pps"`
	OutPPS []float32 `json:"out_pps"`
	InBPS  []float32 `json:"in_bps"`
	OutBPS []float32 `json:"out_bps"`
}

// WorkerStatus is one dataplane worker and its AF_PACKET socket.
type WorkerStatus struct {
	Worker   int               `json:"worker"`
	RxFrames uint64            `json:"rx_frames"`
	Conns    int64             `json:"conns"` // entries in its connection-table shard
	Verdicts map[string]uint64 `json:"verdicts"`
	// ConnEvents: new, expired, evicted, reused, rescheduled,
	// late_expired, templates_full (as gvs_worker_connection_events_total).
	ConnEvents map[string]uint64 `json:"conn_events"`
	LinkErrors uint64            `json:"link_errors"`
	// Rings are the main and SYN rings: frames the kernel put in each and
	// frames it dropped because the ring was full.
	Rings    map[string]RingStatus `json:"rings"`
	TxFrames uint64                `json:"tx_frames"`
	TxErrors uint64                `json:"tx_errors"`
}

// RingStatus counts one AF_PACKET ring.
type RingStatus struct {
	Frames uint64 `json:"frames"`
	Drops  uint64 `json:"drops"`
}
