package loadtest

import (
	"bytes"
	"fmt"
	"html/template"
	"math"
	"os"
	"strings"
)

// reportCSS is shared by the run report and the comparison report.
const reportCSS = `
body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;margin:0;background:#fafafa;color:#222}
main{max-width:1180px;margin:0 auto;padding:24px}
h1{font-size:22px;margin:0 0 4px} h2{font-size:17px;margin:28px 0 10px}
.sub{color:#666;margin:0 0 18px}
.cards{display:flex;flex-wrap:wrap;gap:12px;margin:12px 0}
.card{background:#fff;border:1px solid #e2e2e2;border-radius:8px;padding:10px 14px;min-width:120px}
.card b{display:block;font-size:20px;font-weight:600}
.card span{color:#666;font-size:12px}
.card.bad b{color:#c0392b}
.charts{display:grid;grid-template-columns:repeat(auto-fit,minmax(560px,1fr));gap:14px}
.panel{background:#fff;border:1px solid #e2e2e2;border-radius:8px;padding:8px;overflow:auto}
table{border-collapse:collapse;background:#fff;font-size:13px}
th,td{border:1px solid #e2e2e2;padding:5px 9px;text-align:right}
th{background:#f3f3f3} td:first-child,th:first-child,td.t,th.t{text-align:left}
td.good{color:#1e7d3a;font-weight:600} td.worse{color:#b03a2e;font-weight:600}
code{background:#f0f0f0;padding:1px 4px;border-radius:3px}
.muted{color:#888}
`

// runReport is the data of the run report template.
type runReport struct {
	R      *Result
	CSS    template.CSS
	Cards  []card
	Charts []template.HTML
	Params [][2]string
}

type card struct {
	Value, Label string
	Bad          bool
}

var runTmpl = template.Must(template.New("run").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>{{.R.Scenario}} · {{.R.Label}} · Shoal load test</title><style>{{.CSS}}</style></head>
<body><main>
<h1>{{.R.Scenario}} over {{.R.Transport}} — {{.R.Label}}</h1>
<p class="sub">{{.R.URL}} · started {{.R.StartedAt.Format "2006-01-02 15:04:05 UTC"}} · {{.R.WindowS}} s measured after {{.R.WarmupS}} s warmup</p>
<div class="cards">{{range .Cards}}<div class="card{{if .Bad}} bad{{end}}"><b>{{.Value}}</b><span>{{.Label}}</span></div>{{end}}</div>
<div class="charts">{{range .Charts}}<div class="panel">{{.}}</div>{{end}}</div>
<h2>Run</h2>
<table>{{range .Params}}<tr><th>{{index . 0}}</th><td>{{index . 1}}</td></tr>{{end}}</table>
{{if .R.Errors}}<h2>Errors</h2><table><tr><th>error</th><th>count</th></tr>{{range .R.Errors}}<tr><td>{{.Error}}</td><td>{{.Count}}</td></tr>{{end}}</table>{{end}}
{{if .R.Notes}}<h2>Notes</h2><ul>{{range .R.Notes}}<li>{{.}}</li>{{end}}</ul>{{end}}
<p class="muted">Latency: time from a message's send to its arrival at a receiving session, recorded in an HdrHistogram (3 significant digits). Counts and percentiles are of the measured window; the charts over time show the whole run, shaded outside the window.</p>
</main></body></html>
`))

// WriteHTML writes the run's self-contained HTML report to path.
func (r *Result) WriteHTML(path string) error {
	b, err := r.HTML()
	if err != nil {
		return err
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		return fmt.Errorf("loadtest: write report: %w", err)
	}
	return nil
}

// HTML renders the run report.
func (r *Result) HTML() ([]byte, error) {
	rep := runReport{R: r, CSS: template.CSS(reportCSS)}
	rep.Cards = r.cards()
	if r.Kind == KindIdle {
		// No messages: what matters is the sessions held and what they cost.
		rep.Charts = []template.HTML{
			throughputOverTime(r).SVG(),
			latencySpectrum("Session open latency by percentile", []string{r.Label}, nil, [][]Quantile{r.ConnectSpectrum}).SVG(),
		}
	} else {
		rep.Charts = []template.HTML{
			latencyOverTime(r).SVG(),
			throughputOverTime(r).SVG(),
			latencySpectrum("Latency by percentile", []string{r.Label}, nil, [][]Quantile{r.Spectrum}).SVG(),
			latencyHistogram(r).SVG(),
		}
	}
	if hasServerSeries(r.Series) {
		rep.Charts = append(rep.Charts, serverOverTime(r, false).SVG(), serverOverTime(r, true).SVG())
	}
	rep.Params = [][2]string{
		{"scenario", fmt.Sprintf("%s (%s)", r.Scenario, r.Kind)},
		{"transport", string(r.Transport)},
		{"sessions", fmt.Sprint(r.Sessions)},
	}
	if r.Kind != KindIdle {
		rep.Params = append(rep.Params, [][2]string{
			{"rate", rateText(r)},
			{"payload", fmt.Sprintf("%d bytes", r.Payload)},
			{"in flight per sender", fmt.Sprint(r.Inflight)},
			{"sent / received", fmt.Sprintf("%d / %d", r.Counts.Sent, r.Counts.Received)},
			{"delivered / expected (whole run)", fmt.Sprintf("%d / %d = %.2f%%", r.Delivered, r.Expected, 100*r.DeliveryRatio)},
		}...)
	}
	rep.Params = append(rep.Params, [][2]string{
		{"sessions opened / lost / open at end", fmt.Sprintf("%d / %d / %d", r.Counts.Opened, r.Counts.Lost, r.Counts.Open)},
		{"connect latency p50 / p99 / max", fmt.Sprintf("%s / %s / %s", fmtMicros(r.Connect.P50), fmtMicros(r.Connect.P99), fmtMicros(r.Connect.Max))},
	}...)
	if s := r.Server; s != nil {
		rep.Params = append(rep.Params,
			[2]string{"server pids", fmt.Sprint(s.PIDs)},
			[2]string{"server CPU in window", fmt.Sprintf("%.2f s (%.0f%% of one core)", s.CPUSeconds, 100*s.CPUUtilization)},
			[2]string{"server RSS baseline / start / end", fmt.Sprintf("%s / %s / %s", fmtKiB(s.RSSBaselineKiB), fmtKiB(s.RSSStartKiB), fmtKiB(s.RSSEndKiB))})
		if s.RSSMidKiB > 0 {
			rep.Params = append(rep.Params, [2]string{"server RSS after half the sessions", fmtKiB(s.RSSMidKiB)})
		}
		if len(s.Processes) > 1 {
			rep.Params = append(rep.Params, [2]string{"server CPU by process", processText(s.Processes)})
		}
	}
	if c := r.Client; c != nil {
		rep.Params = append(rep.Params, [2]string{"load generator CPU in window", fmt.Sprintf("%.2f s (%.0f%% of one core), RSS %s", c.CPUSeconds, 100*c.CPUUtilization, fmtKiB(c.RSSKiB))})
	}
	if r.Counts.StreamReopens > 0 || r.Counts.BusyRetries > 0 {
		rep.Params = append(rep.Params, [2]string{"stream reopens / 2010 retries", fmt.Sprintf("%d / %d", r.Counts.StreamReopens, r.Counts.BusyRetries)})
	}
	var buf bytes.Buffer
	if err := runTmpl.Execute(&buf, rep); err != nil {
		return nil, fmt.Errorf("loadtest: render report: %w", err)
	}
	return buf.Bytes(), nil
}

// processText lists each process' CPU seconds and RSS, e.g.
// "shoal-node 0.41 s 30 MiB · redis-server 0.20 s 8 MiB".
func processText(ps []ProcessSample) string {
	var parts []string
	for _, p := range ps {
		parts = append(parts, fmt.Sprintf("%s %.2f s %s", p.Name, p.CPUSeconds, fmtKiB(p.RSSKiB)))
	}
	return strings.Join(parts, " · ")
}

func rateText(r *Result) string {
	if r.Rate == 0 {
		return "closed loop"
	}
	unit := map[string]string{KindEcho: "messages/s", KindBroadcast: "publishes/s", KindHub: "publishes/s", KindChurn: "sessions/s"}[r.Kind]
	return fmt.Sprintf("%g %s", r.Rate, unit)
}

func (r *Result) cards() []card {
	var cs []card
	if r.Kind != KindIdle {
		cs = append(cs,
			card{Value: fmtNumber(r.ReceiveRate) + "/s", Label: "received"},
			card{Value: fmtMicros(r.Latency.P50), Label: "p50 latency"},
			card{Value: fmtMicros(r.Latency.P99), Label: "p99 latency"},
			card{Value: fmtMicros(r.Latency.P999), Label: "p99.9 latency"},
			card{Value: fmt.Sprintf("%.2f%%", 100*r.DeliveryRatio), Label: "delivered", Bad: r.DeliveryRatio < 0.99},
		)
	} else {
		cs = append(cs, card{Value: fmt.Sprint(r.Counts.Open), Label: "sessions held"},
			card{Value: fmtMicros(r.Connect.P99), Label: "p99 connect"})
	}
	cs = append(cs, card{Value: fmt.Sprint(r.Counts.Errors), Label: "errors", Bad: r.Counts.Errors > 0})
	if s := r.Server; s != nil {
		if r.Ops > 0 {
			cs = append(cs, card{Value: fmt.Sprintf("%.1f µs", s.CPUPerOpMicros), Label: "server CPU per " + r.OpsName})
		}
		if s.RSSPerSessionKiB > 0 {
			cs = append(cs, card{Value: fmt.Sprintf("%.1f KiB", s.RSSPerSessionKiB), Label: "server memory per session"})
		}
		if s.RSSMarginalKiB != 0 {
			cs = append(cs, card{Value: fmt.Sprintf("%.1f KiB", s.RSSMarginalKiB), Label: "marginal per session (second half)"})
		}
		cs = append(cs, card{Value: fmt.Sprintf("%.0f%%", 100*s.CPUUtilization), Label: "server CPU (one core = 100%)"})
	}
	return cs
}

// phaseBands shades the parts of the run outside the measured window.
func phaseBands(series []Point) []chartBand {
	var out []chartBand
	prev := 0.0
	for _, p := range series {
		if p.Phase != "measure" {
			if n := len(out); n > 0 && out[n-1].Label == p.Phase && out[n-1].To == prev {
				out[n-1].To = p.T
			} else {
				out = append(out, chartBand{From: prev, To: p.T, Label: p.Phase})
			}
		}
		prev = p.T
	}
	return out
}

func latencyOverTime(r *Result) lineChart {
	var x, p50, p90, p99, mx []float64
	for _, p := range r.Series {
		if p.P50 == 0 {
			continue
		}
		x = append(x, p.T)
		p50, p90, p99, mx = append(p50, float64(p.P50)), append(p90, float64(p.P90)), append(p99, float64(p.P99)), append(mx, float64(p.Max))
	}
	return lineChart{
		Title: "Latency over time (per second)",
		X:     chartAxis{Label: "seconds since start", Min: 0, Max: lastT(r.Series)},
		Y:     chartAxis{Label: "latency", Log: true, Format: fmtMicrosF},
		Series: []chartSeries{
			{Name: "p50", X: x, Y: p50}, {Name: "p90", X: x, Y: p90},
			{Name: "p99", X: x, Y: p99}, {Name: "max", X: x, Y: mx, Dash: true, Color: "#999"},
		},
		Bands: phaseBands(r.Series),
	}
}

func throughputOverTime(r *Result) lineChart {
	var x, sent, recv, errs, open []float64
	prev := 0.0
	for _, p := range r.Series {
		dt := p.T - prev
		prev = p.T
		if dt <= 0 {
			continue
		}
		x = append(x, p.T)
		sent, recv, errs = append(sent, float64(p.Sent)/dt), append(recv, float64(p.Received)/dt), append(errs, float64(p.Errors)/dt)
		open = append(open, float64(p.Sessions))
	}
	s := []chartSeries{{Name: "sent/s", X: x, Y: sent}, {Name: "received/s", X: x, Y: recv}, {Name: "errors/s", X: x, Y: errs, Color: "#D55E00"}}
	title := "Throughput (messages per second)"
	if r.Kind == KindIdle {
		s = []chartSeries{{Name: "open sessions", X: x, Y: open}, {Name: "errors/s", X: x, Y: errs, Color: "#D55E00"}}
		title = "Open sessions"
	}
	yLabel := "per second"
	if r.Kind == KindIdle {
		yLabel = "sessions"
	}
	return lineChart{
		Title:  title,
		X:      chartAxis{Label: "seconds since start", Min: 0, Max: lastT(r.Series)},
		Y:      chartAxis{Label: yLabel},
		Series: s,
		Bands:  phaseBands(r.Series),
	}
}

// latencySpectrum plots latency against percentile on the usual
// 1/(1−p) scale that spreads out the tail.
// colors may be nil (palette order) or give one colour per spectrum.
func latencySpectrum(title string, names, colors []string, spectra [][]Quantile) lineChart {
	c := lineChart{
		Title: title,
		X: chartAxis{Label: "percentile", Log: true, Min: 1, Max: 1e5,
			Ticks:  []float64{1, 10, 100, 1000, 1e4, 1e5},
			Format: func(v float64) string { return percentileLabel(v) }},
		Y: chartAxis{Label: "latency", Log: true, Format: fmtMicrosF},
	}
	for i, sp := range spectra {
		s := chartSeries{Name: names[i]}
		if i < len(colors) {
			s.Color = colors[i]
		}
		for _, q := range sp {
			x := 1 / (1 - q.Percentile/100)
			if math.IsInf(x, 0) || x > 1e5 {
				x = 1e5
			}
			s.X, s.Y = append(s.X, x), append(s.Y, float64(q.Micros))
		}
		c.Series = append(c.Series, s)
	}
	return c
}

func percentileLabel(v float64) string {
	p := 100 * (1 - 1/v)
	switch {
	case v <= 1:
		return "0%"
	case p < 99:
		return fmt.Sprintf("%.0f%%", p)
	}
	return trimZero(fmt.Sprintf("%.3f", p)) + "%"
}

func latencyHistogram(r *Result) lineChart {
	s := chartSeries{Name: "messages"}
	for _, b := range r.Histogram {
		s.X, s.Y = append(s.X, float64(max(b.From, 1))), append(s.Y, float64(b.Count))
	}
	if n := len(r.Histogram); n > 0 {
		s.X, s.Y = append(s.X, float64(r.Histogram[n-1].To)), append(s.Y, 0)
	}
	return lineChart{
		Title:  "Latency distribution (log-spaced buckets)",
		X:      chartAxis{Label: "latency", Log: true, Format: fmtMicrosF},
		Y:      chartAxis{Label: "messages"},
		Series: []chartSeries{s},
		Bars:   true,
	}
}

func hasServerSeries(series []Point) bool {
	for _, p := range series {
		if p.ServerRSSKiB > 0 {
			return true
		}
	}
	return false
}

// serverOverTime charts the server processes' memory (rss) or CPU use.
func serverOverTime(r *Result, rss bool) lineChart {
	s := chartSeries{Name: "all server processes"}
	first := true
	for _, p := range r.Series {
		if p.ServerRSSKiB == 0 {
			continue
		}
		if first && !rss {
			first = false
			continue // the first sample has no interval to measure CPU over
		}
		v := p.ServerCPU * 100
		if rss {
			v = float64(p.ServerRSSKiB) / 1024
		}
		s.X, s.Y = append(s.X, p.T), append(s.Y, v)
	}
	c := lineChart{
		Title:  "Server CPU (100% = one core)",
		X:      chartAxis{Label: "seconds since start", Min: 0, Max: lastT(r.Series)},
		Y:      chartAxis{Label: "CPU", Format: func(v float64) string { return fmtNumber(v) + "%" }},
		Series: []chartSeries{s},
		Bands:  phaseBands(r.Series),
	}
	if rss {
		c.Title = "Server memory (RSS)"
		c.Y = chartAxis{Label: "MiB", Format: func(v float64) string { return fmtNumber(v) + " MiB" }}
	}
	return c
}

func lastT(series []Point) float64 {
	if len(series) == 0 {
		return 1
	}
	return math.Max(series[len(series)-1].T, 1)
}
