package storetest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/shoal-rt/shoal/store"

	"github.com/shoal-rt/shoal/internal/testenv"
)

// ChannelStore is a store that keeps channels as well as sessions.
type ChannelStore interface {
	store.Store
	store.Channels
}

// RunChannels runs the channel suite. newStore must return an empty store
// (a fresh key prefix for a shared server is enough); subtests run in
// parallel.
func RunChannels(t *testing.T, newStore func(t *testing.T) ChannelStore) {
	t.Helper()
	testenv.RunCases(t, true, newStore, testenv.Cases[ChannelStore]{
		{"Names", testChannelNames},
		{"SubscribeCursor", testSubscribeCursor},
		{"SubscribeTwice", testSubscribeTwice},
		{"SubscribeFrom", testSubscribeFrom},
		{"SubscribeMissingOrClosed", testSubscribeMissingOrClosed},
		{"SubscribeReceiverNode", testSubscribeReceiverNode},
		{"SubscribeLimit", testSubscribeLimit},
		{"SubscribeLimitRace", testSubscribeLimitRace},
		{"Unsubscribe", testUnsubscribe},
		{"UnsubscribeAll", testUnsubscribeAll},
		{"UnsubscribeAllAfterReap", testUnsubscribeAllAfterReap},
		{"UnsubscribeAllRace", testUnsubscribeAllRace},
		{"SetCursors", testSetCursors},
		{"AppendRead", testAppendRead},
		{"ReadPaging", testReadPaging},
		{"ReadMissing", testReadMissing},
		{"AppendConcurrent", testChannelAppendConcurrent},
		{"TrimLength", testTrimLength},
		{"TrimAge", testTrimAge},
		{"ChannelsIndependent", testChannelsIndependent},
		{"CanceledContext", testChannelsCanceledContext},
	})
}

func mustSubscribe(t *testing.T, s ChannelStore, id, channel string) store.SubscribeResult {
	t.Helper()
	res, err := s.Subscribe(ctx(t), id, channel, 0)
	if err != nil {
		t.Fatalf("Subscribe(%q, %q) = %v", id, channel, err)
	}
	return res
}

// mustJoin creates session id with the given disconnect delay and
// subscribes it to channels.
func mustJoin(t *testing.T, s ChannelStore, id string, delay time.Duration, channels ...string) {
	t.Helper()
	mustCreate(t, s, id, delay)
	for _, c := range channels {
		mustSubscribe(t, s, id, c)
	}
}

func mustPublish(t *testing.T, s ChannelStore, channel, msg string) uint64 {
	t.Helper()
	off, err := s.AppendChannel(ctx(t), channel, msg, store.LogOptions{Keep: long})
	if err != nil {
		t.Fatalf("AppendChannel(%q, %q) = %v", channel, msg, err)
	}
	return off
}

func mustRead(t *testing.T, s ChannelStore, channel string, after uint64, max int) store.ReadResult {
	t.Helper()
	res, err := s.ReadChannel(ctx(t), channel, after, max)
	if err != nil {
		t.Fatalf("ReadChannel(%q, %d) = %v", channel, after, err)
	}
	return res
}

func msgs(entries []store.LogEntry) []string {
	out := make([]string, len(entries))
	for i, e := range entries {
		out[i] = e.Msg
	}
	return out
}

// contiguous fails unless entries have offsets from, from+1, ...
func contiguous(t *testing.T, entries []store.LogEntry, from uint64) {
	t.Helper()
	for i, e := range entries {
		if e.Offset != from+uint64(i) {
			t.Fatalf("entry %d has offset %d, want %d (entries %+v)", i, e.Offset, from+uint64(i), entries)
		}
	}
}

func sorted(s []string) []string {
	s = slices.Clone(s)
	slices.Sort(s)
	return s
}

func testChannelNames(t *testing.T, s ChannelStore) {
	good := []string{"a", "room-1", "user:42/feed", "a.b_c@d=e+f", strings.Repeat("x", store.MaxChannelLen)}
	for _, name := range good {
		if err := store.CheckChannel(name); err != nil {
			t.Errorf("CheckChannel(%q) = %v", name, err)
		}
	}
	mustCreate(t, s, "n", long)
	bad := []string{"", strings.Repeat("x", store.MaxChannelLen+1), "a b", "{tag}", "a\x00", "é", "a*", "a\n"}
	for _, name := range bad {
		wantErr(t, "CheckChannel("+name+")", store.CheckChannel(name), store.ErrInvalidChannel)
		_, err := s.Subscribe(ctx(t), "n", name, 0)
		wantErr(t, "Subscribe "+name, err, store.ErrInvalidChannel)
		_, err = s.AppendChannel(ctx(t), name, "m", store.LogOptions{})
		wantErr(t, "AppendChannel "+name, err, store.ErrInvalidChannel)
		_, err = s.ReadChannel(ctx(t), name, 0, 0)
		wantErr(t, "ReadChannel "+name, err, store.ErrInvalidChannel)
		_, _, err = s.Unsubscribe(ctx(t), "n", name)
		wantErr(t, "Unsubscribe "+name, err, store.ErrInvalidChannel)
		_, err = s.Members(ctx(t), name)
		wantErr(t, "Members "+name, err, store.ErrInvalidChannel)
	}
}

func testSubscribeCursor(t *testing.T, s ChannelStore) {
	mustCreate(t, s, "a", long)
	first := mustPublish(t, s, "c", "before-1")
	if second := mustPublish(t, s, "c", "before-2"); second != first+1 {
		t.Fatalf("offsets %d then %d, want consecutive", first, second)
	}
	res := mustSubscribe(t, s, "a", "c")
	if !res.Created || res.Cursor != first+1 {
		t.Fatalf("Subscribe = %+v, want created with cursor %d (the head)", res, first+1)
	}
	off := mustPublish(t, s, "c", "after")
	if off != res.Cursor+1 {
		t.Fatalf("offset after subscribe %d, want %d", off, res.Cursor+1)
	}
	r := mustRead(t, s, "c", res.Cursor, 0)
	if r.Truncated || r.Head != off || !slices.Equal(msgs(r.Entries), []string{"after"}) {
		t.Fatalf("Read after cursor = %+v, want [after] with head %d", r, off)
	}
	subs, err := s.Subscriptions(ctx(t), "a")
	if err != nil || len(subs) != 1 || subs["c"] != res.Cursor {
		t.Fatalf("Subscriptions = %v, %v; want c:%d", subs, err, res.Cursor)
	}
	members, err := s.Members(ctx(t), "c")
	if err != nil || !slices.Equal(members, []string{"a"}) {
		t.Fatalf("Members = %q, %v; want [a]", members, err)
	}

	// A channel nobody published on yet: its first message is after the
	// cursor too.
	res = mustSubscribe(t, s, "a", "fresh")
	off = mustPublish(t, s, "fresh", "x")
	if off <= res.Cursor {
		t.Fatalf("first offset %d not after the cursor %d", off, res.Cursor)
	}
	r = mustRead(t, s, "fresh", res.Cursor, 0)
	if r.Truncated || !slices.Equal(msgs(r.Entries), []string{"x"}) {
		t.Fatalf("Read fresh = %+v", r)
	}
}

// testSubscribeFrom: a new subscription may start at an older offset (a
// client recovering as a new session), never past the head; an existing
// one keeps its cursor.
func testSubscribeFrom(t *testing.T, s ChannelStore) {
	mustCreate(t, s, "a", long)
	mustCreate(t, s, "b", long)
	first := mustPublish(t, s, "c", "m1")
	mustPublish(t, s, "c", "m2")
	head := mustPublish(t, s, "c", "m3")
	res, err := s.SubscribeFrom(ctx(t), "a", "c", 0, first)
	if err != nil || !res.Created || res.Cursor != first {
		t.Fatalf("SubscribeFrom(%d) = %+v, %v; want created with cursor %d", first, res, err, first)
	}
	r := mustRead(t, s, "c", res.Cursor, 0)
	if !slices.Equal(msgs(r.Entries), []string{"m2", "m3"}) {
		t.Fatalf("Read after cursor = %+v, want [m2 m3]", r)
	}
	if res, err = s.SubscribeFrom(ctx(t), "a", "c", 0, 1); err != nil || res.Created || res.Cursor != first {
		t.Fatalf("SubscribeFrom again = %+v, %v; want the existing cursor %d", res, err, first)
	}
	if res, err = s.SubscribeFrom(ctx(t), "b", "c", 0, head+100); err != nil || res.Cursor != head {
		t.Fatalf("SubscribeFrom past the head = %+v, %v; want cursor %d", res, err, head)
	}
	subs, err := s.Subscriptions(ctx(t), "a")
	if err != nil || subs["c"] != first {
		t.Fatalf("Subscriptions = %v, %v; want c:%d", subs, err, first)
	}
}

func testSubscribeTwice(t *testing.T, s ChannelStore) {
	mustCreate(t, s, "a", long)
	first := mustSubscribe(t, s, "a", "c")
	mustPublish(t, s, "c", "m")
	again := mustSubscribe(t, s, "a", "c")
	if again.Created || again.Cursor != first.Cursor {
		t.Fatalf("second Subscribe = %+v, want not created, cursor %d", again, first.Cursor)
	}
}

func testSubscribeMissingOrClosed(t *testing.T, s ChannelStore) {
	_, err := s.Subscribe(ctx(t), "nobody", "c", 0)
	wantErr(t, "Subscribe missing session", err, store.ErrNotFound)
	mustCreate(t, s, "x", long)
	if _, err := s.Close(ctx(t), "x", 3000, "bye"); err != nil {
		t.Fatal(err)
	}
	_, err = s.Subscribe(ctx(t), "x", "c", 0)
	wantErr(t, "Subscribe closed session", err, store.ErrClosed)
	members, err := s.Members(ctx(t), "c")
	if err != nil || len(members) != 0 {
		t.Fatalf("Members after refused subscribes = %q, %v; want none", members, err)
	}
	subs, err := s.Subscriptions(ctx(t), "nobody")
	if err != nil || len(subs) != 0 {
		t.Fatalf("Subscriptions of a missing session = %v, %v; want empty", subs, err)
	}
}

func testSubscribeReceiverNode(t *testing.T, s ChannelStore) {
	mustCreate(t, s, "a", long)
	if res := mustSubscribe(t, s, "a", "c1"); res.ReceiverNode != "" {
		t.Fatalf("ReceiverNode without a lease = %q", res.ReceiverNode)
	}
	mustAttach(t, s, "a", lease("n7", "t", long))
	if res := mustSubscribe(t, s, "a", "c2"); res.ReceiverNode != "n7" {
		t.Fatalf("ReceiverNode = %q, want n7", res.ReceiverNode)
	}
	removed, node, err := s.Unsubscribe(ctx(t), "a", "c2")
	if err != nil || !removed || node != "n7" {
		t.Fatalf("Unsubscribe = %v, %q, %v; want true, n7", removed, node, err)
	}
	mustDetach(t, s, "a", "t")
	removed, node, err = s.Unsubscribe(ctx(t), "a", "c1")
	if err != nil || !removed || node != "" {
		t.Fatalf("Unsubscribe after detach = %v, %q, %v; want true, no node", removed, node, err)
	}
}

func testSubscribeLimit(t *testing.T, s ChannelStore) {
	mustCreate(t, s, "a", long)
	for _, c := range []string{"c1", "c2"} {
		if _, err := s.Subscribe(ctx(t), "a", c, 2); err != nil {
			t.Fatal(err)
		}
	}
	_, err := s.Subscribe(ctx(t), "a", "c3", 2)
	wantErr(t, "third Subscribe with max 2", err, store.ErrTooManySubscriptions)
	if members, _ := s.Members(ctx(t), "c3"); len(members) != 0 {
		t.Fatalf("refused Subscribe left a member: %q", members)
	}
	// Subscribing again to a channel it has is no new subscription.
	if _, err := s.Subscribe(ctx(t), "a", "c2", 2); err != nil {
		t.Fatalf("re-Subscribe at the limit: %v", err)
	}
	if _, _, err := s.Unsubscribe(ctx(t), "a", "c1"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Subscribe(ctx(t), "a", "c3", 2); err != nil {
		t.Fatalf("Subscribe after Unsubscribe freed a place: %v", err)
	}
}

func testSubscribeLimitRace(t *testing.T, s ChannelStore) {
	mustCreate(t, s, "a", long)
	const racers, max = 20, 5
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		won  int
		errs []error
	)
	for i := range racers {
		wg.Go(func() {
			_, err := s.Subscribe(ctx(t), "a", fmt.Sprint("c", i), max)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				won++
			case !errors.Is(err, store.ErrTooManySubscriptions):
				errs = append(errs, err)
			}
		})
	}
	wg.Wait()
	if len(errs) > 0 || won != max {
		t.Fatalf("%d of %d racers subscribed (errors %v); want exactly %d", won, racers, errs, max)
	}
	subs, err := s.Subscriptions(ctx(t), "a")
	if err != nil || len(subs) != max {
		t.Fatalf("Subscriptions = %v, %v; want %d", subs, err, max)
	}
	total := 0
	for i := range racers {
		m, err := s.Members(ctx(t), fmt.Sprint("c", i))
		if err != nil {
			t.Fatal(err)
		}
		total += len(m)
	}
	if total != max {
		t.Fatalf("members over all channels = %d, want %d", total, max)
	}
}

func testUnsubscribe(t *testing.T, s ChannelStore) {
	mustJoin(t, s, "a", long, "c")
	mustJoin(t, s, "b", long, "c")
	if m, _ := s.Members(ctx(t), "c"); !slices.Equal(sorted(m), []string{"a", "b"}) {
		t.Fatalf("Members = %q, want [a b]", m)
	}
	removed, _, err := s.Unsubscribe(ctx(t), "a", "c")
	if err != nil || !removed {
		t.Fatalf("Unsubscribe = %v, %v", removed, err)
	}
	removed, _, err = s.Unsubscribe(ctx(t), "a", "c")
	if err != nil || removed {
		t.Fatalf("second Unsubscribe = %v, %v; want false", removed, err)
	}
	if m, _ := s.Members(ctx(t), "c"); !slices.Equal(m, []string{"b"}) {
		t.Fatalf("Members after Unsubscribe = %q, want [b]", m)
	}
	if subs, _ := s.Subscriptions(ctx(t), "a"); len(subs) != 0 {
		t.Fatalf("Subscriptions after Unsubscribe = %v", subs)
	}
	// A new subscription starts at the head again.
	mustPublish(t, s, "c", "m")
	res := mustSubscribe(t, s, "a", "c")
	if r := mustRead(t, s, "c", res.Cursor, 0); len(r.Entries) != 0 || !res.Created {
		t.Fatalf("re-Subscribe = %+v, then Read = %+v; want created at the head", res, r)
	}
}

func testUnsubscribeAll(t *testing.T, s ChannelStore) {
	mustJoin(t, s, "a", long, "c1", "c2", "c3")
	got, err := s.UnsubscribeAll(ctx(t), "a")
	if err != nil || !slices.Equal(sorted(got), []string{"c1", "c2", "c3"}) {
		t.Fatalf("UnsubscribeAll = %q, %v", got, err)
	}
	for _, c := range []string{"c1", "c2", "c3"} {
		if m, _ := s.Members(ctx(t), c); len(m) != 0 {
			t.Fatalf("Members(%s) after UnsubscribeAll = %q", c, m)
		}
	}
	got, err = s.UnsubscribeAll(ctx(t), "a")
	if err != nil || len(got) != 0 {
		t.Fatalf("second UnsubscribeAll = %q, %v; want none", got, err)
	}
	// A closed session (OnClose runs before it is reaped) leaves too.
	mustJoin(t, s, "b", long, "c1")
	if _, err := s.Close(ctx(t), "b", 3000, "x"); err != nil {
		t.Fatal(err)
	}
	got, err = s.UnsubscribeAll(ctx(t), "b")
	if err != nil || !slices.Equal(got, []string{"c1"}) {
		t.Fatalf("UnsubscribeAll of a closed session = %q, %v", got, err)
	}
}

func testUnsubscribeAllAfterReap(t *testing.T, s ChannelStore) {
	mustJoin(t, s, "r", short, "c")
	mustJoin(t, s, "stay", long, "c")
	reapUntilGone(t, s, "r")
	// The reaped session is no member any more...
	if m, _ := s.Members(ctx(t), "c"); !slices.Equal(m, []string{"stay"}) {
		t.Fatalf("Members after reap = %q, want [stay]", m)
	}
	// ...and the node running its OnClose can still learn its channels.
	got, err := s.UnsubscribeAll(ctx(t), "r")
	if err != nil || !slices.Equal(got, []string{"c"}) {
		t.Fatalf("UnsubscribeAll after reap = %q, %v; want [c]", got, err)
	}
}

func testUnsubscribeAllRace(t *testing.T, s ChannelStore) {
	mustCreate(t, s, "a", long)
	for i := range 10 {
		mustSubscribe(t, s, "a", fmt.Sprint("c", i))
	}
	var (
		wg  sync.WaitGroup
		mu  sync.Mutex
		all []string
	)
	for range 4 {
		wg.Go(func() {
			got, err := s.UnsubscribeAll(ctx(t), "a")
			if err != nil {
				t.Error(err)
			}
			mu.Lock()
			all = append(all, got...)
			mu.Unlock()
		})
	}
	wg.Wait()
	if len(all) != 10 || len(slices.Compact(sorted(all))) != 10 {
		t.Fatalf("racing UnsubscribeAll returned %q; want each of 10 channels once", all)
	}
}

func testSetCursors(t *testing.T, s ChannelStore) {
	mustCreate(t, s, "a", long)
	c1 := mustSubscribe(t, s, "a", "c1").Cursor
	c2 := mustSubscribe(t, s, "a", "c2").Cursor
	err := s.SetCursors(ctx(t), "a", map[string]uint64{"c1": c1 + 5, "c2": c2 - 1, "other": 7})
	if err != nil {
		t.Fatal(err)
	}
	subs, err := s.Subscriptions(ctx(t), "a")
	want := map[string]uint64{"c1": c1 + 5, "c2": c2}
	if err != nil || len(subs) != 2 || subs["c1"] != want["c1"] || subs["c2"] != want["c2"] {
		t.Fatalf("Subscriptions = %v, %v; want %v (forward only, no new channel)", subs, err, want)
	}
	if m, _ := s.Members(ctx(t), "other"); len(m) != 0 {
		t.Fatalf("SetCursors subscribed: Members(other) = %q", m)
	}
	// Missing sessions are no error.
	if err := s.SetCursors(ctx(t), "nobody", map[string]uint64{"c1": 1}); err != nil {
		t.Fatalf("SetCursors of a missing session: %v", err)
	}
}

func testAppendRead(t *testing.T, s ChannelStore) {
	var offs []uint64
	for i := range 5 {
		offs = append(offs, mustPublish(t, s, "c", fmt.Sprint("m", i)))
	}
	for i := 1; i < len(offs); i++ {
		if offs[i] != offs[i-1]+1 {
			t.Fatalf("offsets %v are not consecutive", offs)
		}
	}
	r := mustRead(t, s, "c", offs[1], 0)
	if r.Truncated || r.Head != offs[4] || !slices.Equal(msgs(r.Entries), []string{"m2", "m3", "m4"}) {
		t.Fatalf("Read after the second = %+v", r)
	}
	contiguous(t, r.Entries, offs[2])
	r = mustRead(t, s, "c", offs[4], 0)
	if r.Truncated || len(r.Entries) != 0 || r.Head != offs[4] {
		t.Fatalf("Read at the head = %+v", r)
	}
	// Reading from before the log began: everything, and the reader is
	// told what was before is gone.
	r = mustRead(t, s, "c", 1, 0)
	if !r.Truncated || len(r.Entries) != 5 {
		t.Fatalf("Read from offset 1 = %+v; want all 5, truncated", r)
	}
	// Binary-safe payloads.
	odd := "a\x00b\n\"c\":{d}\u2028"
	off := mustPublish(t, s, "c", odd)
	if r := mustRead(t, s, "c", off-1, 0); len(r.Entries) != 1 || r.Entries[0].Msg != odd {
		t.Fatalf("Read odd payload = %+v", r)
	}
}

func testReadPaging(t *testing.T, s ChannelStore) {
	first := mustPublish(t, s, "c", "0")
	for i := 1; i < 10; i++ {
		mustPublish(t, s, "c", fmt.Sprint(i))
	}
	var got []string
	after := first - 1
	for {
		r := mustRead(t, s, "c", after, 3)
		if len(r.Entries) > 3 {
			t.Fatalf("Read max 3 returned %d", len(r.Entries))
		}
		if len(r.Entries) == 0 {
			break
		}
		contiguous(t, r.Entries, after+1)
		got = append(got, msgs(r.Entries)...)
		after = r.Entries[len(r.Entries)-1].Offset
	}
	if want := []string{"0", "1", "2", "3", "4", "5", "6", "7", "8", "9"}; !slices.Equal(got, want) {
		t.Fatalf("paged reads = %q, want %q", got, want)
	}
}

func testReadMissing(t *testing.T, s ChannelStore) {
	r := mustRead(t, s, "never", 0, 0)
	if r.Truncated || r.Head != 0 || len(r.Entries) != 0 {
		t.Fatalf("Read of an unknown channel = %+v, want empty", r)
	}
}

// testChannelAppendConcurrent: publishers racing on one channel get
// distinct consecutive offsets, and each publisher's messages are in its
// own order in the log.
func testChannelAppendConcurrent(t *testing.T, s ChannelStore) {
	const publishers, each = 8, 25
	base := mustPublish(t, s, "c", "start")
	var wg sync.WaitGroup
	for p := range publishers {
		wg.Go(func() {
			for i := range each {
				if _, err := s.AppendChannel(ctx(t), "c", fmt.Sprintf("%d/%d", p, i), store.LogOptions{Keep: long}); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	var all []store.LogEntry
	for after := base; ; {
		r := mustRead(t, s, "c", after, 0)
		if len(r.Entries) == 0 {
			break
		}
		all = append(all, r.Entries...)
		after = r.Entries[len(r.Entries)-1].Offset
	}
	if len(all) != publishers*each {
		t.Fatalf("read %d entries, want %d", len(all), publishers*each)
	}
	contiguous(t, all, base+1)
	next := make([]int, publishers)
	for _, e := range all {
		var p, i int
		if _, err := fmt.Sscanf(e.Msg, "%d/%d", &p, &i); err != nil {
			t.Fatalf("entry %q: %v", e.Msg, err)
		}
		if i != next[p] {
			t.Fatalf("publisher %d: got message %d, want %d (per-publisher order)", p, i, next[p])
		}
		next[p]++
	}
}

func testTrimLength(t *testing.T, s ChannelStore) {
	opts := store.LogOptions{Keep: long, MaxLen: 3}
	var offs []uint64
	for i := range 5 {
		off, err := s.AppendChannel(ctx(t), "c", fmt.Sprint(i), opts)
		if err != nil {
			t.Fatal(err)
		}
		offs = append(offs, off)
	}
	r := mustRead(t, s, "c", offs[0], 0)
	if !r.Truncated || !slices.Equal(msgs(r.Entries), []string{"2", "3", "4"}) {
		t.Fatalf("Read after the first of 5 with MaxLen 3 = %+v; want [2 3 4], truncated", r)
	}
	contiguous(t, r.Entries, offs[2])
	r = mustRead(t, s, "c", offs[1], 0)
	if r.Truncated || len(r.Entries) != 3 {
		t.Fatalf("Read after the second = %+v; want 3 entries, nothing lost", r)
	}
}

func testTrimAge(t *testing.T, s ChannelStore) {
	keep := 50 * time.Millisecond
	opts := store.LogOptions{Keep: keep}
	old, err := s.AppendChannel(ctx(t), "c", "old", opts)
	if err != nil {
		t.Fatal(err)
	}
	// Once keep has passed the message is gone, with no Append needed.
	testenv.CheckFor(t, wait, 10*time.Millisecond, func() error {
		r := mustRead(t, s, "c", old-1, 0)
		if len(r.Entries) != 0 || !r.Truncated || r.Head != old {
			return fmt.Errorf("read gave %+v, want nothing left, truncated, head %d", r, old)
		}
		return nil
	})
	// fresh is kept long: on a loaded machine 50 ms can pass before the
	// reads below, and its own expiry is not what they check.
	fresh, err := s.AppendChannel(ctx(t), "c", "fresh", store.LogOptions{Keep: long})
	if err != nil {
		t.Fatal(err)
	}
	if fresh != old+1 {
		t.Fatalf("offset after trimming %d, want %d", fresh, old+1)
	}
	r := mustRead(t, s, "c", old-1, 0)
	if !r.Truncated || !slices.Equal(msgs(r.Entries), []string{"fresh"}) {
		t.Fatalf("Read from before old = %+v; want [fresh], truncated", r)
	}
	r = mustRead(t, s, "c", old, 0)
	if r.Truncated || !slices.Equal(msgs(r.Entries), []string{"fresh"}) {
		t.Fatalf("Read after old = %+v; want [fresh], nothing lost", r)
	}
}

func testChannelsIndependent(t *testing.T, s ChannelStore) {
	a := mustPublish(t, s, "a", "1")
	mustPublish(t, s, "b", "x")
	mustPublish(t, s, "b", "y")
	if a2 := mustPublish(t, s, "a", "2"); a2 != a+1 {
		t.Fatalf("channel a offsets %d, %d: another channel's appends moved them", a, a2)
	}
	if r := mustRead(t, s, "a", a-1, 0); !slices.Equal(msgs(r.Entries), []string{"1", "2"}) {
		t.Fatalf("Read a = %+v", r)
	}
}

func testChannelsCanceledContext(t *testing.T, s ChannelStore) {
	mustJoin(t, s, "cx", long, "c")
	c, cancel := context.WithCancel(context.Background())
	cancel()
	calls := map[string]func() error{
		"Subscribe":      func() error { _, err := s.Subscribe(c, "cx", "d", 0); return err },
		"Unsubscribe":    func() error { _, _, err := s.Unsubscribe(c, "cx", "c"); return err },
		"UnsubscribeAll": func() error { _, err := s.UnsubscribeAll(c, "cx"); return err },
		"Subscriptions":  func() error { _, err := s.Subscriptions(c, "cx"); return err },
		"SetCursors":     func() error { return s.SetCursors(c, "cx", map[string]uint64{"c": 1 << 60}) },
		"Members":        func() error { _, err := s.Members(c, "c"); return err },
		"AppendChannel":  func() error { _, err := s.AppendChannel(c, "c", "m", store.LogOptions{}); return err },
		"ReadChannel":    func() error { _, err := s.ReadChannel(c, "c", 0, 0); return err },
	}
	for name, call := range calls {
		if err := call(); !errors.Is(err, context.Canceled) {
			t.Errorf("%s with canceled context: err = %v, want context.Canceled", name, err)
		}
	}
	subs, err := s.Subscriptions(ctx(t), "cx")
	if err != nil || len(subs) != 1 || subs["c"] >= 1<<60 {
		t.Fatalf("Subscriptions after canceled calls = %v, %v; want c unchanged", subs, err)
	}
	if r := mustRead(t, s, "c", 0, 0); len(r.Entries) != 0 {
		t.Fatalf("canceled AppendChannel appended: %+v", r)
	}
}
