package lab

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"os"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Capture records every frame seen on one interface of a host: an AF_PACKET
// socket (packet(7)) for ETH_P_ALL bound to the interface, both directions.
type Capture struct {
	name string // host/iface, for errors
	f    *os.File
	rc   syscall.RawConn
	lab  *Lab
	done chan struct{} // closed when the reader goroutine has finished

	mu      sync.Mutex
	frames  []Frame
	dropped int
	err     error // the error that ended the reader, if not Stop

	stopOnce sync.Once
}

// Capture starts recording every frame seen on iface of h, with its packet
// type, until Stop. Frames are recorded from the moment Capture returns.
// Lab.Close stops it if the caller did not.
func (h *Host) Capture(iface string) (*Capture, error) {
	c := &Capture{name: h.Name + "/" + iface, lab: h.lab, done: make(chan struct{})}
	var fd int
	err := h.Do(func() error {
		ifi, err := net.InterfaceByName(iface)
		if err != nil {
			return err
		}
		// Protocol 0 receives nothing until bind names ETH_P_ALL together
		// with the interface, so no other interface's frames slip in.
		fd, err = unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			return fmt.Errorf("socket: %w", err)
		}
		if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, captureRcvBuf); err != nil {
			unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, captureRcvBuf) // best effort without CAP_NET_ADMIN
		}
		sa := &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ALL), Ifindex: ifi.Index}
		if err := unix.Bind(fd, sa); err != nil {
			unix.Close(fd)
			return fmt.Errorf("bind: %w", err)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("lab: capture on %s: %w", c.name, err)
	}
	c.f = os.NewFile(uintptr(fd), "packet:"+c.name) // non-blocking: uses the poller
	c.rc, err = c.f.SyscallConn()
	if err != nil {
		c.f.Close()
		return nil, fmt.Errorf("lab: capture on %s: %w", c.name, err)
	}
	if !c.lab.track(c) {
		c.f.Close()
		return nil, fmt.Errorf("lab: capture on %s: lab closed", c.name)
	}
	go c.read()
	return c, nil
}

// read is the capture's goroutine, owned by the Capture: it records frames
// until Stop sets a read deadline, drains what the kernel still holds and
// exits.
func (c *Capture) read() {
	defer close(c.done)
	buf := make([]byte, captureSnap)
	var rerr error
	drain := func(fd uintptr) bool {
		for {
			n, from, err := unix.Recvfrom(int(fd), buf, unix.MSG_TRUNC)
			if err == unix.EINTR {
				continue
			}
			if err == unix.EAGAIN {
				return false
			}
			if err != nil {
				rerr = err
				return true
			}
			c.record(buf[:min(n, len(buf))], from)
		}
	}
	err := c.rc.Read(drain)
	if err == nil {
		err = rerr
	}
	if errors.Is(err, os.ErrDeadlineExceeded) {
		// Stop: take what is queued, then finish.
		if cerr := c.rc.Control(func(fd uintptr) { drain(fd) }); cerr != nil {
			err = cerr
		} else {
			err = rerr
		}
	}
	if err != nil && !errors.Is(err, os.ErrDeadlineExceeded) {
		c.mu.Lock()
		c.err = err
		c.mu.Unlock()
	}
}

func (c *Capture) record(b []byte, from unix.Sockaddr) {
	var pkttype uint8
	if ll, ok := from.(*unix.SockaddrLinklayer); ok {
		pkttype = ll.Pkttype
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.frames) >= maxCaptureFrames {
		c.dropped++
		return
	}
	c.frames = append(c.frames, Frame{
		Outgoing: pkttype == unix.PACKET_OUTGOING,
		PktType:  pkttype,
		Data:     append([]byte(nil), b...),
		Time:     time.Now(),
	})
}

// Stop ends the capture and returns the frames seen, oldest first,
// including those the kernel had queued but not yet handed over. A frame
// still in flight on another interface when Stop is called may be missed:
// wait for the traffic's last answer first. Stop is idempotent; later
// calls return the same frames.
func (c *Capture) Stop() []Frame {
	c.stopOnce.Do(func() {
		c.f.SetReadDeadline(time.Now())
		<-c.done
		c.f.Close()
		c.lab.untrack(c)
	})
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.frames
}

// Close stops the capture (see Stop); it lets a Lab stop captures a test
// left running.
func (c *Capture) Close() error {
	c.Stop()
	return nil
}

// Dropped returns how many frames were not recorded because the capture
// already held maxCaptureFrames.
func (c *Capture) Dropped() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.dropped
}

// Err returns the socket error that ended the capture early, or nil.
func (c *Capture) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

// htons converts v to network byte order, as sll_protocol expects.
func htons(v uint16) uint16 {
	var b [2]byte
	binary.BigEndian.PutUint16(b[:], v)
	return binary.NativeEndian.Uint16(b[:])
}
