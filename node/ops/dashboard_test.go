package ops_test

import (
	"context"
	"encoding/json"
	"log/slog"
	"os"
	"regexp"
	"testing"

	"github.com/shoal-rt/shoal/bus"
	"github.com/shoal-rt/shoal/node/ops"
)

// Every metric the Grafana dashboard (docs/grafana-dashboard.json) queries
// is one the node exports, so the dashboard cannot drift from the code.
func TestDashboardMetricsExist(t *testing.T) {
	raw, err := os.ReadFile("../../docs/grafana-dashboard.json")
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		Panels []struct {
			Title   string
			Targets []struct{ Expr string }
		}
	}
	if err := json.Unmarshal(raw, &dash); err != nil {
		t.Fatalf("dashboard is not JSON: %v", err)
	}
	b := bus.NewMemory()
	defer b.Close()
	lat := ops.NewLatency()
	o, err := ops.New(ops.Config{Node: newNode(t), Logger: slog.New(slog.DiscardHandler), Latency: lat, Bus: b,
		Checks: []ops.Check{{Name: "redis", Ping: func(context.Context) error { return nil }}}})
	if err != nil {
		t.Fatal(err)
	}
	defer o.Close()
	lat.ObserveStore("create", 0, nil) // vectors appear once observed
	lat.Bus(b).Publish(t.Context(), "x", nil)
	families, err := o.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	exported := make(map[string]bool)
	for _, f := range families {
		name := f.GetName()
		exported[name] = true
		for _, suffix := range []string{"_bucket", "_count", "_sum"} {
			exported[name+suffix] = true
		}
	}
	metric := regexp.MustCompile(`shoal_[a-z_]+`)
	queried := 0
	for _, p := range dash.Panels {
		for _, tg := range p.Targets {
			for _, name := range metric.FindAllString(tg.Expr, -1) {
				queried++
				if !exported[name] {
					t.Errorf("panel %q queries %s, which the node does not export", p.Title, name)
				}
			}
		}
	}
	if queried == 0 {
		t.Fatal("the dashboard queries no shoal_ metric")
	}
}
