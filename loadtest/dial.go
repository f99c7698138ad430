package loadtest

import (
	"context"
	"fmt"
	"net"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// maxSourceIPs bounds --source-ips: 65536 addresses of 127.0.0.0/8, each
// with its own ephemeral port range, are far more than one machine's
// file descriptors allow.
const maxSourceIPs = 1 << 16

// sourceDialer dials TCP from local addresses taken in turn from a list, so
// that connections to one server address are not limited to one port range.
type sourceDialer struct {
	base  net.Dialer
	addrs []net.IP
	next  atomic.Uint64
}

func newSourceDialer(n int) (*sourceDialer, error) {
	d := &sourceDialer{base: net.Dialer{Timeout: 10 * time.Second, KeepAlive: -1}}
	if n <= 1 {
		return d, nil
	}
	addrs, err := sourceAddrs(n)
	if err != nil {
		return nil, err
	}
	d.addrs = addrs
	// Bind without a port so the kernel picks it at connect time per
	// 4-tuple instead of reserving one per address at bind time.
	d.base.Control = func(_, _ string, c syscall.RawConn) error {
		var serr error
		err := c.Control(func(fd uintptr) {
			serr = unix.SetsockoptInt(int(fd), unix.IPPROTO_IP, unix.IP_BIND_ADDRESS_NO_PORT, 1)
		})
		if err != nil {
			return err
		}
		return serr
	}
	return d, nil
}

// sourceAddrs returns n addresses counting up from 127.0.0.1.
func sourceAddrs(n int) ([]net.IP, error) {
	if n < 1 || n > maxSourceIPs {
		return nil, fmt.Errorf("loadtest: source addresses %d: want 1..%d", n, maxSourceIPs)
	}
	out := make([]net.IP, n)
	for i := range n {
		v := uint32(127<<24) + 1 + uint32(i)
		out[i] = net.IPv4(byte(v>>24), byte(v>>16), byte(v>>8), byte(v))
	}
	return out, nil
}

// DialContext dials addr from the next source address.
func (d *sourceDialer) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	if len(d.addrs) == 0 {
		return d.base.DialContext(ctx, network, addr)
	}
	dd := d.base
	i := d.next.Add(1) % uint64(len(d.addrs))
	dd.LocalAddr = &net.TCPAddr{IP: d.addrs[i]}
	return dd.DialContext(ctx, network, addr)
}
