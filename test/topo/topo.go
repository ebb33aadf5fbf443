package topo

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"regexp"
	"strings"
	"sync"
	"time"
)

// MaxHosts is the most hosts a Topology can have: host i uses 198.18.<i+1>.0/24.
const MaxHosts = 250

// Options says what Build builds. The zero value is not valid: Hosts must be at least 1.
type Options struct {
	// Prefix starts the name of every namespace, which are <Prefix>-r and <Prefix>-h<i>.
	// It must be unique on the machine; the default is "mt" and 6 random hex digits.
	Prefix string
	// Hosts is the number of host namespaces, 1 to MaxHosts.
	Hosts int
	// MTU of every veth, both ends; 0 leaves the kernel default (1500).
	MTU int
	// Bridged joins the router's ends in one bridge, so multicast floods to every host
	// like on a LAN, instead of being dropped like in a VPC. Unicast is routed either way.
	Bridged bool
}

// Topology is a router namespace and the host namespaces linked to it. Close removes it.
type Topology struct {
	Prefix string
	Router *Host   // the router's namespace; its Addr and Iface are zero
	Hosts  []*Host // Hosts[i] is h<i>

	mu      sync.Mutex
	closed  bool
	created []string // namespaces Build created, the only ones Close deletes
	states  []string // where mctun keeps each one's state after down, which Close removes
	lock    *os.File // the flock that marks this prefix as in use
}

// prefixRE is what a Prefix may look like: it names files and namespaces.
var prefixRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,31}$`)

// Build creates the namespaces, links, addresses and routes of a Topology and waits until
// every host's eth0 is up. On any error it removes everything it created.
func Build(opts Options) (_ *Topology, err error) {
	if err := opts.fill(); err != nil {
		return nil, err
	}
	t := &Topology{Prefix: opts.Prefix}
	if t.lock, err = acquireLock(opts.Prefix); err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			if cerr := t.Close(); cerr != nil {
				err = errors.Join(err, fmt.Errorf("topo: cleaning up after failed build: %w", cerr))
			}
		}
	}()
	t.Router = &Host{Name: "router", Netns: opts.Prefix + "-r"}
	for i := range opts.Hosts {
		t.Hosts = append(t.Hosts, newHost(opts.Prefix, i))
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	steps := []func(context.Context, Options) error{
		t.addNamespaces,
		t.noteStates,
		t.setNamespaceSysctls,
		t.addLinks,
		t.configureRouter,
		t.configureHosts,
		t.waitUp,
	}
	for _, step := range steps {
		if err := step(ctx, opts); err != nil {
			return nil, err
		}
	}
	return t, nil
}

// fill checks o and fills in its defaults.
func (o *Options) fill() error {
	if o.Hosts < 1 || o.Hosts > MaxHosts {
		return fmt.Errorf("topo: Hosts %d: want 1 to %d", o.Hosts, MaxHosts)
	}
	if o.MTU != 0 && (o.MTU < 68 || o.MTU > 65535) {
		return fmt.Errorf("topo: MTU %d: want 68 to 65535, or 0 for the default", o.MTU)
	}
	if o.Prefix == "" {
		o.Prefix = RandomPrefix()
	}
	if !prefixRE.MatchString(o.Prefix) {
		return fmt.Errorf("topo: Prefix %q: want 1 to 32 of [A-Za-z0-9_.-], starting with a letter or digit", o.Prefix)
	}
	return nil
}

// RandomPrefix returns "mt" followed by 6 random hex digits, the default Prefix.
func RandomPrefix() string {
	var b [3]byte
	rand.Read(b[:])
	return "mt" + hex.EncodeToString(b[:])
}

// newHost describes host i of the topology with the given prefix.
func newHost(prefix string, i int) *Host {
	gw := netip.AddrFrom4([4]byte{198, 18, byte(i + 1), 1})
	return &Host{
		Name:    fmt.Sprintf("h%d", i),
		Netns:   fmt.Sprintf("%s-h%d", prefix, i),
		Addr:    netip.AddrFrom4([4]byte{198, 18, byte(i + 1), 2}),
		Prefix:  netip.PrefixFrom(gw, 24).Masked(),
		Gateway: gw,
		Iface:   "eth0",
		Peer:    fmt.Sprintf("h%d", i),
	}
}

// noteStates records where mctun will keep each namespace's state (its log, its epochs),
// named after the namespace's cookie: in /run/mctun, they would outlive the namespaces. It
// is done at once, for a test may delete a namespace itself.
func (t *Topology) noteStates(context.Context, Options) error {
	for _, h := range append([]*Host{t.Router}, t.Hosts...) {
		cookie, err := h.Cookie()
		if err != nil {
			return err
		}
		t.states = append(t.states, fmt.Sprintf("%s/netns-%d", mctunStateRoot, cookie))
	}
	return nil
}

// Namespaces returns the names of the router's and the hosts' namespaces.
func (t *Topology) Namespaces() []string {
	names := []string{t.Router.Netns}
	for _, h := range t.Hosts {
		names = append(names, h.Netns)
	}
	return names
}

// addNamespaces runs `ip netns add` for each namespace, recording each one created so a
// failure never deletes a namespace that existed before.
func (t *Topology) addNamespaces(ctx context.Context, _ Options) error {
	for _, ns := range t.Namespaces() {
		if _, err := runIP(ctx, "", "netns", "add", ns); err != nil {
			return err
		}
		t.created = append(t.created, ns)
	}
	return nil
}

// setNamespaceSysctls disables IPv6 everywhere before any link exists and turns the router
// into a router that sends no ICMP redirects.
func (t *Topology) setNamespaceSysctls(context.Context, Options) error {
	noIPv6 := [][2]string{
		{"net.ipv6.conf.all.disable_ipv6", "1"},
		{"net.ipv6.conf.default.disable_ipv6", "1"},
	}
	router := append(noIPv6,
		[2]string{"net.ipv4.ip_forward", "1"},
		[2]string{"net.ipv4.conf.all.send_redirects", "0"},
		[2]string{"net.ipv4.conf.default.send_redirects", "0"},
	)
	if err := t.Router.setSysctls(router); err != nil {
		return err
	}
	for _, h := range t.Hosts {
		if err := h.setSysctls(noIPv6); err != nil {
			return err
		}
	}
	return nil
}

// addLinks creates each veth pair with its ends directly in the router's and the host's
// namespace: `ip link add h<i> netns <prefix>-r type veth peer name eth0 netns <prefix>-h<i>`.
func (t *Topology) addLinks(ctx context.Context, opts Options) error {
	var batch strings.Builder
	mtu := ""
	if opts.MTU != 0 {
		mtu = fmt.Sprintf(" mtu %d", opts.MTU)
	}
	for _, h := range t.Hosts {
		fmt.Fprintf(&batch, "link add %s netns %s%s type veth peer name %s netns %s%s\n",
			h.Peer, t.Router.Netns, mtu, h.Iface, h.Netns, mtu)
	}
	_, err := runIP(ctx, batch.String(), "-batch", "-")
	return err
}

// configureRouter gives the router its gateway addresses, on each veth end or, Bridged, all
// on one bridge br0 with IGMP snooping off.
func (t *Topology) configureRouter(ctx context.Context, opts Options) error {
	var b strings.Builder
	b.WriteString("link set lo up\n")
	if opts.Bridged {
		b.WriteString("link add br0 type bridge mcast_snooping 0\nlink set br0 up\n")
	}
	for _, h := range t.Hosts {
		dev := h.Peer
		if opts.Bridged {
			dev = "br0"
			fmt.Fprintf(&b, "link set %s master br0\n", h.Peer)
		}
		fmt.Fprintf(&b, "address add %s dev %s\n", netip.PrefixFrom(h.Gateway, 24), dev)
		fmt.Fprintf(&b, "link set %s up\n", h.Peer)
	}
	_, err := runIP(ctx, b.String(), "-n", t.Router.Netns, "-batch", "-")
	return err
}

// configureHosts brings up lo and eth0, adds the host's address and its default route.
func (t *Topology) configureHosts(ctx context.Context, _ Options) error {
	for _, h := range t.Hosts {
		batch := fmt.Sprintf("link set lo up\naddress add %s dev %s\nlink set %s up\nroute add default via %s dev %s\n",
			netip.PrefixFrom(h.Addr, 24), h.Iface, h.Iface, h.Gateway, h.Iface)
		if _, err := runIP(ctx, batch, "-n", h.Netns, "-batch", "-"); err != nil {
			return err
		}
	}
	return nil
}

// waitUp waits until every host's eth0 reports operational state UP, so the first packet a
// test sends is not lost to a link still coming up.
func (t *Topology) waitUp(ctx context.Context, _ Options) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	for _, h := range t.Hosts {
		for {
			out, err := runIP(ctx, "", "-n", h.Netns, "-o", "link", "show", "dev", h.Iface)
			if err != nil {
				return err
			}
			if strings.Contains(out, " state UP ") {
				break
			}
			select {
			case <-ctx.Done():
				return fmt.Errorf("topo: %s %s did not come up: %s", h.Netns, h.Iface, strings.TrimSpace(out))
			case <-time.After(5 * time.Millisecond):
			}
		}
	}
	return nil
}

// Close kills every process still running in the topology's namespaces, deletes the
// namespaces (and with them every link in them), removes what mctun kept for them in
// /run/mctun, and releases the prefix. It is idempotent and safe for concurrent use, so it
// can be called both from t.Cleanup and from a signal handler.
func (t *Topology) Close() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return nil
	}
	t.closed = true
	err := removeNamespaces(t.created)
	for _, dir := range t.states {
		err = errors.Join(err, os.RemoveAll(dir))
	}
	if t.lock != nil {
		releaseLock(t.lock)
	}
	return err
}
