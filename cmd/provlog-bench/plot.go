package main

import (
	"fmt"
	"image/color"
	"os"
	"path/filepath"
	"time"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
)

// Colours of the two logs in every plot.
var (
	provlogColor = color.RGBA{R: 0x1f, G: 0x77, B: 0xb4, A: 0xff}
	tesseraColor = color.RGBA{R: 0xd6, G: 0x27, B: 0x28, A: 0xff}
)

// plots draws the run's plots into dir as PNG and SVG.
func (r *Results) plots(dir string) error {
	ss := r.summaries()
	if err := plotThroughput(ss, filepath.Join(dir, "throughput")); err != nil {
		return err
	}
	for _, mode := range []string{modeBatch, modeStream, modeSingle, modeHTTP} {
		p, t := lookup(ss, mode, "peak", "provlog"), lookup(ss, mode, "peak", "tessera")
		if p == nil && t == nil {
			continue
		}
		if err := plotLatency(mode, p, t, filepath.Join(dir, "latency-"+mode)); err != nil {
			return err
		}
	}
	if r.Scale != nil && len(r.Scale.Points) > 0 {
		return plotScale(r.Scale, filepath.Join(dir, "scale"))
	}
	return nil
}

// save writes a plot as base.png and base.svg.
func save(p *plot.Plot, w, h vg.Length, base string) error {
	for _, ext := range []string{".png", ".svg"} {
		if err := p.Save(w, h, base+ext); err != nil {
			return fmt.Errorf("saving plot %s: %w", base+ext, err)
		}
	}
	return nil
}

// plotThroughput draws peak appends/s per mode, provlog beside Tessera.
func plotThroughput(ss []*summary, base string) error {
	p := plot.New()
	p.Title.Text = "Durable appends/s at peak load (1 KiB entries)"
	p.Y.Label.Text = "entries/s"
	var names []string
	var pv, tv plotter.Values
	for _, mode := range []string{modeBatch, modeStream, modeSingle, modeHTTP} {
		ps, ts := lookup(ss, mode, "peak", "provlog"), lookup(ss, mode, "peak", "tessera")
		if ps == nil && ts == nil {
			continue
		}
		names = append(names, mode)
		pv, tv = append(pv, perSecOf(ps)), append(tv, perSecOf(ts))
	}
	if len(names) == 0 {
		return nil
	}
	w := vg.Points(18)
	for i, b := range []struct {
		name string
		v    plotter.Values
		c    color.Color
	}{{"provlog", pv, provlogColor}, {"Tessera POSIX", tv, tesseraColor}} {
		bars, err := plotter.NewBarChart(b.v, w)
		if err != nil {
			return fmt.Errorf("throughput plot: %w", err)
		}
		bars.Color, bars.LineStyle.Width = b.c, 0
		bars.Offset = vg.Length(2*i-1) * w / 2
		p.Add(bars)
		p.Legend.Add(b.name, bars)
	}
	p.Legend.Top = true
	p.NominalX(names...)
	p.Add(plotter.NewGrid())
	return save(p, 6*vg.Inch, 4*vg.Inch, base)
}

func perSecOf(s *summary) float64 {
	if s == nil {
		return 0
	}
	return s.perSec()
}

// plotLatency draws the distributions (CDF, log time axis) of ack latency
// and time to a signed checkpoint for one mode, provlog beside Tessera.
func plotLatency(mode string, ps, ts *summary, base string) error {
	p := plot.New()
	p.Title.Text = fmt.Sprintf("Latency at peak load, %s mode", mode)
	p.X.Label.Text = "milliseconds (log scale)"
	p.Y.Label.Text = "fraction of entries ≤ x"
	p.X.Scale, p.X.Tick.Marker = plot.LogScale{}, plot.LogTicks{Prec: -1}
	p.Y.Min, p.Y.Max = 0, 1
	for _, l := range []struct {
		s    *summary
		name string
		c    color.Color
	}{{ps, "provlog", provlogColor}, {ts, "Tessera POSIX", tesseraColor}} {
		if l.s == nil {
			continue
		}
		if err := addCDF(p, l.s.ack, l.name+": ack (durable index)", l.c, nil); err != nil {
			return err
		}
		dash := []vg.Length{vg.Points(4), vg.Points(3)}
		if err := addCDF(p, l.s.ttc, l.name+": in a signed checkpoint", l.c, dash); err != nil {
			return err
		}
	}
	p.Legend.Top, p.Legend.Left = false, false
	p.Legend.YOffs = vg.Points(12)
	p.Add(plotter.NewGrid())
	return save(p, 7*vg.Inch, 4.5*vg.Inch, base)
}

func addCDF(p *plot.Plot, sorted []time.Duration, name string, c color.Color, dashes []vg.Length) error {
	pts := cdf(sorted, 400)
	if len(pts) == 0 {
		return nil
	}
	xys := make(plotter.XYs, len(pts))
	for i, pt := range pts {
		xys[i].X, xys[i].Y = max(pt[0], 0.01), pt[1] // log scale: no zero
	}
	line, err := plotter.NewLine(xys)
	if err != nil {
		return fmt.Errorf("latency plot: %w", err)
	}
	line.Color, line.Width, line.Dashes = c, vg.Points(1.5), dashes
	p.Add(line)
	p.Legend.Add(name, line)
	return nil
}

// plotScale draws throughput and proof latency against log size.
func plotScale(s *ScaleResult, base string) error {
	tp := plot.New()
	tp.Title.Text = "provlog: append throughput as the log grows (AppendBatch 8 × 1024, 1 KiB)"
	tp.X.Label.Text = "log size (entries)"
	tp.Y.Label.Text = "entries/s (segment)"
	lp := plot.New()
	lp.Title.Text = "provlog: inclusion-proof latency as the log grows"
	lp.X.Label.Text = "log size (entries)"
	lp.Y.Label.Text = "milliseconds"
	var thr, p50, p99 plotter.XYs
	for _, pt := range s.Points {
		x := float64(pt.Size)
		thr = append(thr, plotter.XY{X: x, Y: pt.PerSec})
		p50 = append(p50, plotter.XY{X: x, Y: pt.Proof.P50})
		p99 = append(p99, plotter.XY{X: x, Y: pt.Proof.P99})
	}
	if err := addLinePoints(tp, thr, "entries/s", provlogColor); err != nil {
		return err
	}
	if err := addLinePoints(lp, p50, "p50", provlogColor); err != nil {
		return err
	}
	if err := addLinePoints(lp, p99, "p99", tesseraColor); err != nil {
		return err
	}
	tp.Y.Min, lp.Y.Min, tp.X.Min, lp.X.Min = 0, 0, 0, 0
	for _, p := range []*plot.Plot{tp, lp} {
		p.Add(plotter.NewGrid())
		p.Legend.Top = true
	}
	return saveStack([]*plot.Plot{tp, lp}, 7*vg.Inch, 7*vg.Inch, base)
}

func addLinePoints(p *plot.Plot, xys plotter.XYs, name string, c color.Color) error {
	l, pts, err := plotter.NewLinePoints(xys)
	if err != nil {
		return fmt.Errorf("scale plot: %w", err)
	}
	l.Color, pts.Color, l.Width = c, c, vg.Points(1.5)
	p.Add(l, pts)
	p.Legend.Add(name, l, pts)
	return nil
}

// saveStack draws plots one above the other into base.png and base.svg.
func saveStack(ps []*plot.Plot, w, h vg.Length, base string) error {
	rows := make([][]*plot.Plot, len(ps))
	for i, p := range ps {
		rows[i] = []*plot.Plot{p}
	}
	for _, ext := range []string{"png", "svg"} {
		img, err := draw.NewFormattedCanvas(w, h, ext)
		if err != nil {
			return fmt.Errorf("scale plot: %w", err)
		}
		dc := draw.New(img)
		tiles := draw.Tiles{Rows: len(ps), Cols: 1, PadY: vg.Points(12)}
		canvases := plot.Align(rows, tiles, dc)
		for i, p := range ps {
			p.Draw(canvases[i][0])
		}
		if err := writeCanvas(img, base+"."+ext); err != nil {
			return err
		}
	}
	return nil
}

func writeCanvas(c vg.CanvasWriterTo, path string) error {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("saving plot: %w", err)
	}
	if _, err := c.WriteTo(f); err != nil {
		f.Close()
		return fmt.Errorf("saving plot %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("saving plot %s: %w", path, err)
	}
	return nil
}
