// Package chaos is Shoal's fault-injection suite: real sockjs-client
// sessions (Node.js) through the shipped haproxy/haproxy.cfg over three
// real node processes, a redis-server with persistence and a nats-server,
// while a node is killed, restarted, or its address vanishes, NATS or
// Redis restarts, slow consumers stall, and malformed requests pour in.
// Each scenario reports sessions opened and closed and messages sent,
// received, lost and duplicated per transport, and checks them against
// what docs/RELIABILITY.md promises.
//
// `go test ./chaos` (part of scripts/test) runs a fast subset with few
// sessions; scripts/chaos runs every scenario with 120 sessions. The suite
// lives in the package's tests; this file only documents it.
package chaos
