package stream

// SendReport is the JSON line mcsend prints when it stops.
type SendReport struct {
	Sent       uint64  `json:"sent"`                  // datagrams the kernel accepted
	Errors     uint64  `json:"errors"`                // datagrams the kernel refused; their sequence numbers are skipped
	FirstError string  `json:"first_error,omitempty"` // the first refusal, for the operator
	Bytes      uint64  `json:"bytes"`                 // payload bytes sent
	ElapsedNs  int64   `json:"elapsed_ns"`            // from the first send to the last
	PPS        float64 `json:"pps"`                   // Sent per second of ElapsedNs
	Stop       string  `json:"stop"`                  // why it stopped: "count", "duration" or "signal"
}

// RecvReport is the JSON line mcrecv prints when it stops.
type RecvReport struct {
	Received    uint64            `json:"received"`            // datagrams read, good or bad
	Unique      uint64            `json:"unique"`              // distinct good sequence numbers
	Duplicates  uint64            `json:"duplicates"`          // good datagrams whose sequence number was already seen
	Bad         uint64            `json:"bad"`                 // datagrams that failed the size or byte-for-byte check
	Reordered   uint64            `json:"reordered"`           // first arrivals lower than the highest sequence number seen
	Missing     uint64            `json:"missing"`             // sequence numbers between first_seq and last_seq never seen
	OutOfRange  uint64            `json:"out_of_range"`        // sequence numbers beyond -max-seq, not tracked
	Senders     map[string]uint64 `json:"senders"`             // good datagrams per source address
	LatencyNs   Latency           `json:"latency_ns"`          // one-way latency of unique datagrams
	FirstSeq    *uint64           `json:"first_seq,omitempty"` // lowest sequence number seen
	LastSeq     *uint64           `json:"last_seq,omitempty"`  // highest sequence number seen
	KernelDrops uint64            `json:"kernel_drops"`        // datagrams the kernel dropped at this socket (SO_MEMINFO)
	RcvBuf      int               `json:"rcvbuf"`              // the socket's receive buffer as the kernel reports it
	SpanNs      int64             `json:"span_ns"`             // from the first good datagram's arrival to the last's
	PPS         float64           `json:"pps"`                 // unique datagrams per second between the first and the last
	Stop        string            `json:"stop"`                // why it stopped: "count", "idle", "timeout" or "signal"
}

// Latency summarizes a Histogram of nanoseconds.
type Latency struct {
	Mean int64 `json:"mean"`
	P50  int64 `json:"p50"`
	P99  int64 `json:"p99"`
	Max  int64 `json:"max"`
}

// Summary returns the Latency summary of h.
func (h *Histogram) Summary() Latency {
	return Latency{Mean: h.Mean(), P50: h.Quantile(0.50), P99: h.Quantile(0.99), Max: h.Max()}
}
