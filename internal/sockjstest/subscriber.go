package sockjstest

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/shoal-rt/shoal/internal/testenv"
)

// Frame is what a test client saw in one SockJS frame: messages, or a
// close.
type Frame struct {
	Msgs  []string
	Close string // c[...] frame, when closed
}

// ParseFrame reads one SockJS frame.
func ParseFrame(t testing.TB, f string) Frame {
	t.Helper()
	f = strings.TrimSuffix(f, "\n")
	switch {
	case f == "o" || f == "h" || f == "":
		return Frame{}
	case f[0] == 'a':
		var msgs []string
		if err := json.Unmarshal([]byte(f[1:]), &msgs); err != nil {
			t.Errorf("bad frame %q: %v", f, err)
		}
		return Frame{Msgs: msgs}
	case f[0] == 'c':
		return Frame{Close: f}
	}
	t.Errorf("unknown frame %q", f)
	return Frame{}
}

// Subscriber is a test client of one transport that collects the
// messages of its session.
type Subscriber struct {
	name   string
	mu     sync.Mutex
	msgs   []string
	closed string
	ended  error // why its requests stopped before ctx ended (RunPolling, RunStreaming)
	opened chan struct{}
}

// NewSubscriber returns a subscriber of session name.
func NewSubscriber(name string) *Subscriber {
	return &Subscriber{name: name, opened: make(chan struct{})}
}

// Name is the session's id.
func (s *Subscriber) Name() string { return s.name }

// Opened is closed once the session's first frame arrived.
func (s *Subscriber) Opened() <-chan struct{} { return s.opened }

func (s *Subscriber) add(f Frame) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.msgs = append(s.msgs, f.Msgs...)
	if f.Close != "" && s.closed == "" {
		s.closed = f.Close
	}
}

func (s *Subscriber) end(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.ended = err
}

// Ended returns why the subscriber's requests stopped before its context
// ended (a failed request or body), if they did.
func (s *Subscriber) Ended() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.ended
}

// Got returns the messages so far and the close frame, if any.
func (s *Subscriber) Got() ([]string, string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.msgs), s.closed
}

// RunWS reads a SockJS websocket session until ctx ends.
func (s *Subscriber) RunWS(ctx context.Context, t testing.TB, base string) {
	conn := DialWS(t, base+"/0/"+s.name+"/websocket")
	go func() {
		defer conn.CloseNow()
		first := true
		for {
			_, b, err := conn.Read(ctx)
			if err != nil {
				return
			}
			if first {
				close(s.opened)
				first = false
			}
			s.add(ParseFrame(t, string(b)))
		}
	}()
}

// RunPolling polls the session with xhr, each poll on the next of bases,
// until ctx ends or the session closes.
func (s *Subscriber) RunPolling(ctx context.Context, t testing.TB, bases []string) {
	s.requestEach(ctx, testenv.HTTPClient(t), bases, "xhr", func(i int, body io.Reader) bool {
		b, err := io.ReadAll(body)
		if err != nil {
			if ctx.Err() == nil {
				s.end(fmt.Errorf("poll %d: reading the body: %w", i, err))
			}
			return true
		}
		if i == 0 {
			close(s.opened)
		} else if string(b) == "o\n" {
			s.end(errReopened(i))
			return true
		}
		f := ParseFrame(t, string(b))
		s.add(f)
		return f.Close != ""
	})
}

// RunStreaming reads xhr_streaming responses, each on the next of bases
// (a small ResponseLimit makes them end often), until ctx ends.
func (s *Subscriber) RunStreaming(ctx context.Context, t testing.TB, bases []string) {
	s.requestEach(ctx, testenv.HTTPClient(t), bases, "xhr_streaming", func(i int, body io.Reader) bool {
		br := bufio.NewReader(body)
		br.ReadString('\n') // prelude
		closed := false
		for {
			line, err := br.ReadString('\n')
			if err != nil {
				return closed
			}
			if line == "o\n" {
				if i > 0 {
					s.end(errReopened(i))
					return true
				}
				close(s.opened)
			}
			f := ParseFrame(t, line)
			s.add(f)
			closed = closed || f.Close != ""
		}
	})
}

// errReopened: request i (not the first) opened the session anew, so the
// server had lost it (expired or closed) without telling this client.
func errReopened(i int) error {
	return fmt.Errorf("request %d: the session opened again (the server had lost it)", i)
}

// requestEach posts to the session's transport, request i on the next of
// bases, and hands each response's body to read, until ctx ends, a request
// fails or read returns true (the session closed).
func (s *Subscriber) requestEach(ctx context.Context, client *http.Client, bases []string, transport string, read func(i int, body io.Reader) (stop bool)) {
	go func() {
		for i := 0; ctx.Err() == nil; i++ {
			req, _ := http.NewRequestWithContext(ctx, "POST", bases[i%len(bases)]+"/0/"+s.name+"/"+transport, nil)
			resp, err := client.Do(req)
			if err != nil {
				if ctx.Err() == nil {
					s.end(fmt.Errorf("request %d: %w", i, err))
				}
				return
			}
			stop := read(i, resp.Body)
			resp.Body.Close()
			if stop {
				return
			}
		}
	}()
}

// CheckAll waits until every subscriber has want messages and checks that
// each arrived exactly once and each publisher's ("p:i") in order.
func CheckAll(t *testing.T, subs []*Subscriber, publishers, each int) {
	t.Helper()
	for _, s := range subs {
		// Generous: TestChannelsSlowSubscriber polls 200 messages of 64 KiB
		// through an overflowing queue, which took over 20 s under -race on
		// a busy 2-core machine (153 of 200 had arrived).
		testenv.CheckFor(t, 90*time.Second, 20*time.Millisecond, func() error {
			msgs, closed := s.Got()
			if closed != "" {
				t.Fatalf("%s: closed with %s after %d messages", s.name, closed, len(msgs))
			}
			if err := s.Ended(); err != nil {
				t.Fatalf("%s: stopped after %d messages: %v", s.name, len(msgs), err)
			}
			if len(msgs) < publishers*each {
				return fmt.Errorf("%s: %d of %d messages", s.name, len(msgs), publishers*each)
			}
			return nil
		})
		time.Sleep(20 * time.Millisecond) // a duplicate would show up now
		msgs, _ := s.Got()
		if len(msgs) != publishers*each {
			t.Fatalf("%s: %d messages, want %d", s.name, len(msgs), publishers*each)
		}
		next := make([]int, publishers)
		for _, m := range msgs {
			var p, i int
			if _, err := fmt.Sscanf(m, "%d:%d", &p, &i); err != nil || p >= publishers {
				t.Fatalf("%s: unexpected message %q", s.name, m)
			}
			if i != next[p] {
				t.Fatalf("%s: publisher %d: got %d, want %d (out of order or duplicated)", s.name, p, i, next[p])
			}
			next[p]++
		}
	}
}

// Channels is what ExactlyOnceInOrder needs of an endpoint (a
// *sockjs.Endpoint, named by its methods so that package sockjs's own
// tests can use it too).
type Channels[S, O any] interface {
	Members(ctx context.Context, channel string) ([]S, error)
	Publish(ctx context.Context, channel, msg string, opts ...O) error
}

// ExactlyOnceInOrder runs a websocket, a polling and a streaming
// subscriber per node (polls and streams move between the nodes) and a
// publisher per node on channel "room" of endpoints eps (whose sessions
// join it on open, with a small ResponseLimit), each publishing each
// messages; every subscriber must get every message once, each
// publisher's in order.
func ExactlyOnceInOrder[S, O any, E Channels[S, O]](t *testing.T, eps []E, bases []string, each int) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var subs []*Subscriber
	for i := range bases {
		rotated := append(append([]string(nil), bases[i:]...), bases[:i]...)
		ws := NewSubscriber(fmt.Sprint("ws", i))
		ws.RunWS(ctx, t, bases[i])
		poll := NewSubscriber(fmt.Sprint("poll", i))
		poll.RunPolling(ctx, t, rotated)
		str := NewSubscriber(fmt.Sprint("stream", i))
		str.RunStreaming(ctx, t, rotated)
		subs = append(subs, ws, poll, str)
	}
	for _, s := range subs {
		<-s.opened
	}
	testenv.CheckFor(t, 10*time.Second, 10*time.Millisecond, func() error {
		m, err := eps[0].Members(ctx, "room")
		if err != nil || len(m) != len(subs) {
			return fmt.Errorf("%d members (%v), want %d", len(m), err, len(subs))
		}
		return nil
	})
	var wg sync.WaitGroup
	for p := range eps {
		wg.Go(func() {
			for i := range each {
				if err := eps[p].Publish(ctx, "room", fmt.Sprintf("%d:%d", p, i)); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	CheckAll(t, subs, len(eps), each)
}
