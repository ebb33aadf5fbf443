//go:build e2e

package mcapp_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"mctun/test/mcapp"
	"mctun/test/topo"
)

// BenchmarkLAN measures how fast mcsend sends and mcrecv receives native multicast between
// two namespaces on one bridge, unpaced: the ceiling of the load generators themselves, and
// the baseline that mctun's own benchmark compares against. Run it with
//
//	go test -tags e2e -run '^$' -bench LAN -benchtime 3x ./test/mcapp
func BenchmarkLAN(b *testing.B) {
	if err := topo.Available(); err != nil {
		b.Skip(err)
	}
	for _, c := range []struct{ size, count int }{{64, 400000}, {1472, 300000}, {8000, 60000}} {
		b.Run(fmt.Sprintf("size=%d", c.size), func(b *testing.B) {
			tp := topo.ForTest(b, topo.Options{Hosts: 2, Bridged: true})
			var sendPPS, recvPPS, lost, drops, p50, p99 float64
			for range b.N {
				r, err := tools.StartRecv(context.Background(), tp.Hosts[1], mcapp.RecvOptions{Group: group, Count: c.count, Idle: time.Second, Timeout: time.Minute})
				if err != nil {
					b.Fatal(err)
				}
				sent, err := tools.Send(context.Background(), tp.Hosts[0], mcapp.SendOptions{Group: group, Count: c.count, Size: c.size, Duration: 30 * time.Second})
				if err != nil {
					b.Fatal(err)
				}
				rep, err := r.Wait()
				if err != nil {
					b.Fatal(err)
				}
				sendPPS += sent.PPS
				recvPPS += rep.PPS
				lost += float64(sent.Sent-rep.Unique) / float64(sent.Sent)
				drops += float64(rep.KernelDrops)
				p50 += float64(rep.LatencyNs.P50)
				p99 += float64(rep.LatencyNs.P99)
			}
			n := float64(b.N)
			b.ReportMetric(0, "ns/op")
			b.ReportMetric(sendPPS/n, "send-pps")
			b.ReportMetric(recvPPS/n, "recv-pps")
			b.ReportMetric(recvPPS/n*float64(c.size)*8/1e6, "recv-Mbit/s")
			b.ReportMetric(100*lost/n, "lost-%")
			b.ReportMetric(drops/n, "kernel-drops")
			b.ReportMetric(p50/n/1e3, "p50-µs")
			b.ReportMetric(p99/n/1e3, "p99-µs")
		})
	}
}

// BenchmarkPacedLAN measures how close mcsend's pacing gets to the rate it is asked for,
// with mcrecv receiving every datagram.
//
//	go test -tags e2e -run '^$' -bench PacedLAN -benchtime 1x ./test/mcapp
func BenchmarkPacedLAN(b *testing.B) {
	if err := topo.Available(); err != nil {
		b.Skip(err)
	}
	for _, rate := range []int{10000, 100000} {
		b.Run(fmt.Sprintf("rate=%d", rate), func(b *testing.B) {
			tp := topo.ForTest(b, topo.Options{Hosts: 2, Bridged: true})
			count := 3 * rate // three seconds
			var sendPPS, recvPPS, lost float64
			for range b.N {
				r, err := tools.StartRecv(context.Background(), tp.Hosts[1], mcapp.RecvOptions{Group: group, Count: count, Idle: time.Second, Timeout: time.Minute})
				if err != nil {
					b.Fatal(err)
				}
				sent, err := tools.Send(context.Background(), tp.Hosts[0], mcapp.SendOptions{Group: group, Count: count, Rate: float64(rate), Duration: 30 * time.Second})
				if err != nil {
					b.Fatal(err)
				}
				rep, err := r.Wait()
				if err != nil {
					b.Fatal(err)
				}
				sendPPS += sent.PPS
				recvPPS += rep.PPS
				lost += float64(sent.Sent-rep.Unique) / float64(sent.Sent)
			}
			n := float64(b.N)
			b.ReportMetric(0, "ns/op")
			b.ReportMetric(sendPPS/n, "send-pps")
			b.ReportMetric(recvPPS/n, "recv-pps")
			b.ReportMetric(100*lost/n, "lost-%")
		})
	}
}
