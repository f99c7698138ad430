package hub

import (
	"sync"
	"time"
)

// rateLimiter is a token bucket per session, and the count of its
// violations. It lives on the node that receives the session's messages:
// a websocket's all arrive at one node; an HTTP session's sends may be
// spread over the nodes by a round-robin balancer, and each node then
// allows the rate (see docs/hub-config.md). Buckets idle for a minute are
// dropped.
type rateLimiter struct {
	rate  float64
	burst float64

	mu      sync.Mutex // guards buckets and swept
	buckets map[string]*bucket
	swept   time.Time
}

type bucket struct {
	tokens     float64
	last       time.Time
	violations int
}

const bucketIdle = time.Minute

func (l *rateLimiter) init(lim Limits) {
	l.rate, l.burst = lim.MessageRate, float64(lim.MessageBurst)
	l.buckets = make(map[string]*bucket)
	l.swept = time.Now()
}

// allow takes a token for session id; false when the rate is exceeded.
func (l *rateLimiter) allow(id string, now time.Time) bool {
	if l.rate < 0 {
		return true
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if now.Sub(l.swept) > bucketIdle {
		for k, b := range l.buckets {
			if now.Sub(b.last) > bucketIdle {
				delete(l.buckets, k)
			}
		}
		l.swept = now
	}
	b := l.buckets[id]
	if b == nil {
		b = &bucket{tokens: max(l.burst, 1), last: now}
		l.buckets[id] = b
	}
	b.tokens = min(max(l.burst, 1), b.tokens+now.Sub(b.last).Seconds()*l.rate)
	b.last = now
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

// violation counts one refused message of session id and returns the
// session's count.
func (l *rateLimiter) violation(id string, now time.Time) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.buckets[id]
	if b == nil {
		b = &bucket{tokens: max(l.burst, 1), last: now}
		l.buckets[id] = b
	}
	b.violations++
	return b.violations
}

func (l *rateLimiter) forget(id string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.buckets, id)
}
