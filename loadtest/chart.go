package loadtest

import (
	"fmt"
	"html"
	"html/template"
	"math"
	"strings"
)

// The report's charts are SVG written here, so that a report is one HTML
// file that opens anywhere with nothing to fetch.

// palette is colour-blind safe (Okabe–Ito) and used in order.
var palette = []string{"#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442", "#000000"}

type chartSeries struct {
	Name  string
	Color string
	X, Y  []float64
	Dash  bool
}

type chartAxis struct {
	Label    string
	Log      bool
	Min, Max float64 // both zero: from the data
	Format   func(float64) string
	Ticks    []float64 // explicit ticks, else chosen
}

// chartBand shades an x range, e.g. the warmup before the measured window.
type chartBand struct {
	From, To float64
	Label    string
}

type lineChart struct {
	Title  string
	W, H   int
	X, Y   chartAxis
	Series []chartSeries
	Bands  []chartBand
	Bars   bool // draw the first series as bars from the x axis (histogram)
}

const (
	padL, padR, padT, padB = 70.0, 34.0, 34.0, 62.0
)

// SVG renders the chart.
func (c lineChart) SVG() template.HTML {
	if c.W == 0 {
		c.W, c.H = 640, 300
	}
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 %d %d" width="100%%" style="max-width:%dpx;height:auto" role="img" aria-label="%s" font-family="system-ui,sans-serif" font-size="12">`,
		c.W, c.H, c.W, html.EscapeString(c.Title))
	fmt.Fprintf(&b, `<text x="%g" y="20" font-size="14" font-weight="600" fill="#222">%s</text>`, padL, html.EscapeString(c.Title))
	xs, ys := c.extent()
	if xs == nil {
		fmt.Fprintf(&b, `<text x="%d" y="%d" text-anchor="middle" fill="#888">no data</text></svg>`, c.W/2, c.H/2)
		return template.HTML(b.String())
	}
	pw, ph := float64(c.W)-padL-padR, float64(c.H)-padT-padB
	sx := scaler(c.X.Log, xs[0], xs[1], padL, padL+pw)
	sy := scaler(c.Y.Log, ys[0], ys[1], padT+ph, padT)
	for _, band := range c.Bands {
		x0, x1 := sx(max(band.From, xs[0])), sx(min(band.To, xs[1]))
		if x1 <= x0 {
			continue
		}
		fmt.Fprintf(&b, `<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="#f1f1f1"/>`, x0, padT, x1-x0, ph)
		fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" fill="#999" font-size="11">%s</text>`, x0+4, padT+13, html.EscapeString(band.Label))
	}
	// Grid and ticks.
	for _, t := range c.ticks(c.Y, ys) {
		y := sy(t)
		fmt.Fprintf(&b, `<line x1="%g" x2="%g" y1="%.1f" y2="%.1f" stroke="#e4e4e4"/>`, padL, padL+pw, y, y)
		fmt.Fprintf(&b, `<text x="%g" y="%.1f" text-anchor="end" fill="#555">%s</text>`, padL-6, y+4, html.EscapeString(c.Y.format(t)))
	}
	for _, t := range c.ticks(c.X, xs) {
		x := sx(t)
		fmt.Fprintf(&b, `<line x1="%.1f" x2="%.1f" y1="%g" y2="%g" stroke="#e4e4e4"/>`, x, x, padT, padT+ph)
		fmt.Fprintf(&b, `<text x="%.1f" y="%g" text-anchor="middle" fill="#555">%s</text>`, x, padT+ph+16, html.EscapeString(c.X.format(t)))
	}
	fmt.Fprintf(&b, `<rect x="%g" y="%g" width="%g" height="%g" fill="none" stroke="#bbb"/>`, padL, padT, pw, ph)
	fmt.Fprintf(&b, `<text x="%g" y="%g" text-anchor="middle" fill="#333">%s</text>`, padL+pw/2, padT+ph+34, html.EscapeString(c.X.Label))
	fmt.Fprintf(&b, `<text transform="translate(14 %g) rotate(-90)" text-anchor="middle" fill="#333">%s</text>`, padT+ph/2, html.EscapeString(c.Y.Label))
	// Data.
	for i, s := range c.Series {
		color := s.Color
		if color == "" {
			color = palette[i%len(palette)]
		}
		if c.Bars && i == 0 {
			c.drawBars(&b, s, sx, sy, ys[0], color)
			continue
		}
		var pts []string
		for j := range s.X {
			if !c.inDomain(s.X[j], s.Y[j]) {
				continue
			}
			pts = append(pts, fmt.Sprintf("%.1f,%.1f", sx(s.X[j]), sy(clampF(s.Y[j], ys[0], ys[1]))))
		}
		dash := ""
		if s.Dash {
			dash = ` stroke-dasharray="4 3"`
		}
		if len(pts) == 1 {
			fmt.Fprintf(&b, `<circle cx="%s" cy="%s" r="3" fill="%s"/>`, strings.Split(pts[0], ",")[0], strings.Split(pts[0], ",")[1], color)
		}
		fmt.Fprintf(&b, `<polyline fill="none" stroke="%s" stroke-width="2"%s points="%s"/>`, color, dash, strings.Join(pts, " "))
	}
	// Legend under the x label.
	lx := padL
	for i, s := range c.Series {
		color := s.Color
		if color == "" {
			color = palette[i%len(palette)]
		}
		fmt.Fprintf(&b, `<rect x="%.1f" y="%g" width="14" height="4" fill="%s"/>`, lx, float64(c.H)-12, color)
		fmt.Fprintf(&b, `<text x="%.1f" y="%g" fill="#333">%s</text>`, lx+18, float64(c.H)-7, html.EscapeString(s.Name))
		lx += 30 + 7*float64(len([]rune(s.Name)))
	}
	b.WriteString(`</svg>`)
	return template.HTML(b.String())
}

func (c lineChart) drawBars(b *strings.Builder, s chartSeries, sx, sy func(float64) float64, y0 float64, color string) {
	base := sy(y0)
	for j := range s.X {
		if j+1 >= len(s.X) && len(s.X) > 1 {
			break
		}
		x0 := sx(s.X[j])
		x1 := x0 + 6
		if j+1 < len(s.X) {
			x1 = sx(s.X[j+1])
		}
		y := sy(max(s.Y[j], y0))
		fmt.Fprintf(b, `<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="%s" opacity="0.85"><title>%s: %s</title></rect>`,
			x0+0.5, y, max(x1-x0-1, 0.5), base-y, color, html.EscapeString(c.X.format(s.X[j])), html.EscapeString(c.Y.format(s.Y[j])))
	}
}

func (c lineChart) inDomain(x, y float64) bool {
	if math.IsNaN(x) || math.IsNaN(y) {
		return false
	}
	return (!c.X.Log || x > 0) && (!c.Y.Log || y > 0)
}

// extent returns [min,max] of x and y over the data, or the axis' bounds.
func (c lineChart) extent() (xs, ys []float64) {
	xmin, xmax, ymin, ymax := math.Inf(1), math.Inf(-1), math.Inf(1), math.Inf(-1)
	for _, s := range c.Series {
		for j := range s.X {
			if !c.inDomain(s.X[j], s.Y[j]) {
				continue
			}
			xmin, xmax = math.Min(xmin, s.X[j]), math.Max(xmax, s.X[j])
			ymin, ymax = math.Min(ymin, s.Y[j]), math.Max(ymax, s.Y[j])
		}
	}
	if math.IsInf(xmin, 1) {
		return nil, nil
	}
	if c.X.Min != 0 || c.X.Max != 0 {
		xmin, xmax = c.X.Min, c.X.Max
	}
	if c.Y.Min != 0 || c.Y.Max != 0 {
		ymin, ymax = c.Y.Min, c.Y.Max
	} else if !c.Y.Log {
		ymin = math.Min(0, ymin)
		ymax = niceCeil(ymax * 1.05)
	} else {
		ymin = math.Pow(10, math.Floor(math.Log10(ymin)))
		ymax = math.Pow(10, math.Ceil(math.Log10(ymax*1.0001)))
	}
	if xmax <= xmin {
		xmax = xmin + 1
	}
	if ymax <= ymin {
		ymax = ymin + 1
	}
	return []float64{xmin, xmax}, []float64{ymin, ymax}
}

func (c lineChart) ticks(a chartAxis, ext []float64) []float64 {
	if a.Ticks != nil {
		var out []float64
		for _, t := range a.Ticks {
			if t >= ext[0] && t <= ext[1] {
				out = append(out, t)
			}
		}
		return out
	}
	if a.Log {
		var out []float64
		decades := math.Log10(ext[1] / ext[0])
		for d := math.Floor(math.Log10(ext[0])); d <= math.Ceil(math.Log10(ext[1])); d++ {
			for _, m := range []float64{1, 2, 5} {
				if m != 1 && decades > 3 {
					continue
				}
				t := m * math.Pow(10, d)
				if t >= ext[0]*0.999 && t <= ext[1]*1.001 {
					out = append(out, t)
				}
			}
		}
		return out
	}
	step := niceStep((ext[1] - ext[0]) / 6)
	var out []float64
	for t := math.Ceil(ext[0]/step) * step; t <= ext[1]+step*1e-9; t += step {
		out = append(out, t)
	}
	return out
}

func (a chartAxis) format(v float64) string {
	if a.Format != nil {
		return a.Format(v)
	}
	return fmtNumber(v)
}

func scaler(log bool, d0, d1, r0, r1 float64) func(float64) float64 {
	if log {
		l0, l1 := math.Log10(d0), math.Log10(d1)
		return func(v float64) float64 {
			return r0 + (math.Log10(math.Max(v, d0))-l0)/(l1-l0)*(r1-r0)
		}
	}
	return func(v float64) float64 { return r0 + (v-d0)/(d1-d0)*(r1-r0) }
}

// niceStep rounds a raw tick step up to 1, 2 or 5 × 10^k.
func niceStep(raw float64) float64 {
	if raw <= 0 {
		return 1
	}
	p := math.Pow(10, math.Floor(math.Log10(raw)))
	for _, m := range []float64{1, 2, 5, 10} {
		if m*p >= raw {
			return m * p
		}
	}
	return 10 * p
}

func niceCeil(v float64) float64 {
	if v <= 0 {
		return 1
	}
	s := niceStep(v / 6)
	return math.Ceil(v/s) * s
}

func clampF(v, lo, hi float64) float64 { return math.Min(math.Max(v, lo), hi) }

// fmtNumber prints counts and rates compactly: 950, 12k, 1.5M.
func fmtNumber(v float64) string {
	a := math.Abs(v)
	switch {
	case a >= 1e6:
		return trimZero(fmt.Sprintf("%.1f", v/1e6)) + "M"
	case a >= 1e4:
		return trimZero(fmt.Sprintf("%.0f", v/1e3)) + "k"
	case a >= 1e3:
		return trimZero(fmt.Sprintf("%.1f", v/1e3)) + "k"
	case a >= 10 || a == 0:
		return fmt.Sprintf("%.0f", v)
	}
	return trimZero(fmt.Sprintf("%.2f", v))
}

func trimZero(s string) string {
	if strings.Contains(s, ".") {
		s = strings.TrimRight(strings.TrimRight(s, "0"), ".")
	}
	return s
}

func fmtMicrosF(v float64) string { return fmtMicros(int64(math.Round(v))) }

// hbar is one horizontal bar of a comparison chart.
type hbar struct {
	Label string
	Value float64 // NaN: unavailable
	Note  string  // printed after the value
	Color string
}

// barChart draws labelled horizontal bars, one per target.
func barChart(title string, bars []hbar, format func(float64) string) template.HTML {
	const w, rowH, labelW = 560.0, 26.0, 150.0
	h := 40 + rowH*float64(len(bars)) + 8
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 %g %g" width="100%%" style="max-width:%gpx;height:auto" role="img" aria-label="%s" font-family="system-ui,sans-serif" font-size="12">`,
		w, h, w, html.EscapeString(title))
	fmt.Fprintf(&b, `<text x="4" y="20" font-size="14" font-weight="600" fill="#222">%s</text>`, html.EscapeString(title))
	top := 0.0
	for _, bar := range bars {
		if !math.IsNaN(bar.Value) {
			top = math.Max(top, bar.Value)
		}
	}
	if top <= 0 {
		top = 1
	}
	span := w - labelW - 150
	for i, bar := range bars {
		y := 34 + rowH*float64(i)
		fmt.Fprintf(&b, `<text x="%g" y="%.1f" text-anchor="end" fill="#333">%s</text>`, labelW-8, y+15, html.EscapeString(bar.Label))
		if math.IsNaN(bar.Value) {
			fmt.Fprintf(&b, `<text x="%g" y="%.1f" fill="#999">unavailable</text>`, labelW, y+15)
			continue
		}
		color := bar.Color
		if color == "" {
			color = palette[i%len(palette)]
		}
		bw := math.Max(bar.Value/top*span, 1)
		fmt.Fprintf(&b, `<rect x="%g" y="%.1f" width="%.1f" height="%g" fill="%s" rx="2"/>`, labelW, y+3, bw, rowH-8, color)
		label := format(bar.Value)
		if bar.Note != "" {
			label += "  " + bar.Note
		}
		fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" fill="#222">%s</text>`, labelW+bw+6, y+15, html.EscapeString(label))
	}
	b.WriteString(`</svg>`)
	return template.HTML(b.String())
}
