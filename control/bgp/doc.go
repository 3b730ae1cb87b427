// Package bgp owns the director's BGP speaker: sessions to its peers and the VIP /32s it
// announces to them over IPv4 unicast (RFC 4271, communities RFC 1997, TCP MD5 RFC
// 2385), so that routers spread the VIPs' traffic over every director announcing them
// (ECMP). The protocol is GoBGP's (github.com/osrg/gobgp/v4, used as a library); this
// package decides nothing about which VIPs to announce, it announces what it is given.
package bgp
