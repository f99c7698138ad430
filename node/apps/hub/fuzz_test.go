package hub

import (
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
