package main

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"testing"
	"time"
)

// serveRemoteAddr serves, behind a proxyListener trusting trusted, a page
// that answers each request with its RemoteAddr.
func serveRemoteAddr(t *testing.T, trusted ...string) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var prefixes []netip.Prefix
	for _, p := range trusted {
		prefixes = append(prefixes, netip.MustParsePrefix(p))
	}
	pl := newProxyListener(ln, prefixes, slog.New(slog.DiscardHandler))
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, r.RemoteAddr)
	})}
	go srv.Serve(pl)
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().String()
}

// rawRequest sends prefix and a GET on a new connection and returns the
// status line and body, or the error that ended the connection.
func rawRequest(t *testing.T, addr string, prefix []byte) (string, error) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	c.Write(append(prefix, "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"...))
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return fmt.Sprintf("%d %s", resp.StatusCode, b), nil
}

func proxyV2(family byte, src []byte, port uint16, cmd byte) []byte {
	b := append([]byte(nil), proxyV2Signature...)
	b = append(b, 0x20|cmd, family, 0, 0)
	body := append(append([]byte(nil), src...), make([]byte, len(src))...)
	body = binary.BigEndian.AppendUint16(body, port)
	body = binary.BigEndian.AppendUint16(body, 80)
	body = append(body, 0x04, 0x00, 0x01, 'x') // a TLV, skipped
	binary.BigEndian.PutUint16(b[14:], uint16(len(body)))
	return append(b, body...)
}

func TestProxyProtocol(t *testing.T) {
	trusting := serveRemoteAddr(t, "127.0.0.0/8")
	for _, tc := range []struct {
		name   string
		prefix []byte
		want   string
	}{
		{"v1 TCP4", []byte("PROXY TCP4 203.0.113.9 10.0.0.1 5555 80\r\n"), "200 203.0.113.9:5555"},
		{"v1 TCP6", []byte("PROXY TCP6 2001:db8::1 2001:db8::2 6000 80\r\n"), "200 [2001:db8::1]:6000"},
		{"v2 TCP4", proxyV2(0x11, []byte{198, 51, 100, 7}, 4242, 1), "200 198.51.100.7:4242"},
		{"v2 TCP6", proxyV2(0x21, netip.MustParseAddr("2001:db8::7").AsSlice(), 4243, 1), "200 [2001:db8::7]:4243"},
	} {
		if got, err := rawRequest(t, trusting, tc.prefix); err != nil || got != tc.want {
			t.Errorf("%s: %q, %v; want %q", tc.name, got, err, tc.want)
		}
	}
	// A balancer's health check (v1 UNKNOWN, v2 LOCAL) keeps its address.
	for _, prefix := range [][]byte{[]byte("PROXY UNKNOWN\r\n"), proxyV2(0x11, []byte{1, 2, 3, 4}, 1, 0)} {
		if got, err := rawRequest(t, trusting, prefix); err != nil || !strings.HasPrefix(got, "200 127.0.0.1:") {
			t.Errorf("health check %q: %q, %v", prefix[:8], got, err)
		}
	}
	// A trusted peer without a header, or with a broken one, is cut off.
	for _, prefix := range [][]byte{nil, []byte("PROXY TCP4 not-an-ip 10.0.0.1 1 80\r\n"), []byte("PROXY TCP4 1.2.3.4 10.0.0.1 99999 80\r\n")} {
		if got, err := rawRequest(t, trusting, prefix); err == nil {
			t.Errorf("%q: served %q", prefix, got)
		}
	}
	// A slow proxy does not hold up the others.
	slow, err := net.Dial("tcp", trusting)
	if err != nil {
		t.Fatal(err)
	}
	defer slow.Close()
	slow.Write([]byte("PROXY TCP4 "))
	if got, err := rawRequest(t, trusting, []byte("PROXY TCP4 192.0.2.1 10.0.0.1 1 80\r\n")); err != nil || got != "200 192.0.2.1:1" {
		t.Fatalf("behind a slow connection: %q, %v", got, err)
	}

	// From a peer that is not trusted a header is not believed: it is
	// not HTTP either.
	untrusting := serveRemoteAddr(t, "10.0.0.0/8")
	if got, err := rawRequest(t, untrusting, []byte("PROXY TCP4 203.0.113.9 10.0.0.1 5555 80\r\n")); err == nil && !strings.HasPrefix(got, "400") {
		t.Fatalf("untrusted header: %q", got)
	}
	if got, err := rawRequest(t, untrusting, nil); err != nil || !strings.HasPrefix(got, "200 127.0.0.1:") {
		t.Fatalf("untrusted peer without header: %q, %v", got, err)
	}
}

func TestProxyProtocolFlags(t *testing.T) {
	if _, err := parseFlags([]string{"--proxy-protocol"}, func(string) string { return "" }); err == nil {
		t.Fatal("--proxy-protocol without --trusted-proxies accepted")
	}
	cfg, err := parseFlags([]string{"--proxy-protocol", "--trusted-proxies", "10.0.0.0/8"}, func(string) string { return "" })
	if err != nil || !cfg.Security.ProxyProtocol {
		t.Fatalf("%+v, %v", cfg.Security, err)
	}
}

// FuzzProxyHeader: no header crashes the parser, and an address it
// accepts is a real one.
func FuzzProxyHeader(f *testing.F) {
	f.Add([]byte("PROXY TCP4 203.0.113.9 10.0.0.1 5555 80\r\nGET"))
	f.Add([]byte("PROXY UNKNOWN\r\n"))
	f.Add(proxyV2(0x21, netip.MustParseAddr("2001:db8::7").AsSlice(), 4243, 1))
	f.Add(proxyV2(0x11, []byte{1, 2, 3, 4}, 1, 0))
	f.Add([]byte("\r\n\r\n\x00\r\nQUIT\n\x21\x11\xff\xff"))
	f.Fuzz(func(t *testing.T, b []byte) {
		addr, err := parseProxyHeader(bufio.NewReaderSize(bytes.NewReader(b), 16))
		if err != nil || addr == nil {
			return
		}
		ap, perr := netip.ParseAddrPort(addr.String())
		if perr != nil || !ap.Addr().IsValid() {
			t.Fatalf("%q: accepted address %v", b, addr)
		}
	})
}
