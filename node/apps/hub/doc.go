// Package hub is Shoal's built-in realtime server for backends that are not
// written in Go (`--apps hub`): browsers authenticate with a token the web
// application signed, join channels, and receive what the backend publishes
// through Redis, NATS or the HTTP API. The wire protocol is in
// docs/hub-protocol.md.
package hub
