package main

import (
	"errors"
	"fmt"

	"github.com/gvs-lb/gvs/integration/lab"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// linkCounter reads the statistics of one interface of a lab host through
// a netlink socket opened inside the host's namespace (rtnetlink(7),
// IFLA_STATS64), so reading costs one round trip and no namespace switch.
type linkCounter struct {
	name  string // host/iface, for errors
	iface string
	h     *netlink.Handle
}

func openLinkCounter(h *lab.Host) (*linkCounter, error) {
	ns, err := netns.GetFromName(h.NS)
	if err != nil {
		return nil, fmt.Errorf("bench: counters of %s: %w", h.Name, err)
	}
	defer ns.Close()
	nl, err := netlink.NewHandleAt(ns, unix.NETLINK_ROUTE)
	if err != nil {
		return nil, fmt.Errorf("bench: counters of %s: netlink: %w", h.Name, err)
	}
	return &linkCounter{name: h.Name + "/" + h.Iface, iface: h.Iface, h: nl}, nil
}

// read returns the interface's cumulative packet counters.
func (c *linkCounter) read() (linkStats, error) {
	link, err := c.h.LinkByName(c.iface)
	if err != nil {
		return linkStats{}, fmt.Errorf("bench: counters of %s: %w", c.name, err)
	}
	s := link.Attrs().Statistics
	if s == nil {
		return linkStats{}, fmt.Errorf("bench: counters of %s: the kernel sent no statistics", c.name)
	}
	return linkStats{RxPackets: s.RxPackets, TxPackets: s.TxPackets, RxDropped: s.RxDropped, TxDropped: s.TxDropped}, nil
}

func (c *linkCounter) close() { c.h.Close() }

// counterSet reads everything a sample needs: the generator's, the
// director's and every real server's eth0, and the bridge port facing the
// director, whose rx counts what the director sent.
type counterSet struct {
	gen, director, directorPort *linkCounter
	reals                       []*linkCounter
}

// openCounters opens the counters of l; directorPort is the LAN's end of
// the director's veth.
func openCounters(l *lab.Lab, directorPort *lab.Host) (*counterSet, error) {
	cs := &counterSet{}
	var err error
	if cs.gen, err = openLinkCounter(l.Generator); err != nil {
		return nil, err
	}
	if cs.director, err = openLinkCounter(l.Director); err != nil {
		cs.close()
		return nil, err
	}
	if cs.directorPort, err = openLinkCounter(directorPort); err != nil {
		cs.close()
		return nil, err
	}
	for _, r := range l.Reals {
		c, err := openLinkCounter(r)
		if err != nil {
			cs.close()
			return nil, err
		}
		cs.reals = append(cs.reals, c)
	}
	return cs, nil
}

func (cs *counterSet) read() (counters, error) {
	var c counters
	var errs []error
	var err error
	c.gen, err = cs.gen.read()
	errs = append(errs, err)
	c.director, err = cs.director.read()
	errs = append(errs, err)
	c.directorPort, err = cs.directorPort.read()
	errs = append(errs, err)
	for _, r := range cs.reals {
		s, err := r.read()
		errs = append(errs, err)
		c.reals = append(c.reals, s)
	}
	return c, errors.Join(errs...)
}

func (cs *counterSet) close() {
	for _, c := range append([]*linkCounter{cs.gen, cs.director, cs.directorPort}, cs.reals...) {
		if c != nil {
			c.close()
		}
	}
}
