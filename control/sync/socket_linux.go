package connsync

import "golang.org/x/sys/unix"

func bindToDevice(fd int, ifname string) error { return unix.BindToDevice(fd, ifname) }
