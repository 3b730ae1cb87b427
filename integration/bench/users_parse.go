package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
)

// WrkResult is what one wrk(1) run printed (wrk 4.x, src/wrk.c): the
// "Latency Distribution" of --latency, the request count and rate, and its
// error counts.
type WrkResult struct {
	Requests      int64   `json:"requests"`
	RequestsPerS  float64 `json:"requests_per_s"`
	P50Us         float64 `json:"latency_p50_us"` // 0 without --latency
	P75Us         float64 `json:"latency_p75_us"`
	P90Us         float64 `json:"latency_p90_us"`
	P99Us         float64 `json:"latency_p99_us"`
	ConnectErrors int64   `json:"connect_errors"`
	ReadErrors    int64   `json:"read_errors"`
	WriteErrors   int64   `json:"write_errors"`
	Timeouts      int64   `json:"timeouts"`
	// BadStatus counts responses that were not 2xx or 3xx.
	BadStatus int64 `json:"non_2xx_3xx"`
}

// Errors is the sum of every kind of error wrk counted.
func (w WrkResult) Errors() int64 {
	return w.ConnectErrors + w.ReadErrors + w.WriteErrors + w.Timeouts + w.BadStatus
}

// The lines of wrk's report that parseWrk reads, as wrk prints them:
//
//	  Latency Distribution
//	     50%   49.00us
//	     99%    1.21ms
//	  90123 requests in 5.00s, 21.50MB read
//	  Socket errors: connect 0, read 3, write 0, timeout 2
//	  Non-2xx or 3xx responses: 5
//	Requests/sec:  18024.60
var (
	wrkPercentile = regexp.MustCompile(`^\s*(\d+(?:\.\d+)?)%\s+([0-9.]+)(us|ms|s|m|h)\s*$`)
	wrkRequests   = regexp.MustCompile(`^\s*(\d+) requests in `)
	wrkSocketErrs = regexp.MustCompile(`^\s*Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)\s*$`)
	wrkBadStatus  = regexp.MustCompile(`^\s*Non-2xx or 3xx responses: (\d+)\s*$`)
	wrkRate       = regexp.MustCompile(`^Requests/sec:\s+([0-9.]+)\s*$`)
)

// wrkUnits converts wrk's time units (format_time_us) to microseconds.
var wrkUnits = map[string]float64{"us": 1, "ms": 1e3, "s": 1e6, "m": 60e6, "h": 3600e6}

// parseWrk parses wrk's standard output. It needs the request count and
// the rate; the latency distribution is optional (it is printed only with
// --latency), the error lines are printed only when there were errors.
func parseWrk(out string) (WrkResult, error) {
	var r WrkResult
	var haveRequests, haveRate, inDist bool
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		line := sc.Text()
		if strings.TrimSpace(line) == "Latency Distribution" {
			inDist = true
			continue
		}
		if m := wrkPercentile.FindStringSubmatch(line); m != nil && inDist {
			v, err := strconv.ParseFloat(m[2], 64)
			if err != nil {
				return r, fmt.Errorf("wrk output: %q: %w", line, err)
			}
			v *= wrkUnits[m[3]]
			switch m[1] {
			case "50":
				r.P50Us = v
			case "75":
				r.P75Us = v
			case "90":
				r.P90Us = v
			case "99":
				r.P99Us = v
			}
			continue
		}
		inDist = false
		var err error
		if m := wrkRequests.FindStringSubmatch(line); m != nil {
			r.Requests, err = strconv.ParseInt(m[1], 10, 64)
			haveRequests = true
		} else if m := wrkSocketErrs.FindStringSubmatch(line); m != nil {
			var v [4]int64
			for i := range v {
				if v[i], err = strconv.ParseInt(m[i+1], 10, 64); err != nil {
					break
				}
			}
			r.ConnectErrors, r.ReadErrors, r.WriteErrors, r.Timeouts = v[0], v[1], v[2], v[3]
		} else if m := wrkBadStatus.FindStringSubmatch(line); m != nil {
			r.BadStatus, err = strconv.ParseInt(m[1], 10, 64)
		} else if m := wrkRate.FindStringSubmatch(line); m != nil {
			r.RequestsPerS, err = strconv.ParseFloat(m[1], 64)
			haveRate = true
		}
		if err != nil {
			return r, fmt.Errorf("wrk output: %q: %w", line, err)
		}
	}
	if !haveRequests || !haveRate {
		return r, errors.New("wrk output: no \"requests in\" or \"Requests/sec:\" line")
	}
	return r, nil
}

// IperfResult is what one iperf3 -J client run reported: the receiver's
// rate (end.sum_received), the sender's, and the sender's retransmits.
type IperfResult struct {
	ReceivedBitsPerS float64 `json:"received_bits_per_s"`
	SentBitsPerS     float64 `json:"sent_bits_per_s"`
	Retransmits      int64   `json:"retransmits"`
	Seconds          float64 `json:"seconds"`
}

// parseIperf3 parses iperf3 -J output. A run that failed carries an
// "error" member, returned as the error.
func parseIperf3(out []byte) (IperfResult, error) {
	var doc struct {
		Error string `json:"error"`
		End   struct {
			SumSent *struct {
				Seconds       float64 `json:"seconds"`
				BitsPerSecond float64 `json:"bits_per_second"`
				Retransmits   int64   `json:"retransmits"`
			} `json:"sum_sent"`
			SumReceived *struct {
				Seconds       float64 `json:"seconds"`
				BitsPerSecond float64 `json:"bits_per_second"`
			} `json:"sum_received"`
		} `json:"end"`
	}
	if err := json.Unmarshal(out, &doc); err != nil {
		return IperfResult{}, fmt.Errorf("iperf3 output: %w", err)
	}
	if doc.Error != "" {
		return IperfResult{}, fmt.Errorf("iperf3: %s", doc.Error)
	}
	if doc.End.SumReceived == nil {
		return IperfResult{}, errors.New("iperf3 output: no end.sum_received")
	}
	r := IperfResult{ReceivedBitsPerS: doc.End.SumReceived.BitsPerSecond, Seconds: doc.End.SumReceived.Seconds}
	if s := doc.End.SumSent; s != nil {
		r.SentBitsPerS, r.Retransmits = s.BitsPerSecond, s.Retransmits
	}
	return r, nil
}
