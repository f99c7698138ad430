//go:build !linux

package sockjs

import "errors"

// See wssocket_linux.go: without these calls, rawSocket finds no socket and
// neither is called.

const nonblockingSupported = false

func writeNonblocking(uintptr, []byte) (int, error) { return 0, errors.ErrUnsupported }

func readNonblocking(uintptr, []byte) (int, error) { return 0, errors.ErrUnsupported }
