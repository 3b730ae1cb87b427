package realserver

import (
	"encoding/binary"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Real tables, copied from /proc/net on a little-endian (amd64) host: sshd
// on 0.0.0.0:22, mysqld on 127.0.0.1:3306, an established connection, a
// DHCP client on 0.0.0.0:68, and IPv6 sshd on [::]:22 and a service on
// [::ffff:127.0.0.1]:8080.
const (
	sampleTCP = `  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode                                                     
   0: 00000000:0016 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 19342 1 0000000000000000 100 0 0 10 0                     
   1: 0100007F:0CEA 00000000:0000 0A 00000000:00000000 00:00000000 00000000   106        0 21390 1 0000000000000000 100 0 0 10 0                     
   2: 0F02000A:0016 0202000A:D3B4 01 00000000:00000000 02:0009E6B3 00000000     0        0 41236 4 0000000000000000 20 4 29 10 -1                    
`
	sampleUDP = `   sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops             
 1021: 00000000:0044 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 15563 2 0000000000000000 0          
 1130: 0F02000A:A6F1 08080808:0035 01 00000000:00000000 00:00000000 00000000     0        0 51922 2 0000000000000000 0          
`
	sampleTCP6 = `  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000000000000000000000000000:0016 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 19344 1 0000000000000000 100 0 0 10 0
   1: 0000000000000000FFFF00000100007F:1F90 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 52011 1 0000000000000000 100 0 0 10 0
`
)

func littleEndianOnly(t *testing.T) {
	t.Helper()
	var b [2]byte
	binary.NativeEndian.PutUint16(b[:], 1)
	if b[0] != 1 {
		t.Skip("the samples were taken on a little-endian host; /proc prints addresses in host byte order")
	}
}

func TestParseProcNetSamples(t *testing.T) {
	littleEndianOnly(t)
	ap := netip.MustParseAddrPort
	for _, tc := range []struct {
		name, table string
		want        []procNetSocket
	}{
		{"tcp", sampleTCP, []procNetSocket{
			{ap("0.0.0.0:22"), ap("0.0.0.0:0"), stateListen},
			{ap("127.0.0.1:3306"), ap("0.0.0.0:0"), stateListen},
			{ap("10.0.2.15:22"), ap("10.0.2.2:54196"), 0x01},
		}},
		{"udp", sampleUDP, []procNetSocket{
			{ap("0.0.0.0:68"), ap("0.0.0.0:0"), stateClose},
			{ap("10.0.2.15:42737"), ap("8.8.8.8:53"), 0x01},
		}},
		{"tcp6", sampleTCP6, []procNetSocket{
			{ap("[::]:22"), ap("[::]:0"), stateListen},
			{ap("[::ffff:127.0.0.1]:8080"), ap("[::]:0"), stateListen},
		}},
	} {
		got, err := parseProcNet(strings.NewReader(tc.table))
		if err != nil {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		if len(got) != len(tc.want) {
			t.Errorf("%s: got %d sockets, want %d: %v", tc.name, len(got), len(tc.want), got)
			continue
		}
		for i := range got {
			if got[i] != tc.want[i] {
				t.Errorf("%s line %d: got %v, want %v", tc.name, i+1, got[i], tc.want[i])
			}
		}
	}
}

func TestParseProcNetErrors(t *testing.T) {
	for _, bad := range []string{
		"   0: 00000000:0016\n",                            // too few columns
		"   0 00000000:0016 00000000:0000 0A\n",            // no colon after sl
		"   0: 0000000:0016 00000000:0000 0A\n",            // 7 hex digits
		"   0: 00000000:16 00000000:0000 0A\n",             // short port
		"   0: 0000000G:0016 00000000:0000 0A\n",           // not hex
		"   0: 00000000:0016 00000000:00000 0A\n",          // long port
		"   0: 00000000:0016 00000000:0000 1FF\n",          // state over 8 bits
		"   0: 00000000000000000000000000000000:0016 x 0A", // bad remote
	} {
		if socks, err := parseProcNet(strings.NewReader(bad)); err == nil {
			t.Errorf("%q parsed as %v", bad, socks)
		}
	}
	if socks, err := parseProcNet(strings.NewReader("")); err != nil || len(socks) != 0 {
		t.Errorf("empty table: %v, %v", socks, err)
	}
}

func TestListening(t *testing.T) {
	ap := netip.MustParseAddrPort
	for _, tc := range []struct {
		s     procNetSocket
		proto string
		want  bool
	}{
		{procNetSocket{ap("0.0.0.0:80"), ap("0.0.0.0:0"), stateListen}, "tcp", true},
		{procNetSocket{ap("0.0.0.0:80"), ap("10.0.0.1:5000"), 0x01}, "tcp", false},
		{procNetSocket{ap("0.0.0.0:80"), ap("0.0.0.0:0"), stateClose}, "tcp", false},
		{procNetSocket{ap("0.0.0.0:53"), ap("0.0.0.0:0"), stateClose}, "udp", true},
		{procNetSocket{ap("[::]:53"), ap("[::]:0"), stateClose}, "udp", true},
		{procNetSocket{ap("10.0.0.2:53"), ap("10.0.0.1:5353"), 0x01}, "udp", false},
		{procNetSocket{ap("0.0.0.0:53"), ap("0.0.0.0:0"), stateListen}, "udp", false},
		{procNetSocket{ap("0.0.0.0:53"), ap("0.0.0.0:0"), stateListen}, "sctp", false},
	} {
		if got := tc.s.listening(tc.proto); got != tc.want {
			t.Errorf("%v listening(%s) = %v, want %v", tc.s, tc.proto, got, tc.want)
		}
	}
}

func TestReadProcNetFakeDir(t *testing.T) {
	littleEndianOnly(t)
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "tcp"), []byte(sampleTCP), 0o644); err != nil {
		t.Fatal(err)
	}
	socks, err := readProcNet(dir, "tcp") // no tcp6: IPv6 off
	if err != nil || len(socks) != 3 {
		t.Fatalf("without tcp6: %v, %v", socks, err)
	}
	if err := os.WriteFile(filepath.Join(dir, "tcp6"), []byte(sampleTCP6), 0o644); err != nil {
		t.Fatal(err)
	}
	if socks, err = readProcNet(dir, "tcp"); err != nil || len(socks) != 5 {
		t.Fatalf("with tcp6: %v, %v", socks, err)
	}
	if _, err := readProcNet(dir, "udp"); err == nil {
		t.Error("no udp table, but no error")
	}
	if err := os.WriteFile(filepath.Join(dir, "udp"), []byte("  0: zz\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := readProcNet(dir, "udp"); err == nil || !strings.Contains(err.Error(), "udp: line 1") {
		t.Errorf("bad udp table: %v", err)
	}
}

func FuzzParseProcNet(f *testing.F) {
	f.Add(sampleTCP)                                      // real tcp table
	f.Add(sampleUDP)                                      // real udp table
	f.Add(sampleTCP6)                                     // real tcp6 table, v4-mapped address
	f.Add("   0: 00000000:0016 00000000:0000 0A\n")       // the columns the parser reads
	f.Add("   0: FFFFFFFF:FFFF FFFFFFFF:FFFF FF x y z\n") // maxima
	f.Add("sl\n   0: 00000000:0016:0 00000000:0000 0A\n") // extra colon
	f.Fuzz(func(t *testing.T, table string) {
		socks, err := parseProcNet(strings.NewReader(table))
		if err != nil {
			return
		}
		for _, s := range socks {
			if !s.Local.IsValid() || !s.Remote.IsValid() {
				t.Errorf("invalid socket %v from %q", s, table)
			}
		}
	})
}
