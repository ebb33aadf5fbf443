//go:build e2e

package test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"mctun/test/mcapp"
	"mctun/test/topo"
)

// The Prometheus endpoint, scraped by a real Prometheus server (Debian's prometheus package)
// during a stream: once the stream has ended and Prometheus has scraped again, its HTTP API
// gives the same counts as mctun stats --json. The source serves on loopback (the default an
// operator should start from), the member on its own address, as a central Prometheus needs;
// Prometheus runs in the source's namespace and reaches both.
func TestMetricsPrometheus(t *testing.T) {
	onEachDatapath(t, func(t *testing.T, dp string) {
		w := newWorldOn(t, 4, dp)
		src, mbr := w.src, w.mbrs[0]
		srcTarget, mbrTarget := "127.0.0.1:9477", mbr.Addr.String()+":9477"
		w.up(mbr, memberConfig+"\n[metrics]\nlisten = \""+mbrTarget+"\"\n")
		for _, m := range w.mbrs[1:] {
			w.up(m, memberConfig)
		}
		w.up(src, sourceConfig+"\n[metrics]\nlisten = \""+srcTarget+"\"\nper_member = true\n")
		if st := w.mctun(src, "status"); !strings.Contains(st.stdout, "metrics: http://"+srcTarget+"/metrics") {
			t.Errorf("mctun status does not say where the metrics are:\n%s", st.stdout)
		}

		prom := startPrometheus(t, w, src, srcTarget, mbrTarget)
		prom.waitUp(t, srcTarget, mbrTarget)

		// The stream: 5,000 datagrams over 5 s, so that Prometheus scrapes (every second)
		// while it flows.
		const n = 5000
		streamStart := time.Now()
		rs := w.receive(w.mbrs, mcapp.RecvOptions{Group: group, Port: 65535, Count: n, Idle: 3 * time.Second, Timeout: time.Minute})
		w.send(src, mcapp.SendOptions{Group: group, Port: 65535, Count: n, Size: 200, Rate: 1000})
		for i, rep := range w.reports(rs) {
			w.checkStream(w.mbrs[i].Name, rep, n, "198.18.1.2")
		}
		srcStats, mbrStats := w.status(src), w.status(mbr)
		statsRead := time.Now()

		// Scraped during the stream: a sample strictly between none and all of it, on both.
		window := fmt.Sprintf("[%ds]", int(time.Since(streamStart).Seconds())+5)
		for _, q := range []string{
			`mctun_sender_group_packets_total{instance="` + srcTarget + `",group="224.1.2.3",port="65535"}` + window,
			`mctun_receiver_packets_total{instance="` + mbrTarget + `",source="198.18.1.2",group="224.1.2.3"}` + window,
		} {
			if !prom.sampledBetween(t, q, 0, n) {
				t.Errorf("%s: no sample taken during the stream (none strictly between 0 and %d)", q, n)
			}
		}

		// Once Prometheus has scraped both after mctun stats was read, they agree.
		prom.waitScrapedAfter(t, statsRead, srcTarget, mbrTarget)
		g := srcStats.Source.Stats.Groups[0]
		if g.Packets != n || len(g.Members) != 3 {
			t.Fatalf("mctun stats on the source: group %+v, want %d packets to 3 members", g, n)
		}
		want := map[string]uint64{
			`mctun_sender_group_packets_total{group="224.1.2.3",port="65535"}`:     g.Packets,
			`mctun_sender_group_bytes_total{group="224.1.2.3",port="65535"}`:       g.Bytes,
			`mctun_sender_group_send_errors_total{group="224.1.2.3",port="65535"}`: g.SendErrors,
			`mctun_sender_group_members{group="224.1.2.3",port="65535"}`:           uint64(g.MemberCount),
			`mctun_sender_captured_packets_total{interface="eth0"}`:                srcStats.Source.Captures[0].Packets,
			`mctun_sender_kernel_dropped_packets_total{interface="eth0"}`:          srcStats.Source.Captures[0].KernelDrop,
			`mctun_sender_capture_truncated_packets_total{interface="eth0"}`:       srcStats.Source.Captures[0].Truncated,
		}
		for _, m := range g.Members {
			l := fmt.Sprintf(`{group="224.1.2.3",port="65535",member="%s"}`, m.Address)
			want["mctun_sender_member_packets_total"+l] = m.Packets
			want["mctun_sender_member_bytes_total"+l] = m.Bytes
			want["mctun_sender_member_send_errors_total"+l] = m.Errors
		}
		for reason, v := range srcStats.Source.Stats.Drops {
			want[fmt.Sprintf(`mctun_sender_dropped_packets_total{reason="%s"}`, reason)] = v
		}
		prom.expect(t, srcTarget, want)

		f := mbrStats.flow("198.18.1.2", "224.1.2.3")
		if f.Packets != n {
			t.Fatalf("mctun stats on %s: flow %+v, want %d packets", mbr, f, n)
		}
		flow := `{source="198.18.1.2",group="224.1.2.3"}`
		want = map[string]uint64{
			"mctun_receiver_packets_total" + flow:           f.Packets,
			"mctun_receiver_bytes_total" + flow:             f.Bytes,
			"mctun_receiver_lost_packets" + flow:            uint64(f.Lost),
			"mctun_receiver_reordered_packets_total" + flow: f.Reordered,
			"mctun_receiver_duplicate_packets_total" + flow: f.Duplicates,
			"mctun_receiver_sender_restarts_total" + flow:   f.Restarts,
			"mctun_receiver_kernel_dropped_packets_total":   mbrStats.Member.SocketDrops,
			// Not mctun_receiver_host_packets_total: the host's own IGMP reports move it
			// at any time, the stream's end included (mcrecv leaving the group).
		}
		for reason, v := range mbrStats.Member.Stats.Drops {
			want[fmt.Sprintf(`mctun_receiver_dropped_packets_total{reason="%s"}`, reason)] = v
		}
		prom.expect(t, mbrTarget, want)

		// What the endpoints serve passes promtool's lint.
		for _, target := range []string{srcTarget, mbrTarget} {
			body, err := nsGet(src, "http://"+target+"/metrics")
			if err != nil {
				t.Fatal(err)
			}
			cmd := exec.Command("promtool", "check", "metrics")
			cmd.Stdin = strings.NewReader(body)
			if out, err := cmd.CombinedOutput(); err != nil || len(bytes.TrimSpace(out)) > 0 {
				t.Errorf("promtool check metrics on %s: %v\n%s", target, err, out)
			}
		}
	})
}

// The endpoint's life: an address that cannot be bound fails mctun up with the key and the
// address, and changes nothing; a reload moves it, drops a removed group's series and the
// per-member ones when they are switched off, or is refused whole when the new address
// cannot be bound; reloads and commands are counted.
func TestMetricsReload(t *testing.T) {
	onEachDatapath(t, func(t *testing.T, dp string) {
		w := newWorldOn(t, 4, dp)
		h0, h1 := w.src, w.mbrs[0]

		// mctun up refuses an address it cannot bind, before it changes anything.
		var taken net.Listener
		if err := h1.Do(func() (err error) { taken, err = net.Listen("tcp", "127.0.0.1:9477"); return err }); err != nil {
			t.Fatal(err)
		}
		before := w.snapshot(h1)
		for _, tt := range []struct{ listen, want string }{
			{"127.0.0.1:9477", "metrics.listen 127.0.0.1:9477: bind: address already in use"},
			{"198.18.99.1:9477", "metrics.listen 198.18.99.1:9477: bind: cannot assign requested address"},
		} {
			r := w.mctun(h1, "up", "-c", w.writeConfig(h1, memberConfig+"\n[metrics]\nlisten = \""+tt.listen+"\"\n"))
			if r.code != 1 || !strings.Contains(r.stderr, tt.want) {
				t.Errorf("mctun up with metrics.listen %s: %v\nwant exit 1 and %q", tt.listen, r, tt.want)
			}
			if r := w.mctun(h1, "status"); r.code != 3 {
				t.Errorf("mctun status after a refused up: %v; want exit 3", r)
			}
			if after := w.snapshot(h1); after != before {
				t.Errorf("host changed by a refused up:\nbefore:\n%s\nafter:\n%s", before, after)
			}
		}
		taken.Close()

		twoGroups := sourceConfig + `
[[source.group]]
address = "224.9.9.9"
members = ["198.18.2.2"]
`
		w.up(h0, twoGroups+"\n[metrics]\nlisten = \"127.0.0.1:9477\"\nper_member = true\n")
		m := scrapeSeries(t, h0, "127.0.0.1:9477")
		for _, s := range []string{
			`mctun_sender_group_members{group="224.1.2.3",port="65535"}`,
			`mctun_sender_group_members{group="224.9.9.9",port=""}`,
			`mctun_sender_member_packets_total{group="224.9.9.9",member="198.18.2.2:4754",port=""}`,
			`mctun_datapath_info{datapath="` + dp + `"}`,
		} {
			if _, ok := m[s]; !ok {
				t.Errorf("no %s in the first scrape", s)
			}
		}

		// A reload that moves the endpoint, removes a group and switches per-member series off.
		w.writeConfig(h0, sourceConfig+"\n[metrics]\nlisten = \"127.0.0.1:9478\"\n")
		r := w.mctun(h0, "reload")
		for _, c := range []string{"- group 224.9.9.9", "metrics.listen 127.0.0.1:9477 -> 127.0.0.1:9478", "metrics.per_member true -> false"} {
			if r.code != 0 || !strings.Contains(r.stdout, c) {
				t.Errorf("mctun reload: %v\nwant %q", r, c)
			}
		}
		if _, err := nsGet(h0, "http://127.0.0.1:9477/metrics"); err == nil {
			t.Errorf("the old address still serves after the reload")
		}
		m = scrapeSeries(t, h0, "127.0.0.1:9478")
		for s := range m {
			if strings.Contains(s, "224.9.9.9") || strings.HasPrefix(s, "mctun_sender_member_") {
				t.Errorf("after the reload: %s is still served", s)
			}
		}
		if m[`mctun_sender_group_members{group="224.1.2.3",port="65535"}`] != 3 || m[`mctun_reloads_total{result="applied"}`] != 1 {
			t.Errorf("after the reload: members %v, reloads applied %v; want 3 and 1",
				m[`mctun_sender_group_members{group="224.1.2.3",port="65535"}`], m[`mctun_reloads_total{result="applied"}`])
		}

		// A reload to an address that is taken is refused whole: the group it adds is not there.
		if err := h0.Do(func() (err error) { taken, err = net.Listen("tcp", "127.0.0.1:9479"); return err }); err != nil {
			t.Fatal(err)
		}
		w.writeConfig(h0, twoGroups+"\n[metrics]\nlisten = \"127.0.0.1:9479\"\n")
		r = w.mctun(h0, "reload")
		if r.code == 0 || !strings.Contains(r.stderr, "metrics.listen 127.0.0.1:9479: bind: address already in use") {
			t.Errorf("mctun reload to a taken address: %v", r)
		}
		taken.Close()
		m = scrapeSeries(t, h0, "127.0.0.1:9478")
		if _, ok := m[`mctun_sender_group_members{group="224.9.9.9",port=""}`]; ok || m[`mctun_reloads_total{result="refused"}`] != 1 {
			t.Errorf("after a refused reload: group 224.9.9.9 served %t, reloads refused %v; want false and 1", ok, m[`mctun_reloads_total{result="refused"}`])
		}

		// Management commands: applied and refused are counted, and what they add is served.
		if r := w.mctun(h0, "group", "add", "224.5.5.5", "--member", "198.18.3.2"); r.code != 0 {
			t.Errorf("mctun group add: %v", r)
		}
		if r := w.mctun(h0, "group", "del", "224.6.6.6"); r.code == 0 {
			t.Errorf("mctun group del of no group succeeded: %v", r)
		}
		m = scrapeSeries(t, h0, "127.0.0.1:9478")
		if m[`mctun_sender_group_members{group="224.5.5.5",port=""}`] != 1 || m[`mctun_commands_total{result="applied"}`] != 1 || m[`mctun_commands_total{result="refused"}`] != 1 {
			t.Errorf("after the commands: group 224.5.5.5 members %v, commands applied %v, refused %v; want 1, 1, 1",
				m[`mctun_sender_group_members{group="224.5.5.5",port=""}`], m[`mctun_commands_total{result="applied"}`], m[`mctun_commands_total{result="refused"}`])
		}
	})
}

// nsGet GETs url from inside h's namespace.
func nsGet(h *topo.Host, url string) (string, error) {
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		DisableKeepAlives: true,
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			var c net.Conn
			err := h.Do(func() (err error) {
				var d net.Dialer
				c, err = d.DialContext(ctx, network, addr)
				return err
			})
			return c, err
		},
	}}
	resp, err := client.Get(url)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err == nil && resp.StatusCode != http.StatusOK {
		err = fmt.Errorf("GET %s: %s: %s", url, resp.Status, body)
	}
	return string(body), err
}

// scrapeSeries scrapes the endpoint at target in h's namespace and returns every series of
// the exposition, `name{labels}` as written, with its value.
func scrapeSeries(t *testing.T, h *topo.Host, target string) map[string]float64 {
	t.Helper()
	body, err := nsGet(h, "http://"+target+"/metrics")
	if err != nil {
		t.Fatalf("%s: scrape %s: %v", h, target, err)
	}
	m := map[string]float64{}
	for _, line := range strings.Split(body, "\n") {
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			t.Fatalf("%s: scrape %s: %q: %v", h, target, line, err)
		}
		m[line[:i]] = v
	}
	return m
}

// prometheus is a Prometheus server the test runs in a host's namespace.
type prometheus struct {
	host *topo.Host
	api  string // http://127.0.0.1:PORT/api/v1/
	out  *lockedBuffer
}

// startPrometheus runs Debian's prometheus in h, scraping targets every second, with its
// storage in a temporary directory and its API on a free loopback port, until the test ends.
func startPrometheus(t *testing.T, w *world, h *topo.Host, targets ...string) *prometheus {
	t.Helper()
	bin, err := exec.LookPath("prometheus")
	if err != nil {
		t.Fatal("prometheus is not installed (apt-get install prometheus): the metrics test needs a real Prometheus server")
	}
	var port int
	if err := h.Do(func() error {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return err
		}
		port = ln.Addr().(*net.TCPAddr).Port
		return ln.Close()
	}); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	quoted := make([]string, len(targets))
	for i, tg := range targets {
		quoted[i] = strconv.Quote(tg)
	}
	cfg := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(cfg, []byte(fmt.Sprintf(`global:
  scrape_interval: 1s
  scrape_timeout: 1s
scrape_configs:
  - job_name: mctun
    static_configs:
      - targets: [%s]
`, strings.Join(quoted, ", "))), 0o644); err != nil {
		t.Fatal(err)
	}
	p := &prometheus{host: h, api: fmt.Sprintf("http://127.0.0.1:%d/api/v1/", port), out: &lockedBuffer{}}
	cmd := h.Command(w.ctx, bin, "--config.file="+cfg, "--storage.tsdb.path="+filepath.Join(dir, "data"),
		fmt.Sprintf("--web.listen-address=127.0.0.1:%d", port), "--log.level=warn")
	cmd.Stdout, cmd.Stderr = p.out, p.out
	if err := cmd.Start(); err != nil {
		t.Fatalf("%s: start prometheus: %v", h, err)
	}
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-done
		}
		if t.Failed() {
			t.Logf("prometheus's log:\n%s", p.out.String())
		}
	})
	return p
}

// lockedBuffer is a bytes.Buffer a process writes while the test may read it.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// sample is one series of a query's result: its labels and its values, one for an instant
// vector, every sample in the window for a range.
type sample struct {
	labels map[string]string
	values []float64
	times  []float64 // seconds since 1970
}

// query runs an instant query through the HTTP API.
func (p *prometheus) query(q string) ([]sample, error) {
	body, err := nsGet(p.host, p.api+"query?query="+url.QueryEscape(q))
	if err != nil {
		return nil, err
	}
	var resp struct {
		Status string `json:"status"`
		Error  string `json:"error"`
		Data   struct {
			ResultType string `json:"resultType"`
			Result     []struct {
				Metric map[string]string `json:"metric"`
				Value  []any             `json:"value"`
				Values [][]any           `json:"values"`
			} `json:"result"`
		} `json:"data"`
	}
	if err := json.Unmarshal([]byte(body), &resp); err != nil {
		return nil, fmt.Errorf("query %s: %v: %s", q, err, body)
	}
	if resp.Status != "success" {
		return nil, fmt.Errorf("query %s: %s", q, resp.Error)
	}
	var out []sample
	for _, r := range resp.Data.Result {
		s := sample{labels: r.Metric}
		points := r.Values
		if r.Value != nil {
			points = [][]any{r.Value}
		}
		for _, pt := range points {
			if len(pt) != 2 {
				return nil, fmt.Errorf("query %s: a point %v", q, pt)
			}
			ts, _ := pt[0].(float64)
			str, _ := pt[1].(string)
			v, err := strconv.ParseFloat(str, 64)
			if err != nil {
				return nil, fmt.Errorf("query %s: value %v: %v", q, pt[1], err)
			}
			s.values = append(s.values, v)
			s.times = append(s.times, ts)
		}
		out = append(out, s)
	}
	return out, nil
}

// poll runs q until ok says its result is what the test waits for, for at most 30 s.
func (p *prometheus) poll(t *testing.T, what, q string, ok func([]sample) bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	var last []sample
	var err error
	for time.Now().Before(deadline) {
		if last, err = p.query(q); err == nil && ok(last) {
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("prometheus: %s: not within 30s: %s = %+v, %v", what, q, last, err)
}

// waitUp waits until Prometheus has scraped every target successfully.
func (p *prometheus) waitUp(t *testing.T, targets ...string) {
	t.Helper()
	p.poll(t, "targets up", `up{job="mctun"} == 1`, func(s []sample) bool {
		return len(s) == len(targets)
	})
}

// waitScrapedAfter waits until every target has been scraped by a scrape that began after
// at.
func (p *prometheus) waitScrapedAfter(t *testing.T, at time.Time, targets ...string) {
	t.Helper()
	since := float64(at.UnixNano()) / 1e9
	p.poll(t, "scraped again", `timestamp(mctun_build_info)`, func(s []sample) bool {
		fresh := 0
		for _, x := range s {
			if x.values[0] > since {
				fresh++
			}
		}
		return fresh == len(targets)
	})
}

// sampledBetween says whether the range query q has a sample strictly between lo and hi.
func (p *prometheus) sampledBetween(t *testing.T, q string, lo, hi float64) bool {
	t.Helper()
	s, err := p.query(q)
	if err != nil {
		t.Fatal(err)
	}
	for _, x := range s {
		for _, v := range x.values {
			if v > lo && v < hi {
				return true
			}
		}
	}
	return false
}

// expect checks that Prometheus holds, for the target, every series in want with its value.
// A series is written `name{labels}` as the endpoint writes it, or `name` alone.
func (p *prometheus) expect(t *testing.T, target string, want map[string]uint64) {
	t.Helper()
	for series, v := range want {
		q := series
		inst := `instance="` + target + `"`
		if i := strings.IndexByte(q, '{'); i >= 0 {
			q = q[:i+1] + inst + "," + q[i+1:]
		} else {
			q += "{" + inst + "}"
		}
		s, err := p.query(q)
		switch {
		case err != nil:
			t.Error(err)
		case len(s) != 1:
			t.Errorf("prometheus: %s: %d series, want 1 (mctun stats says %d)", q, len(s), v)
		case s[0].values[0] != float64(v):
			t.Errorf("prometheus: %s = %v; mctun stats --json says %d", q, s[0].values[0], v)
		}
	}
}
