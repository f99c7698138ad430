package sockjs_test

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"log"
	"net/http"
	"strings"

	"github.com/shoal-rt/shoal/bus"
	"github.com/shoal-rt/shoal/sockjs"
	"github.com/shoal-rt/shoal/store"
)

// A chat server: a web app signs "user" with a shared secret and the
// browser opens new SockJS("/chat?token=alice.<hex hmac>"). Messages
// "join room-7" and "say room-7 hello" do what they say. Nothing is kept in
// memory per session: the user name is a session attribute, so the handler
// works on every node of a cluster (swap the memory store and bus for
// store/redis and bus/nats).
func Example() {
	secret := []byte("shared with the web app")
	node, err := sockjs.NewNode(sockjs.NodeConfig{Store: store.NewMemory(), Bus: bus.NewMemory()})
	if err != nil {
		log.Fatal(err)
	}
	var chat *sockjs.Endpoint
	chat, err = node.NewEndpoint(sockjs.HandlerFuncs{
		Open: func(s *sockjs.Session) error {
			user, sig, _ := strings.Cut(s.Info().Query.Get("token"), ".")
			mac := hmac.New(sha256.New, secret)
			mac.Write([]byte(user))
			if want := hex.EncodeToString(mac.Sum(nil)); user == "" || !hmac.Equal([]byte(sig), []byte(want)) {
				return &sockjs.CloseError{Code: 4001, Reason: "Bad token"}
			}
			return s.SetAttr(context.Background(), "user", user)
		},
		Message: func(s *sockjs.Session, msg string) {
			ctx := context.Background()
			verb, rest, _ := strings.Cut(msg, " ")
			switch verb {
			case "join":
				if err := s.Subscribe(ctx, rest); err != nil {
					s.Send("error: " + err.Error())
				}
			case "say":
				room, text, _ := strings.Cut(rest, " ")
				user, _, _ := s.Attr(ctx, "user")
				chat.Publish(ctx, room, user+": "+text)
			}
		},
	}, sockjs.Settings{Prefix: "/chat"})
	if err != nil {
		log.Fatal(err)
	}
	// Rooms are channels named room-<number>; anyone signed in may join.
	err = chat.HandleChannels(sockjs.ChannelConfig{
		Pattern: `room-\d+`,
		Handler: sockjs.ChannelHandlerFuncs{Subscribe: func(s *sockjs.Session, room string) error {
			if _, ok, _ := s.Attr(context.Background(), "user"); !ok {
				return errors.New("not signed in")
			}
			return nil
		}},
	})
	if err != nil {
		log.Fatal(err)
	}
	// node.Handler routes every endpoint's prefix; the rest goes to mux.
	mux := http.NewServeMux()
	_ = &http.Server{Addr: "127.0.0.1:8080", Handler: node.Handler(mux)}
	// srv.ListenAndServe() would serve it.
}
