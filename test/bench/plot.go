package main

import (
	"bytes"
	"context"
	"fmt"
	"math"
	"os/exec"
	"slices"
	"strings"
)

// drawPlot draws the rate plot into png with gnuplot.
func drawPlot(ctx context.Context, rep *report, png string) error {
	if _, err := exec.LookPath("gnuplot"); err != nil {
		return fmt.Errorf("gnuplot is not installed (apt-get install -y gnuplot-nox)")
	}
	script, ok := gnuplotScript(rep, png)
	if !ok {
		return fmt.Errorf("no rate to plot")
	}
	cmd := exec.CommandContext(ctx, "gnuplot")
	cmd.Stdin = strings.NewReader(script)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("gnuplot: %w: %s", err, strings.TrimSpace(out.String()))
	}
	return nil
}

// sizeColors tells the payload sizes apart; the systems differ by line style.
var sizeColors = []string{"#1f77b4", "#d62728", "#2ca02c", "#9467bd"}

// gnuplotScript is the gnuplot program that draws the highest loss-free rate against the
// number of members, one line per system and size (mctun's user-space path solid, its
// kernel path dash-dotted, VXLAN dashed, a colour per size) on a log scale with each value
// written next to its point (marked as in the table), mcsend's own ceiling per size as a
// dotted line, and a ring around every point where the ceiling, not the system, was the
// limit. A sweep where nothing passed has no point. ok is false when there is nothing to
// draw.
func gnuplotScript(rep *report, png string) (script string, ok bool) {
	var sizes, members []int
	for _, r := range rep.Rows {
		if !slices.Contains(sizes, r.Size) {
			sizes = append(sizes, r.Size)
		}
		if !slices.Contains(members, r.Members) {
			members = append(members, r.Members)
		}
	}
	slices.Sort(sizes)
	slices.Sort(members)
	var b strings.Builder
	fmt.Fprintf(&b, "set terminal pngcairo size 1200,680 font 'sans,10'\nset output %s\n", gpString(png))
	fmt.Fprintf(&b, "set title %s\n", gpString(fmt.Sprintf("Highest loss-free rate: mctun (user-space path, kernel path) vs kernel VXLAN head-end replication\\n%s, %d cores, Linux %s, %s",
		rep.Machine.CPU, rep.Machine.Cores, rep.Machine.Kernel, rep.Start.Format("2006-01-02"))))
	b.WriteString("set xlabel 'members (one source, N members)'\n")
	fmt.Fprintf(&b, "set ylabel %s\n", gpString(fmt.Sprintf("datagrams/s offered, every member < %.1f%% loss", 100*rep.Settings.MaxLoss)))
	// Rates span two orders of magnitude: a log scale keeps the low ones readable.
	// The plot ends at 70% of the width: the key (three systems per size) and the marks'
	// explanation below it share the column on its right, clear of the points.
	b.WriteString("set logscale x 2\nset logscale y 10\nset format y '%.0s%c'\nset grid xtics ytics mytics\n")
	b.WriteString("set rmargin at screen 0.70\nset key at screen 0.71,0.93 left top Left reverse\n")
	b.WriteString("set label 1 \"Values as in the table:\\n≥  mcsend's own ceiling passed without loss\\n    (the system is not the limit)\\ns   mcsend could not reach the rate asked\\n    (the sending path is the limit)\\n†  the kernel path forwarded less than 99%\\n    itself (see its share)\" at screen 0.715,0.30 left font ',9'\n")
	var tics []string
	for _, m := range members {
		tics = append(tics, fmt.Sprint(m))
	}
	fmt.Fprintf(&b, "set xtics (%s)\n", strings.Join(tics, ", "))
	if len(members) > 0 {
		fmt.Fprintf(&b, "set xrange [%g:%g]\n", float64(members[0])/1.3, float64(members[len(members)-1])*1.3)
	}

	var plots []string
	var capped strings.Builder
	for i, size := range sizes {
		color := sizeColors[i%len(sizeColors)]
		for _, system := range rep.systems() {
			if system == sysBase {
				continue // on the user-space path's line; the tables compare the two
			}
			var data strings.Builder
			for _, r := range rep.Rows {
				if r.Size != size {
					continue
				}
				pps, isCap, have := r.rate(system)
				if !have {
					continue // not measured, or nothing passed: no point on a log scale
				}
				fmt.Fprintf(&data, "%d %.0f %s\n", r.Members, pps, gpString(fmtSweep(r.Systems[system])+r.mark(system)))
				if isCap {
					fmt.Fprintf(&capped, "%d %.0f\n", r.Members, pps)
				}
			}
			if data.Len() == 0 {
				continue
			}
			name := fmt.Sprintf("$%s%d", strings.ReplaceAll(system, "-", "_"), size)
			fmt.Fprintf(&b, "%s << EOD\n%sEOD\n", name, data.String())
			style := lineStyles[system]
			plots = append(plots, fmt.Sprintf("%s using 1:2 with linespoints lw 2 ps 1.2 %s lc rgb '%s' title %s",
				name, style, color, gpString(fmt.Sprintf("%s, %d B", systemName(system), size))),
				fmt.Sprintf("%s using 1:2:3 with labels offset %s tc rgb '%s' notitle", name, labelOffset(system, i), color))
		}
		if c := rep.ceilingOf(size); c > 0 {
			plots = append(plots, fmt.Sprintf("%.0f with lines dt 3 lw 1 lc rgb '%s' title %s",
				c, color, gpString(fmt.Sprintf("mcsend alone, %d B", size))))
		}
	}
	if len(plots) == 0 {
		return "", false
	}
	fmt.Fprintf(&b, "set yrange [%s:%s]\n", yFloor(rep), yTop(rep))
	if capped.Len() > 0 {
		fmt.Fprintf(&b, "$capped << EOD\n%sEOD\n", capped.String())
		plots = append(plots, "$capped using 1:2 with points pt 6 ps 2.6 lw 1.5 lc rgb 'black' title 'at the mcsend ceiling (system not the limit)'")
	}
	b.WriteString("plot " + strings.Join(plots, ", \\\n     ") + "\n")
	return b.String(), true
}

// lineStyles tell the systems apart: dash type and point type.
var lineStyles = map[string]string{
	sysMctun:  "dt 1 pt 7", // solid, circles
	sysKernel: "dt 4 pt 9", // dash-dotted, triangles
	sysVXLAN:  "dt 2 pt 5", // dashed, squares
}

// labelOffset places the value label of a point, in characters: the kernel path's above its
// points, VXLAN's and the user-space path's below theirs, the first size's to the left and
// the next one's to the right, so that close values stay apart: the kernel path's and
// VXLAN's are meant to be close, and the user-space path's line runs below both.
func labelOffset(system string, sizeIndex int) string {
	x, y := -3, -1
	if sizeIndex%2 == 1 {
		x = 3
	}
	if system == sysKernel {
		y = 1
	}
	return fmt.Sprintf("%d,%d", x, y)
}

// yFloor is the bottom of the log-scale y axis: a power of ten at most half the lowest rate.
func yFloor(rep *report) string {
	low := math.Inf(1)
	for _, r := range rep.Rows {
		for s := range r.Systems {
			if pps, _, ok := r.rate(s); ok && pps > 0 {
				low = min(low, pps)
			}
		}
	}
	if math.IsInf(low, 1) {
		return "100"
	}
	return fmt.Sprintf("%.0f", math.Pow(10, math.Floor(math.Log10(low/2))))
}

// yTop is the top of the y axis: room above the highest ceiling for the labels, or
// gnuplot's choice when there is none.
func yTop(rep *report) string {
	top := 0.0
	for _, c := range rep.Ceilings {
		top = max(top, c.PPS)
	}
	if top == 0 {
		return "*"
	}
	return fmt.Sprintf("%.0f", 1.6*top)
}

// gpString quotes s for gnuplot as a double-quoted string, in which \n is a line break.
func gpString(s string) string {
	s = strings.ReplaceAll(s, `"`, `\"`)
	return `"` + s + `"`
}
