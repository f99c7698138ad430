package apps

import (
	"os"
	"testing"

	"github.com/shoal-rt/shoal/sockjs/conformance"
)

// TestConformance runs the suite against SHOAL_CONFORMANCE_URL when it is
// set (for example the sockjs-node reference server, or a running Shoal
// cluster behind HAProxy), and otherwise against a Shoal node started
// in-process with the conformance app on an in-memory store and bus.
func TestConformance(t *testing.T) {
	u := os.Getenv("SHOAL_CONFORMANCE_URL")
	if u == "" {
		u = serve(t, "conformance")
	}
	conformance.Run(t, u)
}
