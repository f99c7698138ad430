package loadtest

import (
	"bytes"
	"cmp"
	"fmt"
	"html/template"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// cell is one figure of the comparison table, formatted, with its run.
type cell struct {
	Text   string
	Report string // link to the run's report
	Class  string
}

// compareRow is one line of a table: a scenario's metric, a cell per
// target (the results) or per peer (the ratios). Label is what else names
// the line: the load the results offered, the Shoal target of the ratios.
type compareRow struct {
	Scenario, Label, Metric string
	Cells                   []cell
}

// table lays out, per scenario, the compared metric, latency and delivery
// for every target.
func (rep *CompareReport) table() []compareRow {
	var rows []compareRow
	for _, scen := range rep.Scenarios {
		load := ""
		metric := ""
		var m, lat, del, marg, busy []cell
		closedLoop := false
		for _, t := range rep.Targets {
			var run *CompareRun
			for i := range rep.Runs {
				if rep.Runs[i].Scenario == scen && rep.Runs[i].Target == t.Name {
					run = &rep.Runs[i]
				}
			}
			if run == nil || run.Result == nil {
				txt := "—"
				if run != nil && run.Error != "" {
					txt = "failed"
					if strings.HasPrefix(run.Error, notRun) {
						txt = "not run"
					}
					if strings.HasPrefix(run.Error, "unavailable") || !t.Available {
						txt = "unavailable"
					}
				}
				m, lat, del, marg, busy = append(m, cell{Text: txt}), append(lat, cell{Text: txt}), append(del, cell{Text: txt}), append(marg, cell{Text: txt}), append(busy, cell{Text: txt})
				continue
			}
			r := run.Result
			load = loadText(r)
			closedLoop = closedLoop || (r.Rate == 0 && r.Kind != KindIdle)
			name, v, ok := metricOf(scen, r)
			if ok {
				metric = name
				m = append(m, cell{Text: fmtMetric(v), Report: run.Report})
			} else {
				m = append(m, cell{Text: "n/a", Report: run.Report})
			}
			if r.Kind == KindIdle {
				mv := "n/a"
				if r.Server != nil && r.Server.RSSMarginalKiB != 0 {
					mv = fmtMetric(r.Server.RSSMarginalKiB)
				}
				marg = append(marg, cell{Text: mv})
				lat = append(lat, cell{Text: fmt.Sprintf("%s / %s", fmtMicros(r.Connect.P50), fmtMicros(r.Connect.P99))})
				del = append(del, cell{Text: fmt.Sprintf("%d of %d open", r.Counts.Open, r.Sessions), Class: boolClass(r.Counts.Open >= int64(r.Sessions))})
			} else {
				busy = append(busy, busyCell(r, rep.ServerShare))
				lat = append(lat, cell{Text: fmt.Sprintf("%s / %s", fmtMicros(r.Latency.P50), fmtMicros(r.Latency.P99))})
				del = append(del, cell{Text: fmt.Sprintf("%.1f%% (%s/s)", 100*r.DeliveryRatio, fmtNumber(r.ReceiveRate)), Class: boolClass(r.DeliveryRatio >= 0.99 && r.Counts.Errors == 0)})
			}
		}
		if metric == "" {
			metric = "server cost"
		}
		latName, delName := "latency p50 / p99", "delivered (received/s)"
		if strings.HasPrefix(scen, "idle") {
			latName, delName = "connect p50 / p99", "sessions held"
		}
		rows = append(rows, compareRow{Scenario: scen, Label: load, Metric: metric, Cells: m})
		if closedLoop {
			rows = append(rows, compareRow{Metric: "servers busy / client busy (cores)", Cells: busy})
		}
		if strings.HasPrefix(scen, "idle") {
			rows = append(rows, compareRow{Metric: "marginal per session, second half (KiB)", Cells: marg})
		}
		rows = append(rows,
			compareRow{Metric: latName, Cells: lat},
			compareRow{Metric: delName, Cells: del})
	}
	return rows
}

func boolClass(good bool) string {
	if good {
		return ""
	}
	return "worse"
}

func fmtMetric(v float64) string {
	switch {
	case v >= 100:
		return fmt.Sprintf("%.0f", v)
	case v >= 10:
		return fmt.Sprintf("%.1f", v)
	}
	return fmt.Sprintf("%.2f", v)
}

// saturated is how busy the servers of a closed-loop run must be, as a
// share of what they had (one core, or the report's ServerShare), for it to
// count as measured at saturation; below it the client was the limit and
// the cell is marked.
const saturated = 0.9

// busyCell says how many cores the servers and the load generator kept busy.
func busyCell(r *Result, share float64) cell {
	if share <= 0 {
		share = 1
	}
	if r.Server == nil {
		return cell{Text: "n/a"}
	}
	txt := fmt.Sprintf("%.2f", r.Server.CPUUtilization)
	if r.Client != nil {
		txt += fmt.Sprintf(" / %.2f", r.Client.CPUUtilization)
	}
	return cell{Text: txt, Class: boolClass(r.Rate > 0 || r.Server.CPUUtilization >= saturated*share)}
}

// loadText describes the load a run offered.
func loadText(r *Result) string {
	switch {
	case r.Kind == KindEcho && r.Rate == 0:
		return fmt.Sprintf("%d %s sessions × %d in flight, closed loop", r.Sessions, r.Transport, r.Inflight)
	case r.Kind == KindBroadcast && r.Rate == 0:
		return fmt.Sprintf("%d %s subscribers, publishes closed loop", r.Sessions, r.Transport)
	case r.Kind == KindHub && r.Rate == 0:
		return fmt.Sprintf("%d %s hub sessions in %d rooms, API publishes closed loop", r.Sessions, r.Transport, r.Rooms)
	}
	switch r.Kind {
	case KindEcho:
		return fmt.Sprintf("%d %s sessions, %s msg/s", r.Sessions, r.Transport, fmtNumber(r.Rate))
	case KindBroadcast:
		return fmt.Sprintf("%d %s subscribers, %s publishes/s", r.Sessions, r.Transport, fmtNumber(r.Rate))
	case KindHub:
		return fmt.Sprintf("%d %s hub sessions in %d rooms, %s API publishes/s", r.Sessions, r.Transport, r.Rooms, fmtNumber(r.Rate))
	case KindChurn:
		return fmt.Sprintf("%s %s sessions/s", fmtNumber(r.Rate), r.Transport)
	case KindIdle:
		return fmt.Sprintf("%d idle %s sessions", r.Sessions, r.Transport)
	}
	return ""
}

// backendsMarkdown tables what the runs with backends (the cluster) cost
// them per op: counts the machine's load does not move. Empty without such
// runs.
func (rep *CompareReport) backendsMarkdown() string {
	var b strings.Builder
	for _, r := range rep.Runs {
		res := r.Result
		if res == nil || res.BackendPerOp == nil {
			continue
		}
		if b.Len() == 0 {
			b.WriteString("\nWhat each op cost the backends, counted by Redis (INFO commandstats, INFO cpu) and NATS (/varz) over the window:\n\n" +
				"| scenario | target | per | Redis commands | of which scripts | Redis CPU (µs) | NATS msgs in | NATS msgs out |\n|---|---|---|---:|---:|---:|---:|---:|\n")
		}
		p := res.BackendPerOp
		fmt.Fprintf(&b, "| %s | %s | %s | %.1f | %.2f | %.0f | %.2f | %.2f |\n", r.Scenario, r.Target, res.OpsName,
			p[CountRedisCommands], p[CountRedisScripts], p[CountRedisCPU], p[CountNATSIn], p[CountNATSOut])
	}
	return b.String()
}

// processesMarkdown tables where the server CPU per op of the targets that
// run several processes (the cluster, the sticky trio) goes: each
// process kind's share of the CPU per op, the same processes summed.
// Empty without such runs.
func (rep *CompareReport) processesMarkdown() string {
	var b strings.Builder
	for _, r := range rep.Runs {
		res := r.Result
		if res == nil || res.Server == nil || len(res.Server.Processes) < 2 || res.Server.CPUSeconds <= 0 || res.Kind == KindIdle {
			continue
		}
		if b.Len() == 0 {
			b.WriteString("\nWhere the server CPU per op of the several-process targets goes (µs per op, by process; ×n: n processes summed):\n\n" +
				"| scenario | target | per | all | by process |\n|---|---|---|---:|---|\n")
		}
		var names []string
		sums, counts := map[string]float64{}, map[string]int{}
		for _, p := range res.Server.Processes {
			if counts[p.Name] == 0 {
				names = append(names, p.Name)
			}
			sums[p.Name] += p.CPUSeconds
			counts[p.Name]++
		}
		slices.SortStableFunc(names, func(a, b string) int { return cmp.Compare(sums[b], sums[a]) })
		perOp := res.Server.CPUPerOpMicros / res.Server.CPUSeconds
		var parts []string
		for _, n := range names {
			label := n
			if counts[n] > 1 {
				label = fmt.Sprintf("%s ×%d", n, counts[n])
			}
			parts = append(parts, fmt.Sprintf("%s %s", label, fmtMetric(sums[n]*perOp)))
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s |\n", r.Scenario, r.Target, res.OpsName, fmtMetric(res.Server.CPUPerOpMicros), strings.Join(parts, " · "))
	}
	return b.String()
}

// Markdown renders the comparison as tables for BENCHMARKS.md.
func (rep *CompareReport) Markdown() string {
	var b strings.Builder
	fmt.Fprintf(&b, "Measured %s on %s; servers pinned to CPU %s, load generator to CPU %s; %.0f s in all.\n\n",
		rep.StartedAt.Format("2006-01-02 15:04 UTC"), rep.Machine, orNone(rep.ServerCPUs), orNone(rep.LoadCPUs), rep.Elapsed)
	b.WriteString("| scenario | load | metric |")
	for _, t := range rep.Targets {
		fmt.Fprintf(&b, " %s |", t.Name)
	}
	b.WriteString("\n|---|---|---|")
	for range rep.Targets {
		b.WriteString("---:|")
	}
	b.WriteString("\n")
	for _, row := range rep.table() {
		fmt.Fprintf(&b, "| %s | %s | %s |", row.Scenario, row.Label, row.Metric)
		for _, c := range row.Cells {
			fmt.Fprintf(&b, " %s |", c.Text)
		}
		b.WriteString("\n")
	}
	if len(rep.Ratios) > 0 {
		peers := rep.ratioPeers()
		b.WriteString("\nShoal ÷ peer on the metric above (below 1: Shoal spends less):\n\n| scenario | metric | Shoal |")
		for _, p := range peers {
			fmt.Fprintf(&b, " ÷ %s |", p)
		}
		b.WriteString("\n|---|---|---|" + strings.Repeat("---:|", len(peers)) + "\n")
		for _, l := range rep.ratioLines(peers) {
			fmt.Fprintf(&b, "| %s | %s | %s |", l.Scenario, l.Metric, l.Label)
			for _, c := range l.Cells {
				fmt.Fprintf(&b, " %s |", orDash(c.Text))
			}
			b.WriteString("\n")
		}
	}
	b.WriteString(rep.processesMarkdown())
	b.WriteString(rep.backendsMarkdown())
	b.WriteString("\nTargets:\n\n")
	for _, t := range rep.Targets {
		if t.Available {
			fmt.Fprintf(&b, "- **%s**: %s\n", t.Name, t.Description)
		} else {
			fmt.Fprintf(&b, "- **%s**: unavailable: %s\n", t.Name, oneLine(t.Reason, 300))
		}
	}
	for _, r := range rep.Runs {
		if r.failed() {
			fmt.Fprintf(&b, "- %s against %s failed: %s\n", r.Scenario, r.Target, oneLine(r.Error, 300))
		}
	}
	for _, n := range rep.Notes {
		fmt.Fprintf(&b, "- note: %s\n", n)
	}
	return b.String()
}

// failed says whether the run failed, rather than its target being
// unavailable or not running this scenario.
func (r CompareRun) failed() bool {
	return r.Error != "" && !strings.HasPrefix(r.Error, "unavailable") && !strings.HasPrefix(r.Error, notRun)
}

func orDash(s string) string {
	if s == "" {
		return "—"
	}
	return s
}

func orNone(s string) string {
	if s == "" {
		return "(not pinned)"
	}
	return s
}

func oneLine(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if len([]rune(s)) > n {
		s = string([]rune(s)[:n]) + "…"
	}
	return s
}

type comparePage struct {
	R       *CompareReport
	CSS     template.CSS
	Targets []TargetInfo
	Rows    []compareRow
	Ratios  []compareRow
	// RatioPeers head the ratio table's columns.
	RatioPeers []string
	Charts     []scenarioCharts
	Failed     []CompareRun
}

// scenarioCharts are one scenario's panels: cost and p99 bars on the
// left, latency by percentile on the right.
type scenarioCharts struct {
	Title         string
	Left          []template.HTML
	Right         template.HTML
	RightHasChart bool
}

// ratioPeers are the peers of ratioPeers that some ratio is taken against.
func (rep *CompareReport) ratioPeers() []string {
	var out []string
	for _, p := range ratioPeers {
		for _, r := range rep.Ratios {
			if r.Peer == p {
				out = append(out, p)
				break
			}
		}
	}
	return out
}

// ratioLines lays the ratios out by scenario and Shoal target (the rows'
// Label), a cell per peer of peers (empty where that peer has no result).
func (rep *CompareReport) ratioLines(peers []string) []compareRow {
	var out []compareRow
	for _, scen := range rep.Scenarios {
		for _, s := range []string{TargetShoal, TargetShoalCluster} {
			l := compareRow{Scenario: scen, Label: s, Cells: make([]cell, len(peers))}
			for _, r := range rep.Ratios {
				i := slices.Index(peers, r.Peer)
				if r.Scenario != scen || r.Shoal != s || i < 0 {
					continue
				}
				l.Metric = r.Metric
				c := cell{Text: fmt.Sprintf("%.2f", r.Ratio), Class: "good"}
				if r.Ratio > 1 {
					c.Class = "worse"
				}
				if r.Caveat != "" {
					c.Text += " (" + r.Caveat + ")"
				}
				l.Cells[i] = c
			}
			if l.Metric != "" {
				out = append(out, l)
			}
		}
	}
	return out
}

var compareTmpl = template.Must(template.New("compare").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>Shoal vs sockjs-node vs sockjs-go</title><style>{{.CSS}}</style></head>
<body><main>
<h1>Shoal beside sockjs-node and sockjs-go</h1>
<p class="sub">{{.R.StartedAt.Format "2006-01-02 15:04 UTC"}} · {{.R.Machine}} · servers on CPU {{.R.ServerCPUs}}, load generator on CPU {{.R.LoadCPUs}} · {{.R.Elapsed}} s</p>
<h2>Shoal ÷ peer</h2>
<p class="muted">Server CPU per message (all server processes summed: nodes, Redis, NATS, HAProxy) or memory per idle session, Shoal's divided by the peer's. Below 1: Shoal spends less.</p>
<table><tr><th>scenario</th><th class="t">metric</th><th class="t">Shoal</th>{{range .RatioPeers}}<th>÷ {{.}}</th>{{end}}</tr>
{{range .Ratios}}<tr><td>{{.Scenario}}</td><td class="t">{{.Metric}}</td><td class="t">{{.Label}}</td>{{range .Cells}}<td class="{{.Class}}">{{.Text}}</td>{{end}}</tr>{{end}}
</table>
<h2>Results</h2>
<table><tr><th>scenario</th><th class="t">load</th><th class="t">metric</th>{{range .Targets}}<th>{{.Name}}</th>{{end}}</tr>
{{range .Rows}}<tr><td>{{.Scenario}}</td><td class="t">{{.Label}}</td><td class="t">{{.Metric}}</td>{{range .Cells}}<td class="{{.Class}}">{{if .Report}}<a href="{{.Report}}">{{.Text}}</a>{{else}}{{.Text}}{{end}}</td>{{end}}</tr>
{{end}}</table>
{{range .Charts}}<h2>{{.Title}}</h2><div class="charts"><div class="panel">{{range .Left}}{{.}}{{end}}</div>{{if .RightHasChart}}<div class="panel">{{.Right}}</div>{{end}}</div>
{{end}}
<h2>Targets</h2><ul>{{range .Targets}}<li><b>{{.Name}}</b>: {{if .Available}}{{.Description}}{{else}}unavailable: {{.Reason}}{{end}}</li>{{end}}</ul>
{{if .Failed}}<h2>Failed runs</h2><ul>{{range .Failed}}<li>{{.Scenario}} against {{.Target}}: {{.Error}}</li>{{end}}</ul>{{end}}
{{if .R.Notes}}<h2>Notes</h2><ul>{{range .R.Notes}}<li>{{.}}</li>{{end}}</ul>{{end}}
<p class="muted">Command: <code>{{.R.Command}}</code>. Each target is started fresh for each scenario; CPU is utime+stime from /proc over the measured window, memory is VmRSS growth over the server's baseline before the first session.</p>
</main></body></html>
`))

func (rep *CompareReport) writeHTML(path string) error {
	page := comparePage{R: rep, CSS: template.CSS(reportCSS), Targets: rep.Targets, Rows: rep.table()}
	page.RatioPeers = rep.ratioPeers()
	page.Ratios = rep.ratioLines(page.RatioPeers)
	for _, scen := range rep.Scenarios {
		var bars, p99 []hbar
		var names, colors []string
		var spectra [][]Quantile
		metric := ""
		for i, t := range rep.Targets {
			r := rep.result(scen, t.Name)
			name, v, ok := metricOf(scen, r)
			if !ok {
				v = math.NaN()
			} else {
				metric = name
			}
			color := palette[i%len(palette)]
			bars = append(bars, hbar{Label: t.Name, Value: v, Color: color})
			if r != nil && r.Kind != KindIdle && r.Latency.Count > 0 {
				p99 = append(p99, hbar{Label: t.Name, Value: float64(r.Latency.P99), Color: color,
					Note: "(" + fmtMicros(r.Latency.P50) + ")"})
				names, colors, spectra = append(names, t.Name), append(colors, color), append(spectra, r.Spectrum)
			} else {
				p99 = append(p99, hbar{Label: t.Name, Value: math.NaN()})
			}
		}
		sc := scenarioCharts{Title: scen}
		for _, r := range rep.Runs {
			if r.Scenario == scen && r.Result != nil {
				sc.Title = scen + " — " + loadText(r.Result)
				break
			}
		}
		if metric != "" {
			sc.Left = append(sc.Left, barChart(metric, bars, fmtMetric))
		}
		if len(spectra) > 0 {
			sc.Left = append(sc.Left, barChart("p99 latency (p50)", p99, fmtMicrosF))
			sc.Right, sc.RightHasChart = latencySpectrum("latency by percentile", names, colors, spectra).SVG(), true
		}
		if len(sc.Left) > 0 {
			page.Charts = append(page.Charts, sc)
		}
	}
	for _, r := range rep.Runs {
		if r.failed() {
			page.Failed = append(page.Failed, r)
		}
	}
	var buf bytes.Buffer
	if err := compareTmpl.Execute(&buf, page); err != nil {
		return fmt.Errorf("loadtest: render comparison: %w", err)
	}
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		return fmt.Errorf("loadtest: write comparison: %w", err)
	}
	return nil
}

// RenderCompare reads a comparison's JSON, recomputes its ratios and
// writes its HTML and Markdown again beside it: reports can be redrawn
// without measuring again.
func RenderCompare(jsonPath string) (*CompareReport, error) {
	var rep CompareReport
	if err := readJSON(jsonPath, "comparison", &rep); err != nil {
		return nil, err
	}
	rep.Dir = filepath.Dir(jsonPath)
	rep.JSONPath = jsonPath
	rep.HTMLPath = filepath.Join(rep.Dir, "compare.html")
	rep.Ratios = rep.ratios()
	if err := rep.writePages(); err != nil {
		return nil, err
	}
	return &rep, nil
}

// writePages writes the comparison's HTML (HTMLPath) and Markdown
// (compare.md in Dir).
func (rep *CompareReport) writePages() error {
	if err := rep.writeHTML(rep.HTMLPath); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(rep.Dir, "compare.md"), []byte(rep.Markdown()), 0o644); err != nil {
		return fmt.Errorf("loadtest: write comparison: %w", err)
	}
	return nil
}
