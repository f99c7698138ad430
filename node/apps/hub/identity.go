package hub

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"

	"github.com/shoal-rt/shoal/sockjs"
)

// identityAttr is the session attribute that holds a session's identity:
// set once, by the auth that succeeds, so any node serves the session's
// next message.
const identityAttr = "hub.identity"

// identity is who a session is.
type identity struct {
	Authenticated bool     `json:"a"`
	User          string   `json:"u,omitempty"`
	Channels      []string `json:"c,omitempty"`
}

// granted reports whether the token granted channel.
func (id identity) granted(channel string) bool {
	for _, c := range id.Channels {
		if c == channel {
			return true
		}
	}
	return false
}

// identityCache keeps the identities this node has read or set, by session
// id. An identity never changes once set (a second auth is refused), so a
// cached one is never stale; it only saves store reads. Sessions that have
// not authenticated are not cached: their auth may happen on another node.
type identityCache struct {
	mu sync.Mutex // guards m
	m  map[string]identity
}

// maxCachedIdentities bounds the cache; past it the cache starts over.
const maxCachedIdentities = 100000

func (c *identityCache) init() { c.m = make(map[string]identity) }

func (c *identityCache) get(id string) (identity, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	v, ok := c.m[id]
	return v, ok
}

func (c *identityCache) put(id string, v identity) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.m) >= maxCachedIdentities {
		clear(c.m)
	}
	c.m[id] = v
}

// identity returns the session's identity: from the cache, else from the
// store. A session that never authenticated has the zero identity.
func (h *Hub) identity(ctx context.Context, s *sockjs.Session) (identity, error) {
	if v, ok := h.idents.get(s.ID()); ok {
		return v, nil
	}
	raw, ok, err := s.Attr(ctx, identityAttr)
	if err != nil || !ok {
		return identity{}, err
	}
	var v identity
	if err := json.Unmarshal([]byte(raw), &v); err != nil {
		return identity{}, fmt.Errorf("hub: identity of %s: %w", s.ID(), err)
	}
	if v.Authenticated {
		h.idents.put(s.ID(), v)
	}
	return v, nil
}

// setIdentity stores the identity of a session that authenticated.
func (h *Hub) setIdentity(ctx context.Context, s *sockjs.Session, v identity) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	if err := s.SetAttr(ctx, identityAttr, string(b)); err != nil {
		return err
	}
	h.idents.put(s.ID(), v)
	return nil
}
