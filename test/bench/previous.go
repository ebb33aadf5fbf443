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
// which this run's must not fall behind ("must not get slower").
type previousRun struct {
	File    string        `json:"file"`
	Date    string        `json:"date,omitempty"`  // its "date" line
	Mctun   string        `json:"mctun,omitempty"` // its "mctun" line: the version measured
	Trial   string        `json:"trial,omitempty"` // its trial length, from the method ("3s")
	Rows    []previousRow `json:"rows,omitempty"`
	Problem string        `json:"problem,omitempty"` // why there is nothing to compare with
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
	prevRateCols = []string{"rate " + systemName(sysMctun), "rate mctun"}
	prevCPUCols  = []string{"CPU s/M " + systemName(sysMctun), "CPU s/M mctun"}
)

// parsePrevious reads the "Throughput and CPU" table of a report that markdownReport
// wrote, this version or an earlier one, finding its columns by their headers, and the
// trial length its method names.
func parsePrevious(data []byte) (previousRun, error) {
	var p previousRun
	var head []string
	inTable, tableDone := false, false
	for line := range strings.Lines(string(data)) {
		line = strings.TrimSpace(line)
		if _, after, ok := strings.Cut(line, "a trial sends "); ok && p.Trial == "" {
			if d, _, ok := strings.Cut(after, " of datagrams"); ok {
				p.Trial = d
			}
		}
		if strings.HasPrefix(line, "#") {
			tableDone = tableDone || (inTable && len(p.Rows) > 0)
			inTable = !tableDone && line == "### Throughput and CPU"
			continue
		}
		cells, isRow := mdCells(line)
		if !isRow || tableDone {
			continue
		}
		if !inTable {
			if len(cells) == 2 && p.Date == "" && cells[0] == "date" {
				p.Date = cells[1]
			}
			if len(cells) == 2 && p.Mctun == "" && cells[0] == "mctun" {
				p.Mctun = cells[1]
			}
			continue
		}
		if head == nil {
			head = cells
			continue
		}
		if isSeparator(cells) {
			continue
		}
		r, err := previousRowOf(head, cells)
		if err != nil {
			return p, err
		}
		p.Rows = append(p.Rows, r)
	}
	if head == nil {
		return p, errors.New("no \"Throughput and CPU\" table")
	}
	if len(p.Rows) == 0 {
		return p, errors.New("the \"Throughput and CPU\" table has no rows")
	}
	return p, nil
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
	return r, nil
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
