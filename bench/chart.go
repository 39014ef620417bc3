package main

import (
	"fmt"
	"image/color"
	"os"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgsvg"
)

var (
	blue   = color.RGBA{R: 31, G: 119, B: 180, A: 255}
	orange = color.RGBA{R: 255, G: 127, B: 14, A: 255}
	green  = color.RGBA{R: 44, G: 160, B: 44, A: 255}
	red    = color.RGBA{R: 214, G: 39, B: 40, A: 255}
	grey   = color.RGBA{R: 127, G: 127, B: 127, A: 255}
)

// drawChart writes one scenario's run as an SVG of three panels sharing
// the time axis: votes per second (accepted, shed, drained, with the
// ceilings), accepted latency, and live-tally lag.
func drawChart(path, run string, r *scenarioReport, ceilings []ceiling) error {
	if len(r.PerSecond) == 0 {
		return fmt.Errorf("no per-second series")
	}
	ceil := map[string]float64{}
	for _, c := range ceilings {
		ceil[c.Name] = c.OpsPerS
	}
	series := func(f func(perSecond) float64) plotter.XYs {
		xy := make(plotter.XYs, len(r.PerSecond))
		for i, s := range r.PerSecond {
			xy[i].X, xy[i].Y = float64(s.T), f(s)
		}
		return xy
	}
	line := func(p *plot.Plot, name string, c color.Color, xy plotter.XYs) error {
		l, err := plotter.NewLine(xy)
		if err != nil {
			return err
		}
		l.Color, l.Width = c, vg.Points(1.2)
		p.Add(l)
		p.Legend.Add(name, l)
		return nil
	}
	level := func(p *plot.Plot, name string, c color.Color, y float64) {
		if y <= 0 {
			return
		}
		f := plotter.NewFunction(func(float64) float64 { return y })
		f.Color, f.Dashes, f.Width = c, []vg.Length{vg.Points(4), vg.Points(3)}, vg.Points(1)
		p.Add(f)
		p.Legend.Add(name, f)
	}
	newPanel := func(title, y string) *plot.Plot {
		p := plot.New()
		p.Title.Text, p.X.Label.Text, p.Y.Label.Text = title, "seconds since the load began", y
		p.Legend.Top, p.Legend.Left = true, false
		p.Add(plotter.NewGrid())
		return p
	}

	rate := newPanel(fmt.Sprintf("%s — %s (offered up to %.0f/s)", run, r.Name, r.OfferedPerS), "per second")
	for _, s := range []struct {
		name string
		c    color.Color
		f    func(perSecond) float64
	}{
		{"accepted", blue, func(s perSecond) float64 { return float64(s.Accepted) }},
		{"shed (503)", red, func(s perSecond) float64 { return float64(s.Shed) }},
		{"drained rows", green, func(s perSecond) float64 { return s.DrainRows }},
	} {
		if err := line(rate, s.name, s.c, series(s.f)); err != nil {
			return err
		}
	}
	level(rate, "25 % of bare Gin (saturated)", grey, ceil["gin JSON endpoint"]/4)
	level(rate, "bare LWT", orange, ceil["cassandra LWT"])

	lat := newPanel("accepted latency", "ms")
	if err := line(lat, "p50", blue, series(func(s perSecond) float64 { return s.P50ms })); err != nil {
		return err
	}
	if err := line(lat, "p99", red, series(func(s perSecond) float64 { return s.P99ms })); err != nil {
		return err
	}
	level(lat, "100 ms", grey, 100)

	lag := newPanel("live-tally lag (hot poll)", "s")
	if err := line(lag, "oldest uncounted accepted vote", blue, series(func(s perSecond) float64 { return s.LiveLagS })); err != nil {
		return err
	}
	level(lag, "5 s (invariant 5, outside bursts)", grey, 5)

	const width, height = 24 * vg.Centimeter, 30 * vg.Centimeter
	img := vgsvg.New(width, height)
	dc := draw.New(img)
	plots := [][]*plot.Plot{{rate}, {lat}, {lag}}
	tiles := draw.Tiles{Rows: 3, Cols: 1, PadY: vg.Centimeter, PadTop: vg.Millimeter * 3, PadBottom: vg.Millimeter * 3,
		PadLeft: vg.Millimeter * 3, PadRight: vg.Millimeter * 3}
	canvases := plot.Align(plots, tiles, dc)
	for i := range plots {
		plots[i][0].Draw(canvases[i][0])
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := img.WriteTo(f); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
