package main

import (
	"io"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestParseOptionsDefaults(t *testing.T) {
	o, err := parseOptions(nil, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(o.members, []int{1, 4, 16}) || !reflect.DeepEqual(o.sizes, []int{64, 1200}) ||
		!reflect.DeepEqual(o.systems, []string{sysMctun, sysKernel, sysVXLAN}) {
		t.Fatalf("defaults: members %v sizes %v systems %v", o.members, o.sizes, o.systems)
	}
	if o.trial != 3*time.Second || o.maxLoss != 0.001 || o.attempts != 2 || o.rounds != 9 || o.latencyRate != 10000 || !o.ceiling || !o.big {
		t.Fatalf("defaults: %+v", o)
	}
	if o.out != "" || o.plot != "" || o.previous != "" {
		t.Fatalf("go run alone writes no files; got -out %q -plot %q -previous %q", o.out, o.plot, o.previous)
	}
}

func TestParseOptionsSubset(t *testing.T) {
	o, err := parseOptions([]string{"-members", "16, 1", "-sizes", "64", "-systems", "VXLAN,mctun,vxlan", "-trial", "1s", "-big=false"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(o.members, []int{1, 16}) || !reflect.DeepEqual(o.sizes, []int{64}) ||
		!reflect.DeepEqual(o.systems, []string{sysMctun, sysVXLAN}) || o.trial != time.Second || o.big {
		t.Fatalf("got members %v sizes %v systems %v trial %v big %v", o.members, o.sizes, o.systems, o.trial, o.big)
	}
}

func TestParseOptionsBase(t *testing.T) {
	o, err := parseOptions([]string{"-base-mctun", "bin/mctun-base", "-systems", "vxlan,mctun"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if o.baseMctun != "bin/mctun-base" || !reflect.DeepEqual(o.systems, []string{sysMctun, sysBase, sysVXLAN}) {
		t.Fatalf("-base-mctun adds the base system: got %q, systems %v", o.baseMctun, o.systems)
	}
	for _, systems := range []string{"mctun-base", "mctun,mctun-base,vxlan"} {
		if _, err := parseOptions([]string{"-systems", systems}, io.Discard); err == nil || !strings.Contains(err.Error(), "-base-mctun adds mctun-base") {
			t.Errorf("-systems %s: got %v, want the base named only by -base-mctun", systems, err)
		}
	}
}

func TestParseSystems(t *testing.T) {
	for in, want := range map[string][]string{
		"vxlan,mctun-kernel":        {sysKernel, sysVXLAN},
		"kernel, user":              {sysMctun, sysKernel},
		"Mctun-Kernel,kernel,vxlan": {sysKernel, sysVXLAN},
		"vxlan,mctun,mctun-kernel":  {sysMctun, sysKernel, sysVXLAN},
		"mctun":                     {sysMctun},
	} {
		got, err := parseSystems(in)
		if err != nil || !reflect.DeepEqual(got, want) {
			t.Errorf("%q: got %v, %v; want %v", in, got, err, want)
		}
	}
}

func TestParseOptionsErrors(t *testing.T) {
	for _, args := range [][]string{
		{"-members", "0"}, {"-members", "199"}, {"-members", "1,1"}, {"-members", ""}, {"-members", "x"},
		{"-sizes", "8"}, {"-sizes", "9000"}, {"-systems", "gre"}, {"-systems", ""}, {"-systems", "mctun,ebpf"},
		{"-trial", "10ms"}, {"-loss", "0"}, {"-attempts", "0"}, {"-rounds", "11"}, {"-start", "1"}, {"-precision", "1"},
		{"-cpu-rate", "5"}, {"-big-count", "0"}, {"extra"},
	} {
		if _, err := parseOptions(args, io.Discard); err == nil {
			t.Errorf("%q: no error", args)
		}
	}
}

func TestCommandLine(t *testing.T) {
	got := commandLine([]string{"-mctun", "bin/mctun", "-members", "1,4", "-out", "my file.md", ""})
	want := `go run ./test/bench -mctun bin/mctun -members 1,4 -out 'my file.md' ''`
	if got != want {
		t.Fatalf("got %s, want %s", got, want)
	}
}
