package ops

import (
	"os"
	"strings"
	"syscall"
)

// The Go runtime's system monitor (sysmon), kept out of the way.
//
// sysmon is a thread of the runtime's own. While every P is idle it sleeps
// until woken, and the first system call after that wakes it (a futex),
// after which it looks around every 20 µs for a millisecond before backing
// off. A node under moderate load is idle between most requests, so it
// paid that on nearly every one: perf put sysmon at 9.8% of a node's CPU in
// a polling echo at 1,000 messages/s, and the futex wake-ups and thread
// switches around it at 5-6% more. With schedtrace set in GODEBUG sysmon
// never sleeps that deep: idle, it backs off to one look every 10 ms, and a
// system call wakes nothing (sysmon 1.0% of the node's CPU in the same
// echo). Polling echo at 1,000 messages/s, six alternated runs: 155 -> 141
// µs of server CPU per round trip. The price: an idle node looks 100 times
// a second, 3.4 ms of CPU per second instead of 0.2 (0.3% of a core).
//
// The runtime reads GODEBUG once, at its start, so a program calls
// QuietSysmon first thing and runs itself again with it (exec: the same
// process, the same pid); the node program does, and so can a Go program
// embedding sockjs. The trace
// period is the largest the runtime takes, 2^31-1 ms (24.8 days): the one
// line of trace it prints goes to stderr each time the machine's uptime
// passes a multiple of that, and with the stacks of a fatal error. An
// operator's GODEBUG that names schedtrace is left as it is
// (GODEBUG=schedtrace=0 turns this off).

// QuietSysmonSetting is the GODEBUG setting QuietSysmon adds.
const QuietSysmonSetting = "schedtrace=2147483647"

// QuietSysmon runs the program again with QuietSysmonSetting added to
// GODEBUG, unless GODEBUG names schedtrace already (an operator's setting,
// or this function's own after the exec). It returns only when it did not
// exec: the program then runs on as it is. Call it before anything else
// (flags may be parsed first: they are parsed again).
func QuietSysmon() {
	env := os.Getenv("GODEBUG")
	if godebugNames(env, "schedtrace") {
		return
	}
	exe, err := os.Executable()
	if err != nil {
		return
	}
	if env != "" {
		env += ","
	}
	syscall.Exec(exe, os.Args, withEnv(os.Environ(), "GODEBUG", env+QuietSysmonSetting))
}

// godebugNames reports whether a GODEBUG value sets key.
func godebugNames(godebug, key string) bool {
	for setting := range strings.SplitSeq(godebug, ",") {
		if k, _, _ := strings.Cut(setting, "="); strings.TrimSpace(k) == key {
			return true
		}
	}
	return false
}

// withEnv returns environ with key set to value, in place of any setting
// of key it had.
func withEnv(environ []string, key, value string) []string {
	out := make([]string, 0, len(environ)+1)
	for _, kv := range environ {
		if !strings.HasPrefix(kv, key+"=") {
			out = append(out, kv)
		}
	}
	return append(out, key+"="+value)
}
