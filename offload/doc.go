// Package offload owns the NIC offload features that change what an AF_PACKET
// tap sees, read and set through the SIOCETHTOOL ioctl of ethtool(8) and
// include/uapi/linux/ethtool.h (ETHTOOL_GFEATURES/SFEATURES on the named
// feature bits, grouped the way ethtool -k groups them).
//
// GRO and LRO hand a tap frames larger than the MTU; TSO and GSO on a veth
// peer do the same on the sending side; TX checksum offload on a veth sender
// leaves CHECKSUM_PARTIAL packets whose checksum field is not final when a
// tap copies them. DisableForCapture and DisableAll turn those off.
//
// The ioctl acts in the network namespace of the socket it is issued on, and
// every call opens that socket on the calling thread: a caller working on an
// interface in another namespace locks its goroutine to an OS thread and
// switches that thread into the namespace first. Changing a feature needs
// CAP_NET_ADMIN.
package offload
