package redisstore

import (
	"embed"
	"fmt"

	"github.com/redis/go-redis/v9"

	"github.com/shoal-rt/shoal/store"
)

// The scripts live in lua/, one file per state transition; each file says
// what it takes and what it replies. lua/prelude.lua (shared helpers and
// the key layout) is prepended to every one.
//
//go:embed lua/*.lua
var luaFiles embed.FS

var prelude = mustReadLua("prelude")

func mustReadLua(name string) string {
	b, err := luaFiles.ReadFile("lua/" + name + ".lua")
	if err != nil {
		panic(fmt.Sprintf("store/redis: embedded script %s: %v", name, err))
	}
	return string(b)
}

// scriptNames maps each script's SHA-1 (what EVALSHA names) to its file
// name, for ScriptName.
var scriptNames = make(map[string]string)

func newScript(name string) *redis.Script {
	s := redis.NewScript(prelude + mustReadLua(name))
	scriptNames[s.Hash()] = name
	return s
}

// ScriptName returns the store operation (the lua/ file name: "attach",
// "append_channel", ...) whose script has SHA-1 sha, or "" for any other,
// so that a go-redis hook can time store operations by name.
func ScriptName(sha string) string { return scriptNames[sha] }

// Session scripts (KEYS from Store.keys).
var (
	createScript  = newScript("create")
	getScript     = newScript("get")
	attachScript  = newScript("attach")
	renewScript   = newScript("renew")
	detachScript  = newScript("detach")
	appendScript  = newScript("append")
	drainScript   = newScript("drain")
	commitScript  = newScript("commit")
	closeScript   = newScript("close")
	reapScript    = newScript("reap")
	setAttrScript = newScript("set_attr")
	attrScript    = newScript("attr")
	releaseScript = newScript("release_node")
)

// Channel scripts (KEYS given per script, see channels.go).
var (
	joinChannelScript    = newScript("join_channel")
	subscribeScript      = newScript("subscribe")
	unsubscribeScript    = newScript("unsubscribe")
	unsubscribeAllScript = newScript("unsubscribe_all")
	subscriptionsScript  = newScript("subscriptions")
	setCursorsScript     = newScript("set_cursors")
	appendChannelScript  = newScript("append_channel")
	readChannelScript    = newScript("read_channel")
)

// Reply codes the scripts share (lua/prelude.lua lists them).
const (
	replyOK                   = 1
	replyNoSession            = 0
	replyNotHolder            = -1
	replyClosed               = -2
	replyQueueFull            = -3
	replyTooManySubscriptions = -4
	replyBusy                 = -5
)

// Replies of single scripts, beyond the shared codes (each .lua file
// lists its own).
const (
	createCreated = 1 // create.lua
	createExisted = 0

	reapReapedOpen    = 1 // reap.lua: the caller runs OnClose
	reapDeletedClosed = 2
	reapGone          = 0
	reapNotDue        = -1

	releaseClosed   = 1 // release_node.lua: the caller runs OnClose
	releaseReleased = 2
	releaseNothing  = 0

	attrFound   = 1 // attr.lua; replyNoSession when the session is gone
	attrMissing = 2
)

// Stored session states (hash field st).
const (
	stOpen   = 1
	stClosed = 2
)

// outcome maps a reply code to the store's result: nil for ok, a store
// sentinel for the others.
func outcome(r any) error {
	n, err := toInt(r)
	if err != nil {
		return err
	}
	return codeErr(n)
}

func codeErr(n int64) error {
	switch n {
	case replyOK:
		return nil
	case replyNoSession:
		return store.ErrNotFound
	case replyNotHolder:
		return store.ErrNotHolder
	case replyClosed:
		return store.ErrClosed
	case replyQueueFull:
		return store.ErrQueueFull
	case replyTooManySubscriptions:
		return store.ErrTooManySubscriptions
	}
	return fmt.Errorf("unexpected reply code %d", n)
}

// stateOf maps a stored state to store.State.
func stateOf(st int64) (store.State, error) {
	switch st {
	case stOpen:
		return store.StateOpen, nil
	case stClosed:
		return store.StateClosed, nil
	}
	return 0, fmt.Errorf("unexpected session state %d", st)
}
