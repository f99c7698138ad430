package main

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"
)

// The PROXY protocol (HAProxy's send-proxy and send-proxy-v2): a balancer
// that forwards TCP rather than HTTP names the client in a header before
// the connection's own bytes. With --proxy-protocol, connections from
// --trusted-proxies must start with one (v1 text or v2 binary), and the
// client it names becomes the connection's remote address, which
// Session.Info().IP and the per-IP limits then use. Connections from
// anyone else are served as they are: a header from them is not believed.

// proxyHeaderTimeout bounds how long a trusted proxy may take to send the
// header.
const proxyHeaderTimeout = 5 * time.Second

var errNoProxyHeader = errors.New("proxyproto: connection does not start with a PROXY header")

// proxyListener reads the PROXY header of each trusted connection on its
// own goroutine, so a slow one never holds up Accept for the others.
type proxyListener struct {
	net.Listener
	trusted []netip.Prefix
	log     *slog.Logger

	conns     chan net.Conn
	errs      chan error
	done      chan struct{}
	closeOnce sync.Once
}

func newProxyListener(ln net.Listener, trusted []netip.Prefix, log *slog.Logger) *proxyListener {
	l := &proxyListener{Listener: ln, trusted: trusted, log: log,
		conns: make(chan net.Conn), errs: make(chan error), done: make(chan struct{})}
	go l.acceptLoop()
	return l
}

func (l *proxyListener) acceptLoop() {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			select {
			case l.errs <- err:
			case <-l.done:
				return
			}
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		go l.handshake(c)
	}
}

func (l *proxyListener) handshake(c net.Conn) {
	if l.isTrusted(c.RemoteAddr()) {
		pc, err := readProxyHeader(c)
		if err != nil {
			l.log.Debug("proxyproto: connection refused", "peer", c.RemoteAddr().String(), "err", err)
			c.Close()
			return
		}
		c = pc
	}
	select {
	case l.conns <- c:
	case <-l.done:
		c.Close()
	}
}

func (l *proxyListener) isTrusted(addr net.Addr) bool {
	ta, ok := addr.(*net.TCPAddr)
	if !ok {
		return false
	}
	ip, ok := netip.AddrFromSlice(ta.IP)
	if !ok {
		return false
	}
	ip = ip.Unmap()
	for _, p := range l.trusted {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

func (l *proxyListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case err := <-l.errs:
		return nil, err
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *proxyListener) Close() error {
	l.closeOnce.Do(func() { close(l.done) })
	return l.Listener.Close()
}

// proxyConn is a connection whose remote address the PROXY header named.
type proxyConn struct {
	net.Conn
	r      *bufio.Reader // holds what followed the header
	remote net.Addr
}

func (c *proxyConn) Read(p []byte) (int, error) { return c.r.Read(p) }
func (c *proxyConn) RemoteAddr() net.Addr       { return c.remote }

// readProxyHeader reads c's PROXY header. A LOCAL (v2) or UNKNOWN (v1)
// header, which a balancer's own health checks send, keeps c's address.
func readProxyHeader(c net.Conn) (net.Conn, error) {
	c.SetReadDeadline(time.Now().Add(proxyHeaderTimeout))
	br := bufio.NewReaderSize(c, 512)
	remote, err := parseProxyHeader(br)
	c.SetReadDeadline(time.Time{})
	if err != nil {
		return nil, err
	}
	if remote == nil {
		remote = c.RemoteAddr()
	}
	return &proxyConn{Conn: c, r: br, remote: remote}, nil
}

var proxyV2Signature = []byte("\r\n\r\n\x00\r\nQUIT\n")

// parseProxyHeader reads one PROXY header (v1 or v2) from br. It returns
// the client's address, or nil for a header that names none.
func parseProxyHeader(br *bufio.Reader) (net.Addr, error) {
	p, err := br.Peek(6)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", errNoProxyHeader, err)
	}
	if string(p) == "PROXY " {
		return parseProxyV1(br)
	}
	if sig, err := br.Peek(len(proxyV2Signature)); err == nil && bytes.Equal(sig, proxyV2Signature) {
		return parseProxyV2(br)
	}
	return nil, errNoProxyHeader
}

// parseProxyV1: "PROXY TCP4|TCP6 src dst sport dport\r\n" or
// "PROXY UNKNOWN ...\r\n", at most 107 bytes.
func parseProxyV1(br *bufio.Reader) (net.Addr, error) {
	var line []byte
	for len(line) < 107 {
		b, err := br.ReadByte()
		if err != nil {
			return nil, fmt.Errorf("proxyproto: v1 header: %w", err)
		}
		line = append(line, b)
		if b == '\n' {
			break
		}
	}
	text, ok := strings.CutSuffix(string(line), "\r\n")
	if !ok {
		return nil, errors.New("proxyproto: v1 header too long or not ended by CRLF")
	}
	f := strings.Split(text, " ")
	if len(f) >= 2 && f[1] == "UNKNOWN" {
		return nil, nil
	}
	if len(f) != 6 || (f[1] != "TCP4" && f[1] != "TCP6") {
		return nil, fmt.Errorf("proxyproto: malformed v1 header %q", text)
	}
	ip, err := netip.ParseAddr(f[2])
	if err != nil || ip.Is4() != (f[1] == "TCP4") || ip.Zone() != "" {
		return nil, fmt.Errorf("proxyproto: v1 source %q", f[2])
	}
	port, err := strconv.ParseUint(f[4], 10, 16)
	if err != nil || (len(f[4]) > 1 && f[4][0] == '0') {
		return nil, fmt.Errorf("proxyproto: v1 source port %q", f[4])
	}
	return net.TCPAddrFromAddrPort(netip.AddrPortFrom(ip, uint16(port))), nil
}

// parseProxyV2: the binary header (signature, version and command, family,
// length, addresses, TLVs, which are skipped).
func parseProxyV2(br *bufio.Reader) (net.Addr, error) {
	var hdr [16]byte
	if _, err := io.ReadFull(br, hdr[:]); err != nil {
		return nil, fmt.Errorf("proxyproto: v2 header: %w", err)
	}
	verCmd, family := hdr[12], hdr[13]
	length := int(binary.BigEndian.Uint16(hdr[14:]))
	if verCmd>>4 != 2 || verCmd&0xf > 1 {
		return nil, fmt.Errorf("proxyproto: v2 version/command %#x", verCmd)
	}
	body := make([]byte, length)
	if _, err := io.ReadFull(br, body); err != nil {
		return nil, fmt.Errorf("proxyproto: v2 addresses: %w", err)
	}
	if verCmd&0xf == 0 { // LOCAL: the balancer's own connection
		return nil, nil
	}
	switch family {
	case 0x11: // TCP over IPv4
		if length < 12 {
			return nil, errors.New("proxyproto: v2 IPv4 addresses too short")
		}
		ip := netip.AddrFrom4([4]byte(body[0:4]))
		return net.TCPAddrFromAddrPort(netip.AddrPortFrom(ip, binary.BigEndian.Uint16(body[8:]))), nil
	case 0x21: // TCP over IPv6
		if length < 36 {
			return nil, errors.New("proxyproto: v2 IPv6 addresses too short")
		}
		ip := netip.AddrFrom16([16]byte(body[0:16])).Unmap()
		return net.TCPAddrFromAddrPort(netip.AddrPortFrom(ip, binary.BigEndian.Uint16(body[32:]))), nil
	}
	return nil, nil // UNSPEC or a family that names no IP client
}
