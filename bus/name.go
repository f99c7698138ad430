package bus

import (
	"errors"
	"fmt"
)

// MaxNameLen bounds node and channel names, in bytes. A networked bus puts
// the name into every message header; NATS, for one, closes a connection
// whose protocol line exceeds 4 KiB, so an unbounded name from a client
// could take the whole bus down.
const MaxNameLen = 1024

// ErrInvalidName is returned for an empty node or channel name, or one
// longer than MaxNameLen. Every Bus implementation rejects the same names,
// so code tested against Memory does not fail later on NATS. Any other byte
// string is a valid name: implementations escape what their transport
// cannot carry.
var ErrInvalidName = errors.New("bus: invalid node or channel name")

// CheckName returns an error wrapping ErrInvalidName if name is not a valid
// node or channel name.
func CheckName(name string) error {
	if name == "" {
		return fmt.Errorf("%w: empty", ErrInvalidName)
	}
	if len(name) > MaxNameLen {
		return fmt.Errorf("%w: %d bytes, more than %d", ErrInvalidName, len(name), MaxNameLen)
	}
	return nil
}
