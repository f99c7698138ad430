package sockjs

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/coder/websocket"

	"github.com/shoal-rt/shoal/store"
)

// Single-node echo round trips over loopback: what one message costs end
// to end (client, HTTP, store, handler, framing).

// chatMessage is what the benchmarks send: a 40-byte chat message, as the
// client frames it.
var chatMessage = []byte(`["hello, this is a 40 byte chat message"]`)

// echoBench starts a node whose handler echoes and returns its endpoint's
// URL; b reports allocations and chatMessage's bytes per op. Its store is
// bound to the node, as the node program's without --redis.
func echoBench(b *testing.B) string {
	b.Helper()
	c := newCluster(b)
	c.store = store.NewMemoryWithConfig(store.MemoryConfig{NodeBound: true})
	_, _, base := c.node(b, HandlerFuncs{Message: func(s *Session, m string) { s.Send(m) }}, Settings{})
	b.ReportAllocs()
	b.SetBytes(int64(len(chatMessage)))
	return base
}

func BenchmarkWebsocketEcho(b *testing.B) {
	conn := dialWS(b, echoBench(b)+"/0/s/websocket")
	readWS(b, conn)
	ctx := context.Background()
	msg := chatMessage
	for b.Loop() {
		if err := conn.Write(ctx, websocket.MessageText, msg); err != nil {
			b.Fatal(err)
		}
		if _, _, err := conn.Read(ctx); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkWebsocketEchoPipelined writes without waiting for answers, so
// replies batch into frames: throughput rather than latency.
func BenchmarkWebsocketEchoPipelined(b *testing.B) {
	conn := dialWS(b, echoBench(b)+"/0/s/websocket")
	readWS(b, conn)
	ctx := context.Background()
	msg := chatMessage
	b.ResetTimer()
	done := make(chan int)
	frames := 0
	go func() {
		got := 0
		for got < b.N {
			_, data, err := conn.Read(ctx)
			if err != nil {
				break
			}
			if data[0] == 'c' {
				b.Errorf("closed after %d: %s", got, data)
			}
			got += strings.Count(string(data), `"hello`)
			frames++
		}
		done <- got
	}()
	for i := 0; i < b.N; i++ {
		if err := conn.Write(ctx, websocket.MessageText, msg); err != nil {
			b.Fatal(err)
		}
	}
	if got := <-done; got < b.N {
		b.Fatalf("received %d of %d", got, b.N)
	}
	// Replies to messages read together go out as one frame.
	b.ReportMetric(float64(frames)/float64(b.N), "frames/msg")
}

func BenchmarkXHRPollingEcho(b *testing.B) {
	u := echoBench(b) + "/0/s"
	do(b, "POST", u+"/xhr", "")
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 4}}
	post := func(url, body string) string {
		resp, err := client.Post(url, "text/plain", strings.NewReader(body))
		if err != nil {
			b.Fatal(err)
		}
		defer resp.Body.Close()
		var sb strings.Builder
		buf := make([]byte, 512)
		for {
			n, err := resp.Body.Read(buf)
			sb.Write(buf[:n])
			if err != nil {
				break
			}
		}
		return sb.String()
	}
	msg := string(chatMessage)
	for b.Loop() {
		post(u+"/xhr_send", msg)
		if got := post(u+"/xhr", ""); !strings.HasPrefix(got, "a[") {
			b.Fatalf("poll got %q", got)
		}
	}
}

// BenchmarkXHRPollingEchoParked is the polling echo a browser makes: a poll
// is already waiting when the send arrives, so the echo is handed to it
// (store.HandOffCommitter) and the next poll goes out as soon as one is
// answered.
func BenchmarkXHRPollingEchoParked(b *testing.B) {
	u := echoBench(b) + "/0/s"
	do(b, "POST", u+"/xhr", "")
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 4}}
	post := func(url, body string) []byte {
		resp, err := client.Post(url, "text/plain", strings.NewReader(body))
		if err != nil {
			b.Error(err)
			return nil
		}
		defer resp.Body.Close()
		got, err := io.ReadAll(resp.Body)
		if err != nil {
			b.Error(err)
		}
		return got
	}
	polls := make(chan []byte)
	poll := func() { polls <- post(u+"/xhr", "") }
	go poll()
	msg := string(chatMessage)
	for b.Loop() {
		post(u+"/xhr_send", msg)
		if got := <-polls; !bytes.HasPrefix(got, []byte("a[")) {
			b.Fatalf("poll got %q", got)
		}
		go poll()
	}
	b.StopTimer()
	post(u+"/xhr_send", msg)
	<-polls
}

// BenchmarkWebsocketEchoParallel runs one websocket per benchmark
// goroutine (GOMAXPROCS×4 of them): aggregate round trips of one node.
func BenchmarkWebsocketEchoParallel(b *testing.B) {
	base := echoBench(b)
	msg := chatMessage
	b.SetParallelism(4)
	b.RunParallel(func(pb *testing.PB) {
		conn := dialWS(b, base+"/0/s/websocket")
		readWS(b, conn)
		ctx := context.Background()
		for pb.Next() {
			if err := conn.Write(ctx, websocket.MessageText, msg); err != nil {
				b.Error(err)
				return
			}
			if _, _, err := conn.Read(ctx); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// BenchmarkWebsocketSession is connection churn: a websocket opened by
// hand (a client that costs little), one message echoed, the closing
// handshake, the connection's end.
func BenchmarkWebsocketSession(b *testing.B) {
	base := echoBench(b)
	u, err := url.Parse(base)
	if err != nil {
		b.Fatal(err)
	}
	handshake := []byte("GET " + u.Path + "/000/s/websocket HTTP/1.1\r\nHost: " + u.Host + "\r\nConnection: Upgrade\r\n" +
		"Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n")
	send := clientFrame(true, wsOpText, chatMessage, false)
	bye := clientFrame(true, wsOpClose, []byte{0x03, 0xe8}, false)
	buf := make([]byte, 4096)
	// readUntil reads until what came so far ends with suffix.
	readUntil := func(conn net.Conn, suffix string) {
		got := 0
		for got < len(suffix) || !bytes.HasSuffix(buf[:got], []byte(suffix)) {
			n, err := conn.Read(buf[got:])
			if err != nil {
				b.Fatalf("waiting for %q after %q: %v", suffix, buf[:got], err)
			}
			got += n
		}
	}
	for b.Loop() {
		conn, err := net.Dial("tcp", u.Host)
		if err != nil {
			b.Fatal(err)
		}
		conn.Write(handshake)
		readUntil(conn, "\r\n\r\n\x81\x01o")
		conn.Write(send)
		readUntil(conn, `a["hello, this is a 40 byte chat message"]`)
		conn.Write(bye)
		readUntil(conn, "\x88\x02\x03\xe8")
		if _, err := conn.Read(buf); err != io.EOF {
			b.Fatalf("after the close handshake: %v", err)
		}
		conn.Close()
	}
}
