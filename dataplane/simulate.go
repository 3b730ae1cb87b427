package dataplane

import "github.com/gvs-lb/gvs/conntrack"

// What gvsadm simulate reads of the dataplane to tell which real a new
// connection would get: the published Table (Dataplane.Table), each
// service's scheduler through schedule.Peeker, and these two, which
// answer as a worker's newConn decides, changing nothing.

// Template returns the persistence template k (conntrack.MaskedTemplateKey
// of a client and a service) if it is live now, by the workers' clock,
// without changing it: no connection counted, no timeout restarted.
func (d *Dataplane) Template(k *conntrack.TemplateKey) (conntrack.TemplateInfo, bool) {
	return d.templates.Lookup(k, nanotime())
}

// TemplateUsable reports whether real id, named by a live persistence
// template of svc, takes the client's new connection, as a worker
// decides it (Worker.usable): the real is still one of svc's and Ready.
// When it is not, the worker schedules the connection afresh and the
// template is replaced. As in IPVS, a quiescent or overloaded real keeps
// its persistent clients.
func (t *Table) TemplateUsable(svc *Service, id uint32) bool {
	r := t.real(id)
	return r != nil && r.Ready && svc.hasReal(id)
}
