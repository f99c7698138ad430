package loadtest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
)

// runHub: the path a Django or Rails site takes. Sessions open on the hub
// (open mode: no token), each subscribes to one of Rooms channels, evenly;
// a backend publishes stamped strings through the hub's HTTP API
// (POST /api/publish), to each room in turn. A publish is back when the
// first member of its room has it: that frees its in-flight slot, and
// paces the closed loop (rate 0). Rate is publishes per second over all
// rooms.
func (r *runner) runHub(ctx context.Context) error {
	rooms := r.rooms()
	subscribed := make(chan struct{}, r.cfg.Sessions)
	slots := make(inflight, r.cfg.Inflight)
	var pending sync.Map // stamps published and not yet back: see apiPublisher
	subs, err := r.openSessions(ctx, r.cfg.HubPrefix, r.cfg.Transport, r.cfg.Sessions, func(int) SessionHandler {
		return SessionHandler{OnMessage: func(msg string) {
			var m hubMessage
			if err := json.Unmarshal([]byte(msg), &m); err != nil {
				r.rec.Error(fmt.Errorf("hub: undecodable message %.80q: %w", msg, err))
				return
			}
			switch m.Type {
			case "data":
				var stamp string
				if err := json.Unmarshal(m.Data, &stamp); err != nil {
					r.rec.Error(fmt.Errorf("hub: a published string arrived as %.80s", m.Data))
					return
				}
				r.rec.Received(stamp)
				if _, first := pending.LoadAndDelete(stamp); first {
					slots.release()
				}
			case "subscribe":
				subscribed <- struct{}{}
			default:
				r.rec.Error(fmt.Errorf("hub: %s: %.120s", m.Type, m.Data))
			}
		}}
	})
	if err != nil {
		return err
	}
	defer r.closeAll(subs)

	// Join the rooms, and wait until every subscribe is answered: a
	// publish before that would reach only part of its room.
	for i, s := range subs {
		if err := s.Send(ctx, subscribeMessage(i%rooms)); err != nil {
			return fmt.Errorf("loadtest: hub subscribe: %w", err)
		}
	}
	wait, cancel := context.WithTimeout(ctx, r.cfg.RampTimeout)
	defer cancel()
	for n := range len(subs) {
		select {
		case <-subscribed:
		case <-wait.Done():
			return fmt.Errorf("loadtest: hub: %d of %d subscribes answered", n, len(subs))
		}
	}
	r.receivers = int64(len(subs) / rooms)

	backend := &apiPublisher{client: r.client, key: r.cfg.APIKey, rooms: rooms, pending: &pending}
	return r.publishAndMeasure(ctx, backend, slots)
}

// rooms is how many channels the hub scenario spreads its sessions over
// (0 for the other scenarios).
func (r *runner) rooms() int {
	if r.kind != KindHub {
		return 0
	}
	return r.cfg.Rooms
}

// hubMessage is the hub's envelope (docs/hub-protocol.md).
type hubMessage struct {
	Type string          `json:"data_type"`
	Data json.RawMessage `json:"data"`
}

func roomName(i int) string { return fmt.Sprintf("load-%d", i) }

func subscribeMessage(room int) string {
	return fmt.Sprintf(`{"data_type":"subscribe","data":{"channel":%q}}`, roomName(room))
}

// apiPublisher is the backend: each Send publishes its message through the
// hub's HTTP API, to the rooms in turn, and notes it pending until a member
// of the room has it. It is a Session only so that the scenarios' send loop
// can drive it.
type apiPublisher struct {
	client  *Client
	key     string
	rooms   int
	next    atomic.Int64
	pending *sync.Map
}

func (p *apiPublisher) Send(ctx context.Context, msgs ...string) error {
	for _, m := range msgs {
		room := int(p.next.Add(1)-1) % p.rooms
		body, err := json.Marshal(map[string]string{"channel": roomName(room), "data": m})
		if err != nil {
			return err
		}
		p.pending.Store(m, struct{}{})
		if err := p.client.publish(ctx, p.key, body); err != nil {
			p.pending.Delete(m)
			return err
		}
	}
	return nil
}

func (p *apiPublisher) Close() {}

// Done never closes: the publisher has no session to lose.
func (p *apiPublisher) Done() <-chan struct{} { return nil }

// publish posts body to the hub's /api/publish with key.
func (c *Client) publish(ctx context.Context, key string, body []byte) error {
	code, reply, err := c.post(ctx, "/api/publish", body, http.Header{
		"Authorization": {"apikey " + key}, "Content-Type": {"application/json"},
	})
	if err != nil {
		return fmt.Errorf("loadtest: hub publish: %w", err)
	}
	if code != http.StatusOK {
		return fmt.Errorf("loadtest: hub publish: %d: %.200s", code, bytes.TrimSpace(reply))
	}
	return nil
}
