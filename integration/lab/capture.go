package lab

import (
	"fmt"
	"os"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"
)

// Tunables of Capture.
const (
	// captureSnap is the largest frame kept whole: a 64 KiB GSO/GRO frame
	// plus its link header fits, BIG TCP frames are truncated.
	captureSnap = 1 << 18
	// maxCaptureFrames bounds a capture's memory; later frames are dropped
	// and counted (Capture.Dropped).
	maxCaptureFrames = 1 << 16
	// captureRcvBuf is the socket buffer asked for (SO_RCVBUFFORCE) so a
	// burst is not lost before the reader runs.
	captureRcvBuf = 4 << 20
)

// Frame is one frame a Capture saw.
type Frame struct {
	Outgoing bool      // sent by the host (PktType is PACKET_OUTGOING)
	PktType  uint8     // sll_pkttype of packet(7): PACKET_HOST, _BROADCAST, _MULTICAST, _OTHERHOST, _OUTGOING
	Data     []byte    // the frame from its Ethernet header, at most captureSnap bytes
	Time     time.Time // when the capture read it
}

// WritePcap writes frames to path as a pcap file of Ethernet frames, for
// reading with tcpdump -r or Wireshark when a test fails.
func WritePcap(path string, frames []Frame) error {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("lab: write pcap: %w", err)
	}
	w := pcapgo.NewWriterNanos(f)
	if err := w.WriteFileHeader(captureSnap, layers.LinkTypeEthernet); err != nil {
		f.Close()
		return fmt.Errorf("lab: write pcap %s: %w", path, err)
	}
	for i, fr := range frames {
		ci := gopacket.CaptureInfo{Timestamp: fr.Time, CaptureLength: len(fr.Data), Length: len(fr.Data)}
		if err := w.WritePacket(ci, fr.Data); err != nil {
			f.Close()
			return fmt.Errorf("lab: write pcap %s: frame %d: %w", path, i, err)
		}
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("lab: write pcap %s: %w", path, err)
	}
	return nil
}
