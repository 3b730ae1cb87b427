// Package vrrp owns the Virtual Router Redundancy Protocol, version 3 (RFC
// 5798) for IPv4 and IPv6 and version 2 (RFC 3768, IPv4 only, with RFC
// 2338's simple password as keepalived sends it): the advertisement codec
// of section 5 and the router state machine of section 6 of each. One
// Machine runs a virtual router in both families when its addresses are
// of both.
//
// It does no I/O and reads no clock, but for the Speaker. [Decode] and
// [Advert.Marshal] work on the VRRP message that follows the IP header;
// [Config.Match] decides whether a decoded advert is for this router as
// configured; a [Machine] is driven by events that carry the current time
// and answers each with an [Action] that says what to send, whether to take
// or drop the virtual addresses, and when to call [Machine.Tick] next. The
// [Speaker] runs a Machine over raw sockets and reports the peers whose
// adverts for our virtual router it must drop for another version,
// password or interval ([Mismatch]): with them, both sides are master.
package vrrp
