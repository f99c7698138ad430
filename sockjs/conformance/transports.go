package conformance

import (
	"strconv"
	"strings"
	"testing"
	"time"
)

// Message sets sent through every transport, in the spirit of
// sockjs-client's end-to-end tests.
var (
	jsonLooking = []string{`[1,2,3,"data"]`, "null", "false", "data", "1", "12", `{"a":1,"b":2}`, "[object Object]"}

	unicodeSamples = []string{
		"Zwölf Boxkämpfer jagen Viktor quer über den großen Sylter Deich",
		"Ξεσκεπάζω την ψυχοφθόρα βδελυγμία",
		"いろはにほへと ちりぬるを わかよたれそ つねならむ",
		"다람쥐 헌 쳇바퀴에 타고파",
		"صِف خَلقَ خَودِ كَمِثلِ الشَمسِ إِذ بَزَغَت",
		"ऋषियों को सताने वाले दुष्ट राक्षसों के राजा रावण का सर्वनाश करने वाले",
		"😀 🚀 𝄞 𠜎 — astral plane characters",
		"\ufffd\u1010" + "2\u2f87" + "7",
		strings.Repeat("Съешь же ещё этих мягких французских булок, да выпей чаю.\n", 100),
	}

	specialChars = []string{
		" ", "\x00", "\u00ff", "\u00ff\x00", "\x00\u00ff", " \r ", " \n ", " \r\n ", "\r\n", "",
		"message\t", "\tmessage", "message ", " message", "message\r", "\rmessage",
		"message\n", "\nmessage", "message\u00ff", "\u00ffmessage", "A", "b",
		"\ufffd", "\ufffd\x00", "message\ufffd", "\ufffdmessage", "%20", `"quoted"`, `back\slash`,
	}
)

// xs returns n 'x' characters.
func xs(n int) string { return strings.Repeat("x", n) }

// largeMessages grow to 8 KiB, twice the test server's response_limit, so
// streaming transports must reconnect mid-conversation.
var largeMessages = []string{xs(1), xs(3), xs(15), xs(255), xs(8191), xs(8191)}

func latin1Block() string {
	rs := make([]rune, 0, 257)
	for c := rune(0); c <= 256; c++ {
		rs = append(rs, c)
	}
	return string(rs)
}

// testTransports runs the same conversations over every transport.
func (s *suite) testTransports(t *testing.T) {
	for _, tr := range transports {
		t.Run(tr.name, func(t *testing.T) {
			t.Parallel()
			s.runTransport(t, tr)
		})
	}
}

func (s *suite) runTransport(t *testing.T, tr transport) {
	echo := func(name, query string, msgs []string) {
		t.Run(name, func(t *testing.T) {
			c := s.connect(t, tr, "/echo", query)
			c.wantOpen()
			for i, m := range msgs {
				c.send(m)
				if got := c.recv(); got != m {
					t.Fatalf("message %d: echo %s, want %s", i, clip(got), clip(m))
				}
			}
		})
	}
	echo("echo basic", "", []string{"data"})
	echo("echo with a query string", "testqs=1", []string{"data"})
	echo("echo json-looking strings", "", jsonLooking)
	echo("echo unicode", "", unicodeSamples)
	echo("echo special characters", "", specialChars)
	echo("echo large messages one at a time", "", largeMessages)
	echo("echo u+0000 to u+0100", "", []string{latin1Block()})
	echo("echo every client-escaped character", "", []string{string(runesIn(clientEscaped))})

	t.Run("batch of messages arrives in order", func(t *testing.T) {
		c := s.connect(t, tr, "/echo", "")
		c.wantOpen()
		for _, m := range largeMessages {
			c.send(m)
		}
		c.send("one frame", "two messages")
		for i, want := range append(largeMessages, "one frame", "two messages") {
			if got := c.recv(); got != want {
				t.Fatalf("message %d: %s, want %s", i, clip(got), clip(want))
			}
		}
	})
	t.Run("amplify large downloads", func(t *testing.T) {
		c := s.connect(t, tr, "/amplify", "")
		c.wantOpen()
		exps := []int{1, 2, 4, 8, 13, 15, 15}
		for _, n := range exps {
			c.send(strconv.Itoa(n))
		}
		for _, n := range exps {
			if got := c.recv(); got != xs(1<<n) {
				t.Fatalf("amplify %d: got %d bytes %s, want %d x", n, len(got), clip(got), 1<<n)
			}
		}
	})
	t.Run("server close gives 3000 go away", func(t *testing.T) {
		c := s.connect(t, tr, "/close", "")
		c.wantOpen()
		c.wantClose(3000, "Go away!")
	})
}

// testApps: the behaviour of the test server's application endpoints.
func (s *suite) testApps(t *testing.T) {
	ws, polling, streaming := transports[0], transports[3], transports[1]
	t.Run("amplify answers 2^n x, n from the message, 1 unless 0<n<19", func(t *testing.T) {
		c := s.connect(t, ws, "/amplify", "")
		c.wantOpen()
		cases := []struct {
			in   string
			want int
		}{{"0", 2}, {"19", 2}, {"-3", 2}, {"abc", 2}, {"", 2}, {"18", 1 << 18}, {"3", 8}}
		for _, tc := range cases {
			c.send(tc.in)
			if got := c.recv(); got != xs(tc.want) {
				t.Errorf("amplify %q: got %d bytes, want %d x", tc.in, len(got), tc.want)
			}
		}
	})
	t.Run("broadcast reaches every open session", func(t *testing.T) {
		clients := []*sjsClient{
			s.connect(t, ws, "/broadcast", ""),
			s.connect(t, polling, "/broadcast", ""),
			s.connect(t, streaming, "/broadcast", ""),
		}
		for _, c := range clients {
			c.wantOpen()
		}
		msg := "hello from " + newID()
		clients[1].send(msg)
		for _, c := range clients {
			// Other runs may broadcast too: skip what is not ours.
			deadline := time.Now().Add(requestTimeout)
			for {
				if got := c.recv(); got == msg {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("%s: broadcast %q never arrived", c.what, msg)
				}
			}
		}
	})
	t.Run("ticker sends tick every second", func(t *testing.T) {
		c := s.connect(t, ws, "/ticker", "")
		c.wantOpen()
		for i := 0; i < 2; i++ {
			if got := c.recv(); got != "tick!" {
				t.Fatalf("ticker: %s, want tick!", clip(got))
			}
		}
	})
}
