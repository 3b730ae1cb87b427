package connsync

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math/rand/v2"
	"net/netip"
	"reflect"
	"testing"
	"time"
)

func ap(s string) netip.AddrPort { return netip.MustParseAddrPort(s) }

// goldenConn and goldenMsg are the message spelled out byte by byte in
// TestGolden.
var goldenConn = Conn{
	Protocol: 6,
	Flags:    FlagDRoute | FlagInactive, // 0x0003 | 0x0100 = 0x00000103
	State:    TCPStateSynRecv,           // 3
	Client:   ap("192.0.2.10:40000"),
	VIP:      ap("198.51.100.1:80"),
	Real:     ap("10.0.0.2:8080"),
	FWMark:   0x01020304,
	Timeout:  900 * time.Second,
}

func TestGolden(t *testing.T) {
	want := []byte{
		// Header, struct ip_vs_sync_mesg.
		0x00,       // reserved
		0x07,       // syncid 7
		0x00, 0x2c, // size = 8 header + 36 record = 44 = 0x002c
		0x01,       // nr_conns 1
		0x01,       // version SYNC_PROTO_VER 1
		0x00, 0x00, // spare
		// Record, struct ip_vs_sync_v4.
		0x00,       // type 0: IPv4
		0x06,       // protocol TCP
		0x00, 0x24, // ver_size: version 0 << 12 | size 36 = 0x0024
		0x00, 0x00, 0x01, 0x03, // flags DROUTE 0x3 | INACTIVE 0x100
		0x00, 0x03, // state SYN_RECV 3
		0x9c, 0x40, // cport 40000 = 0x9c40
		0x00, 0x50, // vport 80 = 0x0050
		0x1f, 0x90, // dport 8080 = 0x1f90
		0x01, 0x02, 0x03, 0x04, // fwmark 0x01020304
		0x00, 0x00, 0x03, 0x84, // timeout 900 s = 0x384
		192, 0, 2, 10, // caddr 192.0.2.10
		198, 51, 100, 1, // vaddr 198.51.100.1
		10, 0, 0, 2, // daddr 10.0.0.2
	}
	m := Message{SyncID: 7, Conns: []Conn{goldenConn}}
	got, err := m.Marshal([]byte{0xee}) // appends after existing bytes
	if err != nil {
		t.Fatal(err)
	}
	if got[0] != 0xee || !bytes.Equal(got[1:], want) {
		t.Fatalf("Marshal:\n got % x\nwant % x", got[1:], want)
	}
	back, err := Parse(want)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(back, m) {
		t.Fatalf("Parse = %+v, want %+v", back, m)
	}
}

func randConn(r *rand.Rand) Conn {
	a4 := func() netip.Addr {
		var a [4]byte
		binary.BigEndian.PutUint32(a[:], r.Uint32())
		return netip.AddrFrom4(a)
	}
	port := func() uint16 { return uint16(r.UintN(65536)) }
	return Conn{
		Protocol: []uint8{6, 17, 132, 0}[r.IntN(4)],
		Flags:    r.Uint32() &^ FlagSeqMask, // no OptSeqData: see randSeqConn
		State:    uint16(r.UintN(65536)),
		Client:   netip.AddrPortFrom(a4(), port()),
		VIP:      netip.AddrPortFrom(a4(), port()),
		Real:     netip.AddrPortFrom(a4(), port()),
		FWMark:   r.Uint32(),
		Timeout:  time.Duration(r.Uint32()) * time.Second,
	}
}

func randConns(seed uint64, n int) []Conn {
	r := rand.New(rand.NewPCG(seed, 1))
	cs := make([]Conn, n)
	for i := range cs {
		cs[i] = randConn(r)
	}
	return cs
}

func TestRoundTrip(t *testing.T) {
	for _, n := range []int{0, 1, 2, 40, 255} {
		m := Message{SyncID: uint8(n), Conns: randConns(uint64(n), n)}
		if n == 0 {
			m.Conns = nil
		}
		b, err := m.Marshal(nil)
		if err != nil {
			t.Fatal(err)
		}
		if len(b) != m.Size() || len(b) != HeaderLen+n*ConnLen {
			t.Fatalf("n=%d: len %d, Size %d", n, len(b), m.Size())
		}
		got, err := Parse(b)
		if err != nil {
			t.Fatalf("n=%d: %v", n, err)
		}
		if got.SyncID != m.SyncID || len(got.Conns) != n || (n > 0 && !reflect.DeepEqual(got.Conns, m.Conns)) {
			t.Fatalf("n=%d: round trip differs", n)
		}
	}
}

func TestMarshalRefuses(t *testing.T) {
	v6 := goldenConn
	v6.Real = ap("[2001:db8::1]:80")
	mapped := goldenConn
	mapped.Client = ap("[::ffff:192.0.2.1]:80")
	zero := goldenConn
	zero.VIP = netip.AddrPort{}
	neg := goldenConn
	neg.Timeout = -time.Second
	big := goldenConn
	big.Timeout = (1 << 32) * time.Second
	for _, tc := range []struct {
		name string
		m    Message
		want error
	}{
		{"256 conns", Message{Conns: make([]Conn, 256)}, ErrTooManyConns},
		{"IPv6 real", Message{Conns: []Conn{goldenConn, v6}}, ErrFamily},
		{"4in6 client", Message{Conns: []Conn{mapped}}, ErrFamily},
		{"zero VIP", Message{Conns: []Conn{zero}}, ErrFamily},
		{"negative timeout", Message{Conns: []Conn{neg}}, ErrTimeout},
		{"2^32 s timeout", Message{Conns: []Conn{big}}, ErrTimeout},
	} {
		in := []byte{1, 2, 3}
		out, err := tc.m.Marshal(in)
		if !errors.Is(err, tc.want) {
			t.Errorf("%s: err %v, want %v", tc.name, err, tc.want)
		}
		if !bytes.Equal(out, in) {
			t.Errorf("%s: b changed to % x", tc.name, out)
		}
	}
	// Sub-second timeouts truncate, as cp->timeout / HZ does.
	c := goldenConn
	c.Timeout = 1999 * time.Millisecond
	b, err := (&Message{Conns: []Conn{c}}).Marshal(nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := binary.BigEndian.Uint32(b[HeaderLen+recTimeout:]); got != 1 {
		t.Fatalf("timeout on wire %d, want 1", got)
	}
}

func TestBatch(t *testing.T) {
	conns := randConns(42, 1000)
	for _, tc := range []struct {
		maxSize, perMsg int
	}{
		{1500 - 20 - 8, 40},      // Ethernet MTU minus IPv4 and UDP: (1472-8)/36 = 40
		{9000 - 20 - 8, 249},     // jumbo: (8972-8)/36 = 249
		{65507, 255},             // limited by nr_conns
		{1 << 20, 255},           // larger than the size field: still capped
		{HeaderLen + ConnLen, 1}, // exactly one record
		{HeaderLen + 2*ConnLen - 1, 1},
	} {
		msgs, err := Batch(conns, 9, tc.maxSize)
		if err != nil {
			t.Fatalf("maxSize %d: %v", tc.maxSize, err)
		}
		if want := (1000 + tc.perMsg - 1) / tc.perMsg; len(msgs) != want {
			t.Errorf("maxSize %d: %d messages, want %d", tc.maxSize, len(msgs), want)
		}
		var got []Conn
		for i, b := range msgs {
			if len(b) > tc.maxSize {
				t.Errorf("maxSize %d: message %d is %d bytes", tc.maxSize, i, len(b))
			}
			m, err := Parse(b)
			if err != nil {
				t.Fatalf("maxSize %d: message %d: %v", tc.maxSize, i, err)
			}
			if m.SyncID != 9 || len(m.Conns) > MaxConns || len(m.Conns) > tc.perMsg {
				t.Errorf("maxSize %d: message %d: syncid %d, %d conns", tc.maxSize, i, m.SyncID, len(m.Conns))
			}
			got = append(got, m.Conns...)
		}
		if !reflect.DeepEqual(got, conns) {
			t.Errorf("maxSize %d: connections differ or out of order", tc.maxSize)
		}
		// Messages share a backing array; appending to one must not
		// overwrite the next.
		if len(msgs) > 1 {
			next := bytes.Clone(msgs[1])
			_ = append(msgs[0], 0xff)
			if !bytes.Equal(msgs[1], next) {
				t.Fatalf("maxSize %d: append to message 0 overwrote message 1", tc.maxSize)
			}
		}
	}
	if msgs, err := Batch(nil, 1, 1472); err != nil || msgs != nil {
		t.Errorf("Batch(nil) = %v, %v", msgs, err)
	}
	if _, err := Batch(conns, 1, HeaderLen+ConnLen-1); !errors.Is(err, ErrMaxSize) {
		t.Errorf("tiny maxSize: err %v", err)
	}
	bad := append(randConns(1, 50), Conn{})
	if _, err := Batch(bad, 1, 1472); !errors.Is(err, ErrFamily) {
		t.Errorf("bad conn: err %v", err)
	}
}

// record returns a parameterless IPv4 record for goldenConn.
func record() []byte {
	r := make([]byte, ConnLen)
	goldenConn.put(r)
	return r
}

// withParams returns record() carrying params, its size field set.
func withParams(params ...byte) []byte {
	r := append(record(), params...)
	binary.BigEndian.PutUint16(r[recVerSize:], uint16(len(r)))
	return r
}

// message frames records as the kernel does: zero padding between records
// to a 4-byte boundary, counted in size, none after the last.
func message(recs ...[]byte) []byte {
	b := []byte{0, 5, 0, 0, byte(len(recs)), ProtoVersion, 0, 0}
	for i, r := range recs {
		if i > 0 {
			for len(b)%4 != 0 {
				b = append(b, 0)
			}
		}
		b = append(b, r...)
	}
	binary.BigEndian.PutUint16(b[hdrSize:], uint16(len(b)))
	return b
}

func TestParamsSkipped(t *testing.T) {
	seq := make([]byte, 2+24)
	seq[0], seq[1] = OptSeqData, 24
	for i := range 24 {
		seq[2+i] = byte(i + 1)
	}
	for _, tc := range []struct {
		name   string
		params []byte
	}{
		{"seq data", seq},
		{"pe data and name", []byte{OptPEData, 3, 'a', 'b', 'c', OptPEName, 3, 's', 'i', 'p'}},
		{"unknown optional", []byte{OptFlagParam | 9, 1, 0xaa}},
		{"unknown mandatory", []byte{9, 2, 0xaa, 0xbb}}, // the kernel drops the record; we keep it
		{"several", append([]byte{OptFlagParam | OptParam, 5, 1, 2, 3, 4, 5}, seq...)},
	} {
		b := message(withParams(tc.params...), record(), withParams(OptFlagParam|20, 1, 7))
		m, err := Parse(b)
		if err != nil {
			t.Fatalf("%s: %v\n% x", tc.name, err, b)
		}
		if len(m.Conns) != 3 || m.SyncID != 5 {
			t.Fatalf("%s: %d conns", tc.name, len(m.Conns))
		}
		for i, c := range m.Conns {
			if c != goldenConn {
				t.Errorf("%s: conn %d = %+v", tc.name, i, c)
			}
		}
	}
}

func TestParseErrors(t *testing.T) {
	good := message(record(), record())
	set := func(b []byte, f func([]byte)) []byte {
		b = bytes.Clone(b)
		f(b)
		return b
	}
	rec1 := HeaderLen + ConnLen // offset of the second record
	for _, tc := range []struct {
		name   string
		b      []byte
		want   Reason
		record int
	}{
		{"empty", nil, ErrShort, -1},
		{"7 bytes", good[:7], ErrShort, -1},
		{"v0 message", set(good, func(b []byte) { b[0] = 2 }), ErrReserved, -1},
		{"version 0", set(good, func(b []byte) { b[hdrVersion] = 0 }), ErrVersion, -1},
		{"version -1", set(good, func(b []byte) { b[hdrVersion] = 0xff }), ErrVersion, -1},
		{"spare", set(good, func(b []byte) { b[hdrSpare+1] = 1 }), ErrSpare, -1},
		{"size too big", set(good, func(b []byte) { b[hdrSize+1]++ }), ErrSize, -1},
		{"size too small", set(good, func(b []byte) { b[hdrSize+1]-- }), ErrSize, -1},
		{"truncated keeps size", set(good[:len(good)-4], func(b []byte) { binary.BigEndian.PutUint16(b[hdrSize:], uint16(len(b))) }), ErrShort, 1},
		{"nr_conns too many", set(good, func(b []byte) { b[hdrNrConns] = 3 }), ErrShort, 2},
		{"nr_conns too few", set(good, func(b []byte) { b[hdrNrConns] = 1 }), ErrTrailing, -1},
		{"record version", set(good, func(b []byte) { b[rec1+recVerSize] |= 0x10 }), ErrRecordVersion, 1},
		{"record size 35", set(good, func(b []byte) { b[rec1+recVerSize+1] = 35 }), ErrRecordSize, 1},
		{"record size 0", set(good, func(b []byte) { b[HeaderLen+recVerSize+1] = 0 }), ErrRecordSize, 0},
		{"record past end", set(good, func(b []byte) { b[rec1+recVerSize+1] = 37 }), ErrRecordSize, 1},
		{"IPv4 record typed IPv6", set(good, func(b []byte) { b[rec1+recType] = 1 }), ErrRecordSize, 1},
		{"0x80 type", set(good, func(b []byte) { b[HeaderLen+recType] = 0x80 }), ErrType, 0},
		{"param header cut", message(withParams(OptPEData)), ErrParam, 0},
		{"param zero length", message(withParams(OptFlagParam|9, 0)), ErrParam, 0},
		{"param past record", message(withParams(OptPEData, 3, 'a', 'b'), record()), ErrParam, 0},
		{"trailing pad", append(bytes.Clone(good), 0, 0, 0, 0), ErrSize, -1},
		{"trailing bytes", set(append(bytes.Clone(good), 0, 0, 0, 0), func(b []byte) { binary.BigEndian.PutUint16(b[hdrSize:], uint16(len(b))) }), ErrTrailing, -1},
	} {
		m, err := Parse(tc.b)
		var pe *ParseError
		if !errors.As(err, &pe) {
			t.Errorf("%s: err %v, want *ParseError", tc.name, err)
			continue
		}
		if !errors.Is(err, tc.want) || pe.Reason != tc.want || pe.Record != tc.record {
			t.Errorf("%s: %v (reason %d record %d), want reason %d (%v) record %d", tc.name, err, pe.Reason, pe.Record, tc.want, tc.want, tc.record)
		}
		if m.SyncID != 0 || m.Conns != nil {
			t.Errorf("%s: non-zero Message on error", tc.name)
		}
	}
	// Every reason has text and fits a counter array.
	var counts [ReasonCount]int
	for r := Reason(1); int(r) < ReasonCount; r++ {
		counts[r]++
		if reasonText[r] == "" {
			t.Errorf("reason %d has no text", r)
		}
	}
}

// TestPrefixes cuts a message with parameters at every length: each prefix
// is an error (or a shorter valid message when the size field allows), and
// nothing panics.
func TestPrefixes(t *testing.T) {
	full := message(withParams(OptPEData, 3, 'a', 'b', 'c'), record(), record())
	for n := range len(full) {
		b := bytes.Clone(full[:n])
		if _, err := Parse(b); err == nil {
			t.Errorf("prefix %d parsed", n)
		}
		if n >= HeaderLen {
			binary.BigEndian.PutUint16(b[hdrSize:], uint16(n))
			Parse(b) // must not panic
		}
	}
}

func TestGarbage(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 7))
	valid := message(withParams(OptPEData, 1, 'x'), record())
	for range 20000 {
		b := bytes.Clone(valid)
		for range 1 + r.IntN(4) {
			b[r.IntN(len(b))] = byte(r.UintN(256))
		}
		Parse(b)
		n := r.IntN(300)
		g := make([]byte, n)
		for i := range g {
			g[i] = byte(r.UintN(256))
		}
		if n >= HeaderLen {
			g[0], g[hdrVersion], g[hdrSpare], g[hdrSpare+1] = 0, 1, 0, 0
			binary.BigEndian.PutUint16(g[hdrSize:], uint16(n))
		}
		Parse(g)
	}
}

func TestNoAllocs(t *testing.T) {
	m := Message{SyncID: 3, Conns: randConns(3, 40)}
	buf := make([]byte, 0, m.Size())
	if n := testing.AllocsPerRun(100, func() {
		if _, err := m.Marshal(buf[:0]); err != nil {
			t.Fatal(err)
		}
	}); n != 0 {
		t.Errorf("Marshal: %v allocs", n)
	}
	b, _ := m.Marshal(nil)
	dst := Message{Conns: make([]Conn, 0, MaxConns)}
	if n := testing.AllocsPerRun(100, func() {
		if err := dst.Decode(b); err != nil {
			t.Fatal(err)
		}
	}); n != 0 {
		t.Errorf("Decode: %v allocs", n)
	}
}

// zeroPadding returns a copy of the valid message b with the padding
// after each record zeroed: the kernel ignores its bytes, and Marshal
// writes zeros.
func zeroPadding(b []byte) []byte {
	b = bytes.Clone(b)
	off := HeaderLen
	for range int(b[hdrNrConns]) {
		size := int(binary.BigEndian.Uint16(b[off+recVerSize:]) & recSizeMax)
		end := min(off+(size+3)&^3, len(b))
		clear(b[off+size : end])
		off = end
	}
	return b
}

func FuzzParse(f *testing.F) {
	f.Add([]byte{})                                                                              // empty
	f.Add(message())                                                                             // header only, no connections
	f.Add(message(record()))                                                                     // one plain record
	f.Add(message(withParams(OptPEData, 3, 'a', 'b', 'c'), record()))                            // padding between records
	f.Add(message(withParams(OptFlagParam|9, 0)))                                                // zero-length parameter
	f.Add([]byte{1, 5, 0, 28, 0, 6, 0, 0})                                                       // version 0 header
	f.Add(message(withParams(OptSeqData, 24, 0, 0, 0, 0, 0, 0, 0, 0)))                           // parameter past the record
	f.Add(message(withParams(append([]byte{OptSeqData, 24}, make([]byte, 24)...)...), record())) // seq data, padding
	if b, err := (&Message{Conns: []Conn{goldenConn6, goldenConn}}).Marshal(nil); err == nil {
		f.Add(b) // an IPv6 record, then an IPv4 one
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := Parse(b)
		if err != nil {
			var pe *ParseError
			if !errors.As(err, &pe) || pe.Reason == 0 || int(pe.Reason) >= ReasonCount || pe.Offset > len(b)+3 { // a record after a padded one may start up to 3 bytes past the end
				t.Fatalf("bad error %#v", err)
			}
			return
		}
		// A record with seq flags but without OptSeqData, which the
		// kernel never sends, gets one (of zeros) when re-encoded: its
		// re-encoding may be longer, or by chance as long as one with
		// another parameter.
		canonical := true
		for _, c := range m.Conns {
			if c.Flags&FlagSeqMask != 0 && c.InSeq == (Seq{}) && c.OutSeq == (Seq{}) {
				canonical = false
			}
		}
		if canonical && len(b) < m.Size() || len(m.Conns) > MaxConns {
			t.Fatalf("%d conns from %d bytes", len(m.Conns), len(b))
		}
		// What parses re-encodes, and the re-encoding parses to the same.
		out, err := m.Marshal(nil)
		if err != nil {
			t.Fatal(err)
		}
		m2, err := Parse(out)
		if err != nil {
			t.Fatal(err)
		}
		if m2.SyncID != m.SyncID || !reflect.DeepEqual(m2.Conns, m.Conns) && len(m.Conns) > 0 {
			t.Fatalf("re-encoding differs")
		}
		if canonical && len(out) == len(b) && !bytes.Equal(out, zeroPadding(b)) {
			t.Fatalf("same length, different bytes:\n% x\n% x", b, out)
		}
	})
}

// TestLocalParam: a FULLNAT connection's local address travels as an
// optional parameter a kernel backup may ignore, 8 bytes, so that records
// stay 4-byte aligned, and comes back intact.
func TestLocalParam(t *testing.T) {
	c := goldenConn
	c.Local = ap("10.20.0.50:40001")
	param := []byte{OptLocal, 6, 10, 20, 0, 50, 0x9c, 0x41}
	if OptLocal&OptFlagParam == 0 {
		t.Fatal("OptLocal lacks OptFlagParam: a kernel backup would drop the record")
	}
	m := Message{SyncID: 5, Conns: []Conn{goldenConn, c, c}}
	b, err := m.Marshal(nil)
	if err != nil {
		t.Fatal(err)
	}
	// The kernel's framing of the same records, built by hand.
	if want := message(record(), withParams(param...), withParams(param...)); !bytes.Equal(b, want) {
		t.Fatalf("wire\n% x\nwant\n% x", b, want)
	}
	if got, err := Parse(b); err != nil || !reflect.DeepEqual(got, m) {
		t.Fatalf("Parse = %+v, %v; want %+v", got, err, m)
	}
	if _, err := Parse(message(withParams(OptLocal, 4, 10, 0, 0, 1, 0, 0))); !errors.Is(err, ErrParam) {
		t.Errorf("a 4-byte OptLocal: err %v, want ErrParam", err)
	}
	c.Local = ap("[2001:db8::1]:80")
	if _, err := (&Message{Conns: []Conn{c}}).Marshal(nil); !errors.Is(err, ErrFamily) {
		t.Errorf("IPv6 local: err %v", err)
	}
}

// TestBatchParamEndsMessage: records with and without a parameter are
// packed up to maxSize, a record with one always last in its message, and
// come back in order.
func TestBatchParamEndsMessage(t *testing.T) {
	conns := randConns(7, 500)
	for i := range conns {
		if i%7 == 3 {
			conns[i].Local = netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 0, 0, 1}), uint16(i))
		}
	}
	const maxSize = 1472
	msgs, err := Batch(conns, 1, maxSize)
	if err != nil {
		t.Fatal(err)
	}
	var got []Conn
	for i, b := range msgs {
		m, err := Parse(b)
		if err != nil {
			t.Fatal(err)
		}
		for j, c := range m.Conns {
			if c.Local.IsValid() && j != len(m.Conns)-1 {
				t.Fatalf("message %d: record %d of %d has a parameter", i, j, len(m.Conns))
			}
		}
		last := m.Conns[len(m.Conns)-1]
		// A message ends for a reason: a parameter, the size, or the end.
		if i < len(msgs)-1 && !last.Local.IsValid() && len(b)+conns[len(got)+len(m.Conns)].Len() <= maxSize && len(m.Conns) < MaxConns {
			t.Errorf("message %d is %d bytes and the next record would still fit", i, len(b))
		}
		if len(b) > maxSize {
			t.Errorf("message %d is %d bytes", i, len(b))
		}
		got = append(got, m.Conns...)
	}
	if !reflect.DeepEqual(got, conns) {
		t.Fatal("connections differ or out of order")
	}
	big := conns[3]
	if _, err := Batch([]Conn{big}, 1, HeaderLen+big.Len()-1); !errors.Is(err, ErrMaxSize) {
		t.Errorf("a record longer than maxSize: err %v", err)
	}
}

// goldenSeqConn is a SYN-proxied NAT connection as TestGoldenSeqData
// spells it out: OptSeqData with IPVS's in_seq and out_seq.
var goldenSeqConn = Conn{
	Protocol: 6,
	Flags:    FlagMasq | FlagInSeq | FlagOutSeq, // 0x0000 | 0x0400 | 0x0200 = 0x00000600
	State:    TCPStateEstablished,               // 1
	Client:   ap("192.0.2.10:40000"),
	VIP:      ap("198.51.100.1:80"),
	Real:     ap("10.0.0.2:8080"),
	Timeout:  900 * time.Second,
	InSeq:    Seq{InitSeq: 0, Delta: 0x11223344, PreviousDelta: 0x11223344},
	OutSeq:   Seq{InitSeq: 0, Delta: 0xfedcba98, PreviousDelta: 0xfedcba98},
}

// TestGoldenSeqData: a record with sequence adjustments, as the kernel's
// ip_vs_sync_conn writes one, by hand: the option right after the 36-byte
// record, counted in the record's size (62), and 2 bytes of padding
// counted only in the message's size.
func TestGoldenSeqData(t *testing.T) {
	want := []byte{
		// Header.
		0x00,       // reserved
		0x07,       // syncid 7
		0x00, 0x48, // size = 8 header + 64 record and padding = 72 = 0x0048
		0x01,       // nr_conns 1
		0x01,       // version 1
		0x00, 0x00, // spare
		// Record.
		0x00,       // type 0: IPv4
		0x06,       // protocol TCP
		0x00, 0x3e, // ver_size: version 0 | size 36 + 2 + 24 = 62 = 0x003e
		0x00, 0x00, 0x06, 0x00, // flags MASQ 0 | OUT_SEQ 0x200 | IN_SEQ 0x400
		0x00, 0x01, // state ESTABLISHED 1
		0x9c, 0x40, // cport 40000
		0x00, 0x50, // vport 80
		0x1f, 0x90, // dport 8080
		0x00, 0x00, 0x00, 0x00, // fwmark 0
		0x00, 0x00, 0x03, 0x84, // timeout 900 s
		192, 0, 2, 10, // caddr
		198, 51, 100, 1, // vaddr
		10, 0, 0, 2, // daddr
		// IPVS_OPT_SEQ_DATA, struct ip_vs_sync_conn_options.
		0x01,                   // type IPVS_OPT_SEQ_DATA
		0x18,                   // len 24
		0x00, 0x00, 0x00, 0x00, // in_seq.init_seq 0
		0x11, 0x22, 0x33, 0x44, // in_seq.delta
		0x11, 0x22, 0x33, 0x44, // in_seq.previous_delta
		0x00, 0x00, 0x00, 0x00, // out_seq.init_seq 0
		0xfe, 0xdc, 0xba, 0x98, // out_seq.delta
		0xfe, 0xdc, 0xba, 0x98, // out_seq.previous_delta
		0x00, 0x00, // padding to 64
	}
	m := Message{SyncID: 7, Conns: []Conn{goldenSeqConn}}
	// Marshal writes the padding: the buffer's old bytes do not show.
	dirty := bytes.Repeat([]byte{0xee}, 1+len(want))
	got, err := m.Marshal(dirty[:1])
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got[1:], want) {
		t.Fatalf("Marshal:\n got % x\nwant % x", got[1:], want)
	}
	back, err := Parse(want)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(back, m) {
		t.Fatalf("Parse = %+v, want %+v", back, m)
	}
	// The kernel's framing of the same record (message() pads between
	// records only): one seq record followed by a plain one.
	two := Message{SyncID: 5, Conns: []Conn{goldenSeqConn, goldenConn}}
	b, err := two.Marshal(nil)
	if err != nil {
		t.Fatal(err)
	}
	rec := append([]byte(nil), want[HeaderLen:HeaderLen+62]...)
	if w := message(rec, record()); !bytes.Equal(b, w) {
		t.Fatalf("two records:\n got % x\nwant % x", b, w)
	}
}

// randSeqConn is randConn with sequence adjustments: a connection as gvs
// sends a SYN-proxied one (FlagSeqMask, init_seq 0, previous_delta =
// delta), or with random words, and sometimes a Local address too.
func randSeqConn(r *rand.Rand) Conn {
	c := randConn(r)
	c.Flags |= []uint32{FlagInSeq, FlagOutSeq, FlagSeqMask}[r.IntN(3)]
	in, out := r.Uint32(), r.Uint32()
	c.InSeq, c.OutSeq = Seq{0, in, in}, Seq{0, out, out}
	if r.IntN(2) == 0 {
		c.InSeq, c.OutSeq = Seq{r.Uint32(), r.Uint32(), r.Uint32()}, Seq{r.Uint32(), r.Uint32(), r.Uint32()}
	}
	if r.IntN(2) == 0 {
		c.Local = netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 0, 0, byte(r.UintN(256))}), uint16(r.UintN(65536)))
	}
	return c
}

// TestSeqDataRoundTrip: records with OptSeqData (alone or with OptLocal),
// mixed with plain ones, batched and parsed back, are the same
// connections; each is as long as the kernel makes it.
func TestSeqDataRoundTrip(t *testing.T) {
	r := rand.New(rand.NewPCG(16, 16))
	conns := make([]Conn, 600)
	for i := range conns {
		if i%3 == 0 {
			conns[i] = randConn(r)
		} else {
			conns[i] = randSeqConn(r)
		}
		want := ConnLen
		if conns[i].Flags&FlagSeqMask != 0 {
			want = 64
			if conns[i].Local.IsValid() {
				want = 72
			}
		}
		if conns[i].Local.IsValid() && conns[i].Flags&FlagSeqMask == 0 {
			want = ConnLen + 8
		}
		if conns[i].Len() != want {
			t.Fatalf("conn %d: Len %d, want %d", i, conns[i].Len(), want)
		}
	}
	msgs, err := Batch(conns, 3, 1472)
	if err != nil {
		t.Fatal(err)
	}
	var got []Conn
	for i, b := range msgs {
		m, err := Parse(b)
		if err != nil {
			t.Fatalf("message %d: %v", i, err)
		}
		got = append(got, m.Conns...)
	}
	if !reflect.DeepEqual(got, conns) {
		t.Fatal("connections differ or out of order")
	}
	// Without FlagSeqMask the option is neither written nor read back.
	c := goldenSeqConn
	c.Flags &^= FlagSeqMask
	if c.Len() != ConnLen {
		t.Fatalf("without the seq flags: Len %d", c.Len())
	}
	seq := make([]byte, 2+24)
	seq[0], seq[1] = OptSeqData, 24
	seq[5] = 1
	if m, err := Parse(message(withParams(seq...))); err != nil || m.Conns[0].InSeq != (Seq{}) {
		t.Fatalf("OptSeqData on a record without the seq flags: %+v, %v", m, err)
	}
}

// TestSeqDataErrors: the kernel refuses an OptSeqData that is not 24 bytes
// long or comes twice (ip_vs_proc_seqopt); so does Decode.
func TestSeqDataErrors(t *testing.T) {
	seq := append([]byte{OptSeqData, 24}, make([]byte, 24)...)
	short := append([]byte{OptSeqData, 20}, make([]byte, 20)...)
	for _, tc := range []struct {
		name   string
		params []byte
	}{
		{"20 bytes", short},
		{"twice", append(append([]byte(nil), seq...), seq...)},
		{"cut", seq[:20]},
	} {
		if _, err := Parse(message(withParams(tc.params...))); !errors.Is(err, ErrParam) {
			t.Errorf("%s: err %v, want ErrParam", tc.name, err)
		}
	}
}

// TestTSOffsetParam: a FULLNAT connection's timestamp offset goes out as
// gvs's OptTSOffset after OptSeqData and OptLocal, marked as a parameter a
// kernel backup may ignore (76 bytes in all, 4-byte aligned), and comes back
// intact; a 3-byte one is refused.
func TestTSOffsetParam(t *testing.T) {
	c := goldenConn
	c.Local = ap("10.20.0.50:40001")
	c.Flags |= FlagInSeq | FlagOutSeq
	c.InSeq = Seq{Delta: 7, PreviousDelta: 7}
	c.TSOffset, c.HasTSOffset = 0x01020304, true
	if OptTSOffset&OptFlagParam == 0 {
		t.Fatal("OptTSOffset lacks OptFlagParam: a kernel backup would drop the record")
	}
	if c.Len() != 76 {
		t.Fatalf("Len = %d, want 76", c.Len())
	}
	m := Message{SyncID: 5, Conns: []Conn{c}}
	b, err := m.Marshal(nil)
	if err != nil {
		t.Fatal(err)
	}
	tail := []byte{OptLocal, 6, 10, 20, 0, 50, 0x9c, 0x41, OptTSOffset, 4, 1, 2, 3, 4}
	if !bytes.HasSuffix(b, tail) {
		t.Fatalf("wire\n% x\nwant it to end with\n% x", b, tail)
	}
	if got, err := Parse(b); err != nil || !reflect.DeepEqual(got, m) {
		t.Fatalf("Parse = %+v, %v; want %+v", got, err, m)
	}
	if _, err := Parse(message(withParams(OptTSOffset, 3, 1, 2, 3))); !errors.Is(err, ErrParam) {
		t.Errorf("a 3-byte OptTSOffset: err %v, want ErrParam", err)
	}
}

// TestProxyHeaderParam: a connection whose real got a PROXY header says so
// in gvs's OptProxyHeader, last, marked as a parameter a kernel backup may
// ignore (76 + 3 bytes, padded to 80), and it comes back; one with another
// length is refused.
func TestProxyHeaderParam(t *testing.T) {
	c := goldenConn
	c.Local = ap("10.20.0.50:40001")
	c.Flags |= FlagInSeq | FlagOutSeq
	c.InSeq = Seq{Delta: 7, PreviousDelta: 7}
	c.TSOffset, c.HasTSOffset = 0x01020304, true
	c.ProxyHeader = true
	if OptProxyHeader&OptFlagParam == 0 {
		t.Fatal("OptProxyHeader lacks OptFlagParam: a kernel backup would drop the record")
	}
	if c.Len() != 80 {
		t.Fatalf("Len = %d, want 80", c.Len())
	}
	m := Message{SyncID: 5, Conns: []Conn{c}}
	b, err := m.Marshal(nil)
	if err != nil {
		t.Fatal(err)
	}
	tail := []byte{OptTSOffset, 4, 1, 2, 3, 4, OptProxyHeader, 1, 1, 0}
	if !bytes.HasSuffix(b, tail) {
		t.Fatalf("wire\n% x\nwant it to end with\n% x", b, tail)
	}
	if got, err := Parse(b); err != nil || !reflect.DeepEqual(got, m) {
		t.Fatalf("Parse = %+v, %v; want %+v", got, err, m)
	}
	if _, err := Parse(message(withParams(OptProxyHeader, 2, 1, 1))); !errors.Is(err, ErrParam) {
		t.Errorf("a 2-byte OptProxyHeader: err %v, want ErrParam", err)
	}
}
