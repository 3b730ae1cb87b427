package schedule

import "fmt"

// Choice is a scheduling decision as Explain tells it.
type Choice struct {
	Scheduler string // the scheduler's ipvsadm name (-s)
	// Index is what Pick would return now: an index in dests, or -1.
	Index int
	// Preferred is, for the hashing and locality schedulers, the real the
	// flow's bucket, slot or cache entry names, whether or not it can
	// take the connection (Index differs when it cannot); -1 for the
	// others or when there is none.
	Preferred int
	// Reason says why, in the scheduler's terms, e.g. "lowest
	// (active*256+inactive)/weight = 0.0".
	Reason string
}

// Explain returns what s's Pick would return for f now (s's Peek) and
// why, changing nothing. s must be a scheduler New built, for dests.
// The counters may move between the peek and the reason's figures; both
// are read once. It allocates: for the control path (gvsadm simulate),
// never the packet path.
func Explain(s Scheduler, dests []Dest, f *Flow) Choice {
	if f == nil {
		f = &zeroFlow
	}
	p, ok := s.(Peeker)
	if !ok {
		return Choice{Index: -1, Preferred: -1, Reason: "the scheduler cannot be asked without picking"}
	}
	c := Choice{Scheduler: nameOf(s), Index: p.Peek(dests, f), Preferred: -1}
	if s, ok := s.(interface{ size() int }); ok && s.size() != len(dests) {
		c.Reason = "the scheduler was built for another list of reals"
		return c
	}
	c.Reason = c.explain(s, dests, f)
	return c
}

// nameOf returns the ipvsadm name of a scheduler New built.
func nameOf(s Scheduler) string {
	switch s.(type) {
	case *rr:
		return "rr"
	case *wrr:
		return "wrr"
	case *lc:
		return "lc"
	case *wlc:
		return "wlc"
	case *sed:
		return "sed"
	case *nq:
		return "nq"
	case *fo:
		return "fo"
	case *ovf:
		return "ovf"
	case *sh:
		return "sh"
	case *dh:
		return "dh"
	case *mh:
		return "mh"
	case *lblc:
		return "lblc"
	case *lblcr:
		return "lblcr"
	}
	return fmt.Sprintf("%T", s)
}

func (s *rr) size() int    { return s.n }
func (s *wrr) size() int   { return s.n }
func (s *lc) size() int    { return s.n }
func (s *wlc) size() int   { return s.n }
func (s *sed) size() int   { return s.n }
func (s *nq) size() int    { return s.n }
func (s *fo) size() int    { return s.n }
func (s *ovf) size() int   { return s.n }
func (s *sh) size() int    { return s.n }
func (s *dh) size() int    { return s.n }
func (s *mh) size() int    { return s.n }
func (s *lblc) size() int  { return s.n }
func (s *lblcr) size() int { return s.n }

// Reasons shared by several schedulers.
const (
	noneAvailable = "no real available: every real has weight 0 or is overloaded"
	passedOver    = "next in turn, after passing over reals that are quiescent (weight 0) or overloaded"
)

// wlcFigure is the weighted least-connection figure of dests[i].
func wlcFigure(dests []Dest, i int) string {
	d := &dests[i]
	return fmt.Sprintf("(active*256+inactive)/weight = %.1f", float64(overhead(d.Counters))/float64(d.Weight))
}

// sedFigure is the shortest-expected-delay figure of dests[i].
func sedFigure(dests []Dest, i int) string {
	d := &dests[i]
	return fmt.Sprintf("(active+1)/weight = %.2f", float64(d.Counters.Active.Load()+1)/float64(d.Weight))
}

// explain is the reason for c.Index (and sets c.Preferred).
func (c *Choice) explain(s Scheduler, dests []Dest, f *Flow) string {
	i := c.Index
	switch s := s.(type) {
	case *rr:
		if i < 0 {
			return noneAvailable
		}
		if p := s.next.n.Load() % uint64(len(s.idx)); int(s.idx[p]) != i {
			return passedOver
		}
		return "next in turn"
	case *wrr:
		if i < 0 {
			return noneAvailable
		}
		if p := s.next.n.Load() % s.period; s.real(p) != i {
			return passedOver + " (weights interleaved as ip_vs_wrr)"
		}
		return "next in turn (weights interleaved as ip_vs_wrr)"
	case *lc:
		if i < 0 {
			return noneAvailable
		}
		return fmt.Sprintf("lowest active*256+inactive = %d", overhead(dests[i].Counters))
	case *wlc:
		if i < 0 {
			return noneAvailable
		}
		return "lowest " + wlcFigure(dests, i)
	case *sed:
		if i < 0 {
			return noneAvailable
		}
		return "lowest " + sedFigure(dests, i)
	case *nq:
		if i < 0 {
			return noneAvailable
		}
		if dests[i].Counters.Active.Load() == 0 {
			return "first available real with no active connection"
		}
		return "every available real is busy: lowest " + sedFigure(dests, i)
	case *fo:
		if i < 0 {
			return noneAvailable
		}
		return fmt.Sprintf("highest weight among the available reals (%d)", dests[i].Weight)
	case *ovf:
		if i < 0 {
			return "no real available: every real has weight 0, is overloaded or has more active connections than its weight"
		}
		return fmt.Sprintf("highest weight (%d) among the available reals with no more active connections than their weight", dests[i].Weight)
	case *sh:
		v := fold(&f.Src)
		what := "source address"
		if s.flags&SHPort != 0 {
			v += hashedPort(f)
			what = "source address and port"
		}
		b := hash32(v, shTabBits) & shTabMask
		c.Preferred = int(s.table[b])
		return hashReason(fmt.Sprintf("%s hashed to bucket %d of %d", what, b, shTabSize), c.Preferred, i, s.flags&SHFallback != 0, "sh-fallback")
	case *dh:
		b := hash32(fold(&f.Dst), shTabBits) & shTabMask
		c.Preferred = int(s.table[b])
		return hashReason(fmt.Sprintf("destination address hashed to bucket %d of %d", b, shTabSize), c.Preferred, i, false, "")
	case *mh:
		if s.table == nil {
			return "no real has a weight"
		}
		v := fold(&f.Src)
		what := "source address"
		if s.flags&MHPort != 0 {
			v += hashedPort(f)
			what = "source address and port"
		}
		h := s.slot(v)
		c.Preferred = int(s.table[h])
		return hashReason(fmt.Sprintf("%s hashed to Maglev slot %d of %d", what, h, s.m), c.Preferred, i, s.flags&MHFallback != 0, "mh-fallback")
	case *lblc:
		d := s.cached(f)
		c.Preferred = d
		switch {
		case i < 0:
			return noneAvailable
		case d < 0:
			return "no cache entry for the destination: the weighted least-connection choice, lowest " + wlcFigure(dests, i) + "; it becomes the entry"
		case d == i:
			return "the real cached for the destination"
		}
		return "the real cached for the destination is " + lblcUnfit(dests, d) +
			": the weighted least-connection choice, lowest " + wlcFigure(dests, i) + "; it replaces the entry"
	case *lblcr:
		e, ok := s.cached(f)
		if ok {
			c.Preferred = e.min(dests)
		}
		switch {
		case i < 0:
			return noneAvailable
		case !ok:
			return "no cache entry for the destination: the weighted least-connection choice, lowest " + wlcFigure(dests, i) + "; it starts the destination's server set"
		case c.Preferred == i:
			return fmt.Sprintf("least loaded of the destination's server set of %d, %s", e.size, wlcFigure(dests, i))
		case c.Preferred < 0:
			return fmt.Sprintf("every member of the destination's server set of %d is quiescent or overloaded: the weighted least-connection choice, lowest %s; it joins the set", e.size, wlcFigure(dests, i))
		}
		return fmt.Sprintf("the least loaded of the destination's server set of %d is %s: the weighted least-connection choice, lowest %s; it joins the set",
			e.size, lblcUnfit(dests, c.Preferred), wlcFigure(dests, i))
	}
	if i < 0 {
		return noneAvailable
	}
	return ""
}

// hashReason explains a hashing scheduler's choice i when the flow's
// bucket (or slot) names real pref.
func hashReason(hashed string, pref, i int, fallback bool, flag string) string {
	switch {
	case pref < 0:
		return "no real"
	case i == pref:
		return hashed
	case i >= 0:
		return hashed + ", whose real is quiescent or overloaded: the " + flag + " probe's first available real"
	case !fallback && flag != "":
		return hashed + ", whose real is quiescent or overloaded, and " + flag + " is off"
	case !fallback:
		return hashed + ", whose real is quiescent or overloaded (no fallback)"
	}
	return hashed + ", whose real is quiescent or overloaded, and so is every other: " + noneAvailable
}

// lblcUnfit says why lblc or lblcr does not keep real d for a flow: its
// weight is 0, or it is overloaded in lblc's sense (lblcOverloaded). The
// threshold overload flag does not count: lblc keeps a flagged cached
// real, and lblcr's set minimum skips flagged members already.
func lblcUnfit(dests []Dest, d int) string {
	if dests[d].Weight <= 0 {
		return "quiescent (weight 0)"
	}
	return fmt.Sprintf("overloaded (%d active connections, more than its weight %d, while another real has fewer than half its weight)",
		dests[d].Counters.Active.Load(), dests[d].Weight)
}
