// Package loadtest is Shoal's load generator: a SockJS client for the
// websocket, xhr-polling, xhr-streaming and eventsource transports, the
// scenarios that drive it (echo, broadcast, churn, idle), HdrHistogram
// percentiles, JSON and self-contained HTML reports, and a comparison mode
// that runs the same scenarios against Shoal, sockjs-node and sockjs-go.
//
// The command is loadtest/cmd/shoal-load; the peers it compares with live
// under loadtest/peers, the Go one in its own module.
package loadtest
