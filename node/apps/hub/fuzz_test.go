package hub

import (
	"bytes"
	"context"
	"encoding/json"
	"testing"
)

// FuzzDecodeEnvelope: any client message decodes without panicking; what
// decodes has an id the reply can echo as valid JSON, and a reply built
// from it is valid JSON.
func FuzzDecodeEnvelope(f *testing.F) {
	for _, s := range []string{
		`{"data_type":"auth","data":{"token":"x","salt":"y"}}`,
		`{"data_type":"subscribe","id":1,"data":{"channel":"room","since":17}}`,
		`{"data_type":"event","id":"abc","data":{"name":"t","data":[1,{"a":null}]}}`,
		`{"data_type":"ping","id":null}`, `{"id":1e400}`, `{"data_type":1}`, `[]`, `"x"`, `{} {}`, ``,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, msg string) {
		env, err := decodeEnvelope(msg)
		if err != nil {
			return
		}
		if len(env.ID) > maxIDLen+2 {
			t.Fatalf("id of %d bytes accepted", len(env.ID))
		}
		r := reply("error", env.ID, message{"Invalid data type " + env.Type})
		if !json.Valid([]byte(r)) {
			t.Fatalf("reply %q to %q is not JSON", r, msg)
		}
	})
}

// FuzzDelivery: whatever a backend publishes arrives as one JSON object
// with the channel and offset.
func FuzzDelivery(f *testing.F) {
	for _, s := range []string{`{"a":1}`, `{}`, ` { "x" : [1] } `, `"s"`, `12`, `not json`, "\xff", `{"channel":"x"}`, `[`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, payload []byte) {
		out := renderDelivery("room-1", 42, normalizePayload(payload))
		var v map[string]any
		if err := json.Unmarshal([]byte(out), &v); err != nil {
			t.Fatalf("delivery %q of %q is not a JSON object: %v", out, payload, err)
		}
		if v["channel"] != "room-1" || v["offset"] != 42.0 {
			t.Fatalf("delivery %q lacks channel/offset", out)
		}
	})
}

// FuzzMessage drives whole client messages through a hub session (auth,
// subscribe, publish, history, ...): no panic, and every reply is a JSON
// object with a data_type or a channel delivery (the fuzzer publishes).
func FuzzMessage(f *testing.F) {
	for _, s := range []string{
		`{"data_type":"auth","data":{"token":"user:ann:room","since":{"room":3}}}`,
		`{"data_type":"subscribe","id":1,"data":{"channel":"room","since":17}}`,
		`{"data_type":"publish","id":2,"data":{"channel":"room","data":{"a":[1,2]}}}`,
		`{"data_type":"history","id":3,"data":{"channel":"room","since":0,"limit":5}}`,
		`{"data_type":"presence","id":"p","data":{"channel":"room"}}`,
		`{"data_type":"unsubscribe","data":{"channel":"_hub/u/x"}}`,
		`{"data_type":"event","id":4,"data":{"name":"n","data":null}}`,
		`{"data_type":"subscribe","data":{"channel":7}}`, `{"data_type":"publish","data":{"channel":"room"}}`,
	} {
		f.Add(s)
	}
	hubs := startHubs(f, memoryBackends(f), 1, Config{Verifier: testVerifier{}, File: File{
		Channels: []Rule{{Pattern: "*", Subscribe: SubscribeAnyone, Publish: PublishSubscribers}},
		Limits:   Limits{MessageRate: -1, MaxViolations: -1},
	}})
	c := dial(f, hubs[0].base)
	c.auth("user:fuzz:room")
	ids, err := hubs[0].UserSessions(context.Background(), "fuzz")
	if err != nil || len(ids) != 1 {
		f.Fatalf("UserSessions = %v, %v", ids, err)
	}
	id := ids[0]
	s := hubs[0].ep.Session(id)
	f.Fuzz(func(t *testing.T, msg string) {
		hubs[0].OnMessage(s, msg)
		for {
			select {
			case raw := <-c.raw:
				<-c.msgs
				var v map[string]any
				if err := json.Unmarshal([]byte(raw), &v); err != nil {
					t.Fatalf("reply %q to %q: %v", raw, msg, err)
				}
				_, typed := v["data_type"].(string)
				_, delivery := v["offset"].(float64)
				if !typed && !delivery {
					t.Fatalf("reply %q to %q is neither typed nor a channel delivery", raw, msg)
				}
			default:
				return
			}
		}
	})
}

// FuzzStampFrom: whatever a client publishes, the stamped payload is one
// JSON object whose only "from" is the hub's.
func FuzzStampFrom(f *testing.F) {
	for _, s := range []string{`{"a":1}`, `{"from":{"user":"bob"},"from":1}`, `"x"`, `[1,{"from":2}]`, `{}`, ` {"a" : [ ] } `, `null`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, payload string) {
		if !json.Valid([]byte(payload)) {
			return
		}
		out, err := stampFrom(json.RawMessage(payload), "ann", "s1")
		if err != nil {
			t.Fatalf("stampFrom(%q): %v", payload, err)
		}
		dec := json.NewDecoder(bytes.NewReader(out))
		if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
			t.Fatalf("stampFrom(%q) = %s: not an object", payload, out)
		}
		var froms []string
		for dec.More() {
			key, err := dec.Token()
			var v json.RawMessage
			if err != nil || dec.Decode(&v) != nil {
				t.Fatalf("stampFrom(%q) = %s: invalid", payload, out)
			}
			if key == "from" {
				froms = append(froms, string(v))
			}
		}
		if len(froms) != 1 || froms[0] != `{"user":"ann","session":"s1"}` {
			t.Fatalf("stampFrom(%q) = %s: from %q", payload, out, froms)
		}
	})
}
