package main

import (
	"encoding/json"
	"fmt"
	"image"
	"image/color"
	"image/draw"
	"image/png"
	"math"
	"os"
	"slices"

	"golang.org/x/image/font"
	"golang.org/x/image/font/basicfont"
	"golang.org/x/image/math/fixed"
)

// The chart is drawn with the standard library's image packages and the
// fixed 7×13 font of golang.org/x/image (maintained by the Go team): one
// chart of two lines did not seem worth a plotting library's dependencies
// (fonts, vector back ends) in the module every binary builds from.

var (
	colPipeline = color.RGBA{0x1f, 0x77, 0xb4, 0xff}
	colRaw      = color.RGBA{0xd6, 0x27, 0x28, 0xff}
	colAxis     = color.RGBA{0x33, 0x33, 0x33, 0xff}
	colGrid     = color.RGBA{0xdd, 0xdd, 0xdd, 0xff}
)

// writeChart draws documents/s against document size: the pipeline's and
// raw JetStream publish's, on a logarithmic scale.
func writeChart(path string, pts []ChartPoint) error {
	pts = slices.Clone(pts)
	slices.SortFunc(pts, func(a, b ChartPoint) int { return a.Size - b.Size })
	const w, h = 860, 480
	const left, right, top, bottom = 80, 230, 50, 60
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	draw.Draw(img, img.Bounds(), image.White, image.Point{}, draw.Src)

	lo, hi := math.Inf(1), math.Inf(-1)
	for _, p := range pts {
		for _, v := range []float64{p.Pipeline, p.Raw} {
			if v > 0 {
				lo, hi = math.Min(lo, v), math.Max(hi, v)
			}
		}
	}
	if math.IsInf(lo, 0) {
		return fmt.Errorf("no points to draw")
	}
	ylo, yhi := math.Floor(math.Log10(lo)), math.Ceil(math.Log10(hi))
	if yhi == ylo {
		yhi++
	}
	pw, ph := w-left-right, h-top-bottom
	y := func(v float64) int { return top + ph - int(math.Round((math.Log10(v)-ylo)/(yhi-ylo)*float64(ph))) }
	x := func(i int) int {
		if len(pts) == 1 {
			return left + pw/2
		}
		return left + 20 + i*(pw-40)/(len(pts)-1)
	}

	// Grid and y labels: every decade, with 2 and 5 between.
	for d := ylo; d <= yhi; d++ {
		for _, m := range []float64{1, 2, 5} {
			v := m * math.Pow(10, d)
			if math.Log10(v) > yhi+1e-9 {
				break
			}
			yy := y(v)
			hline(img, left, left+pw, yy, colGrid)
			label := humanRate(v)
			text(img, left-8-7*len(label), yy+4, label, colAxis)
		}
	}
	// Axes.
	hline(img, left, left+pw, top+ph, colAxis)
	vline(img, left, top, top+ph, colAxis)
	for i, p := range pts {
		xx := x(i)
		vline(img, xx, top+ph, top+ph+5, colAxis)
		l := humanSize(p.Size)
		text(img, xx-7*len(l)/2, top+ph+20, l, colAxis)
	}
	text(img, left+pw/2-7*len("document size (content bytes)")/2, h-15, "document size (content bytes)", colAxis)
	title := "Documents/s against document size (log scale)"
	text(img, left+pw/2-7*len(title)/2, 25, title, colAxis)
	text(img, 8, top-12, "per second", colAxis)

	series := []struct {
		name string
		c    color.RGBA
		v    func(ChartPoint) float64
	}{
		{"raw JetStream publish", colRaw, func(p ChartPoint) float64 { return p.Raw }},
		{"Tributary pipeline", colPipeline, func(p ChartPoint) float64 { return p.Pipeline }},
	}
	for si, s := range series {
		for i, p := range pts {
			if s.v(p) <= 0 {
				continue
			}
			if i > 0 && s.v(pts[i-1]) > 0 {
				line(img, x(i-1), y(s.v(pts[i-1])), x(i), y(s.v(p)), s.c)
			}
			dot(img, x(i), y(s.v(p)), 4, s.c)
		}
		ly := top + 20 + si*22
		line(img, left+pw+15, ly, left+pw+40, ly, s.c)
		dot(img, left+pw+27, ly, 4, s.c)
		text(img, left+pw+48, ly+4, s.name, colAxis)
	}
	f, err := os.Create(path) //nolint:gosec // the user's chosen output file
	if err != nil {
		return err
	}
	if err := png.Encode(f, img); err != nil {
		_ = f.Close()
		return err
	}
	return f.Close()
}

// replotChart draws the chart of a results file written by --out.
func replotChart(results, chart string) error {
	if chart == "" {
		return fmt.Errorf("--replot needs --chart")
	}
	b, err := os.ReadFile(results) //nolint:gosec // the user's chosen file
	if err != nil {
		return err
	}
	var rs []Result
	if err := json.Unmarshal(b, &rs); err != nil {
		return fmt.Errorf("%s: %w", results, err)
	}
	var pts []ChartPoint
	for _, r := range rs {
		var size, docs int
		if n, _ := fmt.Sscanf(r.Scenario, "pipeline size=%dB docs=%d", &size, &docs); n == 2 && r.Baseline != nil {
			pts = append(pts, ChartPoint{Size: size, Pipeline: r.Value, Raw: *r.Baseline})
		}
	}
	return writeChart(chart, pts)
}

func humanSize(b int) string {
	switch {
	case b == 0:
		return "metadata only"
	case b%1024 == 0:
		return fmt.Sprintf("%d KiB", b/1024)
	default:
		return fmt.Sprintf("%d B", b)
	}
}

func humanRate(v float64) string {
	switch {
	case v >= 1e6:
		return fmt.Sprintf("%gM", v/1e6)
	case v >= 1e3:
		return fmt.Sprintf("%gk", v/1e3)
	default:
		return fmt.Sprintf("%g", v)
	}
}

func text(img *image.RGBA, x, y int, s string, c color.Color) {
	d := &font.Drawer{Dst: img, Src: image.NewUniform(c), Face: basicfont.Face7x13, Dot: fixed.P(x, y)}
	d.DrawString(s)
}

func hline(img *image.RGBA, x0, x1, y int, c color.Color) {
	for x := x0; x <= x1; x++ {
		img.Set(x, y, c)
	}
}

func vline(img *image.RGBA, x, y0, y1 int, c color.Color) {
	for y := y0; y <= y1; y++ {
		img.Set(x, y, c)
	}
}

// line draws a 2-pixel line.
func line(img *image.RGBA, x0, y0, x1, y1 int, c color.Color) {
	n := max(abs(x1-x0), abs(y1-y0), 1)
	for i := 0; i <= n; i++ {
		px := x0 + (x1-x0)*i/n
		py := y0 + (y1-y0)*i/n
		for dx := 0; dx < 2; dx++ {
			for dy := 0; dy < 2; dy++ {
				img.Set(px+dx, py+dy, c)
			}
		}
	}
}

func dot(img *image.RGBA, cx, cy, r int, c color.Color) {
	for dx := -r; dx <= r; dx++ {
		for dy := -r; dy <= r; dy++ {
			if dx*dx+dy*dy <= r*r {
				img.Set(cx+dx, cy+dy, c)
			}
		}
	}
}

func abs(v int) int {
	if v < 0 {
		return -v
	}
	return v
}
