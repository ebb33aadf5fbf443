package main

import (
	"errors"
	"fmt"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// previousRun is the user-space path's figures in the markdown report of an earlier run,
// and in the earlier runs that report kept: this run's must not fall behind them ("must not
// get slower").
type previousRun struct {
	File    string        `json:"file"`
	Date    string        `json:"date,omitempty"`  // its "date" line
	Mctun   string        `json:"mctun,omitempty"` // its "mctun" line: the version measured
	Trial   string        `json:"trial,omitempty"` // its trial length, from the method ("3s")
	Apps    string        `json:"apps,omitempty"`  // its applications' version (appsVersion); "" before there was one
	Rows    []previousRow `json:"rows,omitempty"`
	Problem string        `json:"problem,omitempty"` // why there is nothing to compare with
	// Earlier are the runs before it that its report kept (earlierTitle), oldest first.
	Earlier []previousRun `json:"earlier,omitempty"`
}

// appsVersion is the version of the benchmark's applications, mcsend and mcrecv, whose costs
// are in every CPU figure: figures measured with other versions do not compare. Version 2's
// sleep and read in blocking system calls and cost about half the CPU per datagram version
// 1's did; a report before version 2 names none.
const appsVersion = "2"

// appsText is how a report names the applications it measured with.
const appsText = appsVersion + " (mcsend sleeps and mcrecv reads in blocking system calls)"

// apps is the version of the applications the run measured with.
func (p *previousRun) apps() string {
	if p.Apps == "" {
		return "1"
	}
	return p.Apps
}

// earlierKept is how many earlier runs "must not get slower" compares with, and a report
// keeps for the next run: the previous one and those before it.
const earlierKept = 5

// earlierTitle heads the report's table of the earlier runs' figures.
const earlierTitle = "## The user-space path in earlier runs"

// runs are the earlier runs to compare with, oldest first: the runs p's report kept and p
// itself, the last earlierKept of them; none when p is nil or could not be read.
func (p *previousRun) runs() []previousRun {
	if p == nil || p.Problem != "" {
		return nil
	}
	last := *p
	last.Earlier = nil
	all := append(slices.Clone(p.Earlier), last)
	return all[max(0, len(all)-earlierKept):]
}

// previousRow is one (members, size) of an earlier run: the user-space path's loss-free rate
// and CPU per million delivered, each if it was there.
type previousRow struct {
	Members  int     `json:"members"`
	Size     int     `json:"size"`
	Rate     float64 `json:"rate_pps"`
	HaveRate bool    `json:"have_rate"`
	CPU      float64 `json:"cpu_s_per_million"`
	HaveCPU  bool    `json:"have_cpu"`
	CPURate  float64 `json:"cpu_rate_pps,omitempty"` // the rate of the CPU runs; 0 if not given
	// VXLAN's in the same run, which "must not get slower" divides by: runs on hosts of
	// different speed compare as ratios measured side by side.
	VXLANRate     float64 `json:"vxlan_rate_pps,omitempty"`
	HaveVXLANRate bool    `json:"have_vxlan_rate,omitempty"`
	VXLANCPU      float64 `json:"vxlan_cpu_s_per_million,omitempty"`
	HaveVXLANCPU  bool    `json:"have_vxlan_cpu,omitempty"`
}

// row is the earlier run's row at (members, size), or nil when it has none (or p is nil).
func (p *previousRun) row(members, size int) *previousRow {
	if p == nil {
		return nil
	}
	for i := range p.Rows {
		if p.Rows[i].Members == members && p.Rows[i].Size == size {
			return &p.Rows[i]
		}
	}
	return nil
}

// readPrevious reads the report of an earlier run: -previous, or else the -out file as it
// is before this run writes over it. nil when there is none.
func readPrevious(opt options) *previousRun {
	path := opt.previous
	if path == "" {
		path = opt.out
	}
	if path == "" {
		return nil
	}
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) && opt.previous == "" {
		return nil // the first run: nothing to compare with
	}
	if err != nil {
		return &previousRun{File: path, Problem: err.Error()}
	}
	p, err := parsePrevious(data)
	p.File = path
	if err != nil {
		p.Problem = err.Error()
	}
	return &p
}

// The user-space path's columns, as this benchmark names them now and as it named them
// before the kernel path was measured beside it.
var (
	prevRateCols = []string{"rate " + systemName(sysMctun), "rate mctun", "rate"}
	prevCPUCols  = []string{"CPU s/M " + systemName(sysMctun), "CPU s/M mctun", "CPU s/M"}
	// VXLAN's, in both tables.
	prevVXLANRateCol = "rate " + systemName(sysVXLAN)
	prevVXLANCPUCol  = "CPU s/M " + systemName(sysVXLAN)
)

// parsePrevious reads the "Throughput and CPU" table of a report that markdownReport
// wrote, this version or an earlier one, finding its columns by their headers, the trial
// length its method names, and the earlier runs it kept.
func parsePrevious(data []byte) (previousRun, error) {
	var p previousRun
	text := string(data)
	if _, after, ok := strings.Cut(text, "a trial sends "); ok {
		if d, _, ok := strings.Cut(after, " of datagrams"); ok {
			p.Trial = d
		}
	}
	tables := mdTables(text)
	for _, cells := range tables[reportTitle] {
		if len(cells) == 2 && cells[0] == "date" {
			p.Date = cells[1]
		}
		if len(cells) == 2 && cells[0] == "mctun" {
			p.Mctun = cells[1]
		}
		if len(cells) == 2 && cells[0] == "applications" {
			p.Apps, _, _ = strings.Cut(cells[1], " ")
		}
	}
	t, ok := tables[throughputTitle]
	if !ok {
		return p, errors.New("no \"Throughput and CPU\" table")
	}
	if len(t) < 2 {
		return p, errors.New("the \"Throughput and CPU\" table has no rows")
	}
	for _, cells := range t[1:] {
		r, err := previousRowOf(t[0], cells)
		if err != nil {
			return p, err
		}
		p.Rows = append(p.Rows, r)
	}
	if t, ok := tables[earlierTitle]; ok {
		var err error
		if p.Earlier, err = parseEarlier(t); err != nil {
			return p, fmt.Errorf("%q: %w", strings.TrimLeft(earlierTitle, "# "), err)
		}
	}
	return p, nil
}

// parseEarlier reads the table earlierTable wrote, header first: a row for each (members, size)
// of each run, oldest first, which it puts together again into runs.
func parseEarlier(t [][]string) ([]previousRun, error) {
	var runs []previousRun
	if len(t) == 0 {
		return nil, nil
	}
	di, vi, ti := slices.Index(t[0], "date"), slices.Index(t[0], "mctun"), slices.Index(t[0], "trial")
	ai := slices.Index(t[0], "apps") // none before appsVersion 2
	if di < 0 || vi < 0 || ti < 0 {
		return nil, errors.New("no date, mctun or trial column")
	}
	for _, cells := range t[1:] {
		r, err := previousRowOf(t[0], cells)
		if err != nil {
			return nil, err
		}
		run := previousRun{Date: noDash(cells[di]), Mctun: noDash(cells[vi]), Trial: noDash(cells[ti])}
		if ai >= 0 {
			run.Apps = noDash(cells[ai])
		}
		i := slices.IndexFunc(runs, func(p previousRun) bool {
			return p.Date == run.Date && p.Mctun == run.Mctun && p.Trial == run.Trial && p.Apps == run.Apps
		})
		if i < 0 {
			runs = append(runs, run)
			i = len(runs) - 1
		}
		runs[i].Rows = append(runs[i].Rows, r)
	}
	return runs, nil
}

// previousRowOf reads one row of the table whose header is head.
func previousRowOf(head, cells []string) (previousRow, error) {
	var r previousRow
	if len(cells) != len(head) {
		return r, fmt.Errorf("a row of %d cells under a header of %d: %q", len(cells), len(head), cells)
	}
	col := func(names ...string) int {
		return slices.IndexFunc(head, func(h string) bool { return slices.Contains(names, h) })
	}
	mi, si, ri, ci, pi := col("members"), col("payload B"), col(prevRateCols...), col(prevCPUCols...), col("CPU run pps")
	vri, vci := col(prevVXLANRateCol), col(prevVXLANCPUCol)
	if mi < 0 || si < 0 {
		return r, errors.New("the \"Throughput and CPU\" table has no members or payload B column")
	}
	var err error
	if r.Members, err = strconv.Atoi(cells[mi]); err != nil {
		return r, fmt.Errorf("members %q: not a number", cells[mi])
	}
	if r.Size, err = strconv.Atoi(cells[si]); err != nil {
		return r, fmt.Errorf("payload B %q: not a number", cells[si])
	}
	if ri >= 0 {
		r.Rate, r.HaveRate = parsePPS(cells[ri])
	}
	if ci >= 0 {
		r.CPU, r.HaveCPU = parseNum(cells[ci])
	}
	if pi >= 0 {
		r.CPURate, _ = parsePPS(cells[pi])
	}
	if vri >= 0 {
		r.VXLANRate, r.HaveVXLANRate = parsePPS(cells[vri])
	}
	if vci >= 0 {
		r.VXLANCPU, r.HaveVXLANCPU = parseNum(cells[vci])
	}
	return r, nil
}

// noDash is a cell's text, "" for "-" (nothing).
func noDash(cell string) string {
	if cell == "-" {
		return ""
	}
	return cell
}

// mdTables reads the first table under each heading of a markdown text (the heading's
// whole line, "### Throughput and CPU"): its header and rows, each as its cells, without the
// line under the header.
func mdTables(text string) map[string][][]string {
	tables := map[string][][]string{}
	heading, done := "", map[string]bool{}
	for line := range strings.Lines(text) {
		line = strings.TrimSpace(line)
		if strings.HasPrefix(line, "#") {
			heading = line
			continue
		}
		cells, isRow := mdCells(line)
		switch {
		case isRow && !done[heading]:
			if !isSeparator(cells) {
				tables[heading] = append(tables[heading], cells)
			}
		case !isRow && len(tables[heading]) > 0:
			done[heading] = true
		}
	}
	return tables
}

// mdCells splits a markdown table line into its trimmed cells.
func mdCells(line string) ([]string, bool) {
	if !strings.HasPrefix(line, "|") || !strings.HasSuffix(line, "|") || len(line) < 2 {
		return nil, false
	}
	cells := strings.Split(line[1:len(line)-1], "|")
	for i := range cells {
		cells[i] = strings.TrimSpace(cells[i])
	}
	return cells, true
}

var separatorCell = regexp.MustCompile(`^:?-+:?$`)

// isSeparator reports whether cells are the line under a table's header.
func isSeparator(cells []string) bool {
	for _, c := range cells {
		if !separatorCell.MatchString(c) {
			return false
		}
	}
	return true
}

// parsePPS reads a rate as fmtSweep shows it ("32.2k", "≥99.5k", "116.1k s", "840 ?",
// "12.0k †"); "-" and "0" (not measured, nothing passed) are not rates.
func parsePPS(cell string) (float64, bool) {
	s := strings.TrimPrefix(strings.TrimSpace(cell), "≥")
	s, _, _ = strings.Cut(s, " ")
	mult := 1.0
	if k, ok := strings.CutSuffix(s, "k"); ok {
		s, mult = k, 1000
	}
	x, err := strconv.ParseFloat(s, 64)
	if err != nil || !(x > 0) {
		return 0, false
	}
	return x * mult, true
}

// parseNum reads a figure as fmtNum shows it; "-" is none.
func parseNum(cell string) (float64, bool) {
	s, _, _ := strings.Cut(strings.TrimSpace(cell), " ")
	x, err := strconv.ParseFloat(s, 64)
	if err != nil || !(x > 0) {
		return 0, false
	}
	return x, true
}
