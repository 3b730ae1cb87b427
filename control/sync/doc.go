// Package connsync owns the wire format of the Linux IPVS connection
// synchronisation protocol, version 1 (net/netfilter/ipvs/ip_vs_sync.c:
// struct ip_vs_sync_mesg with SYNC_PROTO_VER 1 and struct ip_vs_sync_v4
// and ip_vs_sync_v6 records; ipvs-sysctl.rst for the daemon), the datagrams a master director
// multicasts to 224.0.0.81:8848 so that backups can take over connections.
//
// It has the codec ([Message.Marshal] and [Batch] encode, [Parse] and
// [Message.Decode] decode and validate), gvs's optional parameters for
// FULLNAT ([OptLocal], [OptTSOffset]), which a kernel backup skips, and
// the UDP
// [Socket] that sends to the group or a unicast peer and receives from the
// other directors. The sync daemon (what to send when, what to install)
// and the semantic checks a backup applies before installing a connection
// (supported protocol, state below the protocol's state count) belong to
// the caller, gvsd's control package.
//
// The directory is control/sync; the package is called connsync so that
// importers can use the standard library's sync alongside it without an
// alias.
package connsync
