package daemon

import (
	"net"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"mctun/internal/loglimit"
	"mctun/internal/nlevents"
	"mctun/route"
)

// hostEvents are the host's changes that touch what mctun set up, as routineHost follows
// them; a subscription a role does not need is nil.
type hostEvents struct {
	addrs  *nlevents.Sub[netlink.AddrUpdate]  // a source's: its interface's address (refreshSelf)
	links  *nlevents.Sub[netlink.LinkUpdate]  // a member's: the TUN up or down (keepTUN)
	routes *nlevents.Sub[netlink.RouteUpdate] // a route to 224.0.0.0/4 removed: the TUN's (keepTUN), or a source-only host's (keepMulticastRoute)
}

// followHost starts routineHost. It follows events, not a clock: a host where nothing changes
// costs it nothing.
func (d *daemon) followHost() {
	var ev hostEvents
	if d.cfg.Source != nil {
		ev.addrs = nlevents.Addrs("", d.stopping, d.log)
	}
	if d.cfg.Member != nil {
		ev.links = nlevents.Links("", d.stopping, d.log)
	}
	ev.routes = nlevents.Routes("", d.stopping, d.log)
	for _, err := range []error{start(ev.addrs), start(ev.links), start(ev.routes)} {
		if err != nil { // routineHost tries again
			d.log.Error("cannot follow the host's changes: trying again", "every", nlevents.RetryEvery, "err", err)
		}
	}
	go d.routineHost(ev)
}

// routineHost keeps what mctun set up in line with the host, until stop: on a source, the
// address members know it by (refreshSelf) with its interface's; on a member, the TUN's route
// (keepTUN), which the kernel removes when the TUN goes down or, on a host that is a source
// too, when the address it names goes; on a source-only host, the route of its multicast
// (keepMulticastRoute). Events lost, or a subscription opened again, make it look afresh.
func (d *daemon) routineHost(ev hostEvents) {
	iface, tun := -1, -1
	if d.cfg.Source != nil {
		if i, err := net.InterfaceByName(d.iface); err == nil {
			iface = i.Index
		}
	}
	if d.cfg.Member != nil {
		if i, err := net.InterfaceByName(d.cfg.Member.TUN); err == nil {
			tun = i.Index
		}
	}
	var logs loglimit.Limiter // of failures: one per 10 s
	look := func() {
		if err := d.lookAtHost(); err != nil {
			if ok, suppressed := logs.Allow(); ok {
				d.log.Warn("cannot keep up with the host's changes", "err", err, "not_logged", suppressed)
			}
		}
	}
	for {
		var retry <-chan time.Time
		if closed(ev.addrs) || closed(ev.links) || closed(ev.routes) {
			retry = time.After(nlevents.RetryEvery)
		}
		select {
		case <-d.stopping:
			return
		case u, ok := <-channel(ev.addrs):
			if !ok && ev.addrs.Reopen() || ok && (iface < 0 || u.LinkIndex == iface) {
				look()
			}
		case u, ok := <-channel(ev.links):
			if !ok && ev.links.Reopen() || ok && (tun < 0 || u.Attrs().Index == tun) {
				look()
			}
		case u, ok := <-channel(ev.routes):
			if !ok && ev.routes.Reopen() || ok && u.Type == unix.RTM_DELROUTE && u.Dst != nil && u.Dst.String() == route.Multicast.String() {
				look()
			}
		case <-retry:
			a, l, r := retried(ev.addrs), retried(ev.links), retried(ev.routes)
			if a || l || r {
				look()
			}
		}
	}
}

// lookAtHost is one look of routineHost: the source's address, then the TUN's route or, on
// a source-only host, the route of its multicast.
func (d *daemon) lookAtHost() error {
	if d.cfg.Source != nil {
		if err := d.refreshSelf(); err != nil {
			return err
		}
	}
	if d.cfg.Member != nil {
		return d.keepTUN()
	}
	return d.keepMulticastRoute()
}

// keepMulticastRoute puts back a source-only host's route of its multicast (routeMulticast)
// when it has gone: the kernel removes it with the address it names (a DHCP lease that
// changes), and a network manager may remove a route it did not make. Without it the
// applications' multicast leaves by the default route again, or by no route to the source
// interface. routineHost calls it when a route to 224.0.0.0/4 or the source's address changes.
func (d *daemon) keepMulticastRoute() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.isStopping() { // as keepTUN: stop undoes the route, do not add it again
		return nil
	}
	return d.routeMulticast()
}

// start, closed, channel and retried are a Sub's, for one a role may not need (nil).

func start[T any](s *nlevents.Sub[T]) error {
	if s == nil {
		return nil
	}
	return s.Start()
}

func closed[T any](s *nlevents.Sub[T]) bool { return s != nil && s.C == nil }

// channel is s's channel; nil, which never gives, when s is nil or not open.
func channel[T any](s *nlevents.Sub[T]) chan T {
	if s == nil {
		return nil
	}
	return s.C
}

func retried[T any](s *nlevents.Sub[T]) bool { return s != nil && s.Retry() }
