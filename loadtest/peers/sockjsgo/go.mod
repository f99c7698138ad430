module github.com/shoal-rt/shoal/loadtest/peers/sockjsgo

go 1.26.8

require github.com/igm/sockjs-go/v3 v3.0.3

require github.com/gorilla/websocket v1.4.2 // indirect
