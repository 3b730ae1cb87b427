// Package vrrp owns the Virtual Router Redundancy Protocol version 3 for IPv4
// (RFC 5798): the advertisement codec of section 5 and the router state
// machine of section 6.4.
//
// It does no I/O and reads no clock. [Parse] and [Advert.Marshal] work on the
// VRRP message that follows the IP header; a [Machine] is driven by events
// that carry the current time and answers each with an [Action] that says
// what to send, whether to take or drop the virtual addresses, and when to
// call [Machine.Tick] next. Sockets, gratuitous ARP and the timer itself
// belong to the caller.
package vrrp
