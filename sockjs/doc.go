// Package sockjs is a SockJS 0.3.3 server whose sessions live in a shared
// store (package store) and whose wake-ups cross nodes over a bus (package
// bus), so any request of any session may land on any node.
//
// A Node owns the store, the bus and this process's live receivers (open
// websockets, streaming responses, parked polls); endpoints made with
// Node.NewEndpoint serve one SockJS service each under a URL prefix.
//
// Handlers run on whichever node received the event (a poll may open the
// session on one node and the next xhr_send reach another), so a Handler
// must keep no per-session state in memory: use Session.SetAttr and
// Session.Attr, which are kept in the store.
package sockjs
