//go:build !linux

package connsync

import "errors"

func bindToDevice(int, string) error {
	return errors.New("connsync: binding to an interface is supported on Linux only")
}
