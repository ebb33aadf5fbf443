package daemon

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/signal"
	"runtime/debug"
	"slices"
	"sync"
	"syscall"
	"time"

	"github.com/vishvananda/netlink"

	"mctun/capture"
	"mctun/config"
	"mctun/control"
	"mctun/datapath"
	"mctun/encap"
	"mctun/internal/loglimit"
	"mctun/kernelpath"
	"mctun/membership"
	"mctun/route"
	"mctun/tun"
)

// daemon is a running mctun: what it changed on the host, the devices and sockets it opened,
// and the two packet paths between them. It is the one place where real devices are wired
// together.
type daemon struct {
	version  string
	mu       sync.Mutex     // serializes reload and management commands; guards cfg, mainData, skipped, sending
	cfg      *config.Config // running
	mainData []byte         // the config file as cfg was loaded from it
	log      *slog.Logger
	logs     *logOutput
	byUp     bool            // started by mctun up, whose log file is our stderr
	systemd  systemdNotifier // mctun.service's $NOTIFY_SOCKET, if any
	state    State
	host     *route.Host
	started  time.Time
	keptTUN  bool // the TUN of an instance that died is there to take over
	tunDown  bool // the TUN was down when keepTUN last looked; guarded by mu

	datapath       string // config.DatapathKernel or config.DatapathUser: the one running
	datapathReason string // why auto chose user space

	iface     string                        // the source interface
	skipped   []netip.AddrPort              // members that are addresses of this host
	sending   struct{ groups, members int } // what the sender side sends to, dynamic members among them
	capture   sourceCapture                 // sender side: on iface, or the kernel path's hand-off
	dev       *tun.Native                   // receiver side
	tunDev    igmpWatch                     // dev as the packet paths read it
	sendConn  *encap.UDPConn                // sender side, ephemeral port, send-only
	recvConn  *encap.UDPConn                // receiver side, on cfg.Port
	sender    *datapath.Sender              // nil without [source]
	receiver  *datapath.Receiver            // nil without [member]
	kSender   *kernelpath.Sender            // the sender side in the kernel; nil without it
	kReceiver *kernelpath.Receiver          // the receiver side in the kernel; nil without it
	closers   []io.Closer                   // what start opened, in order

	metrics     *metricsServer // serving [metrics]; nil when off. Guarded by mu.
	metricsHTTP http.Handler   // its handler, made once (metricsHandler)
	reloads     Outcomes       // guarded by mu
	commands    Outcomes       // management commands that change the instance; guarded by mu

	// Dynamic membership. A source's: the table of members that joined, the report flow
	// that fills it, and its own socket on the tunnel port when the host is not a member
	// (else the receiver side diverts reports to it); self is the address members know
	// this source by (their source filters name it), read at start and when its
	// interface's addresses change (refreshSelf), guarded by mu. A member's: the reporter.
	joins      *membership.Table // nil without [source]
	reports    *datapath.Reports // nil without [source]
	reportConn *encap.UDPConn    // nil unless a source only, with join_from
	self       netip.Addr
	eventLog   loglimit.Limiter
	reporter   *reporter // nil without [member]

	routines int        // packet-path goroutines started and not known to have ended
	failed   chan error // a packet path that stopped on its own
	shutdown chan struct{}
	stopping chan struct{} // closed when stop begins: streams (mctun dump) end
}

// Options are what the command line tells the daemon besides the config file's path.
type Options struct {
	Version string // the binary's, shown by status
	// Notify, when not nil, is mctun up's pipe: it learns once whether the daemon forwards.
	Notify *os.File
}

// Run is mctun run: the daemon in the foreground until SIGINT, SIGTERM or mctun down. It
// returns the process's exit status: 0 after a clean stop, 1 when it failed, 2 when the
// config is not valid (then nothing was changed).
func Run(path string, opts Options) int {
	notify := opts.Notify
	systemd := newSystemdNotifier()
	// The packet paths allocate nothing per packet, so the collector runs mostly at start and
	// on reloads, commands and status. At GOGC 50 instead of 100 its heap grows to 1.5 times
	// what is live rather than twice, at a cost in CPU nobody notices: with 65,536 members,
	// a peak of 24 MiB instead of 30 (measured with mctun up, then mctun stats).
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(50)
	}
	logs := newLogOutput(os.Stderr)
	log := slog.New(logs)
	leftover := false // a failed start left changes on the host, listed in the journal
	fail := func(err error) int {
		log.Error("mctun did not start", "err", err)
		notifyUp(notify, UpNotice{Status: "failed", Error: err.Error(), Leftover: leftover})
		systemd.send("STATUS=mctun did not start: " + oneLine(err))
		return 1
	}
	cfg, mainData, warnings, err := loadFiles(path)
	if err == nil {
		err = logs.configure(cfg.Log)
	}
	for _, w := range warnings {
		log.Warn("config: " + w.String())
	}
	if err != nil {
		NotifyUp(notify, err)
		systemd.send("STATUS=mctun did not start: the config is not valid: " + oneLine(err))
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	defer logs.Close()
	state, err := CurrentState()
	if err != nil {
		return fail(err)
	}
	lk, err := state.acquire()
	if errors.Is(err, errLocked) {
		pid, _ := state.Holder()
		return fail(fmt.Errorf("mctun is already running in this network namespace (pid %d)", pid))
	}
	if err != nil {
		return fail(err)
	}
	defer lk.release()

	nl, err := netlink.NewHandle()
	if err != nil {
		return fail(fmt.Errorf("netlink: %w", err))
	}
	defer nl.Close()
	journal, err := route.OpenJournal(state.journalPath())
	if err != nil {
		return fail(err)
	}
	host := route.NewHost(nl, journal)
	var keptTUN bool
	if !journal.Empty() {
		log.Warn("undoing the changes of an instance that did not stop cleanly", "changes", len(journal.Changes))
		var tun string
		if cfg.Member != nil {
			tun = cfg.Member.TUN
		}
		if keptTUN, err = host.UndoKeeping(tun); err != nil {
			leftover = true
			return fail(fmt.Errorf("cleaning up after the previous instance: %w", err))
		}
		if keptTUN {
			log.Info("taking over the previous instance's TUN, and the groups joined on it", "tun", tun)
		}
	}

	// Caught from here on, so that a signal during start still ends in stop.
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	hups := make(chan os.Signal, 1)
	signal.Notify(hups, syscall.SIGHUP)
	d := &daemon{version: opts.Version, cfg: cfg, mainData: mainData, log: log, logs: logs, byUp: notify != nil, systemd: systemd, state: state, host: host, keptTUN: keptTUN,
		started: time.Now(), failed: make(chan error, 2), shutdown: make(chan struct{}, 1),
		stopping: make(chan struct{}), eventLog: newEventLog()}
	if err := d.start(); err != nil {
		if uerr := d.stop(); uerr != nil {
			log.Error("could not undo every change", "err", uerr, "journal", state.journalPath())
			leftover = true
		}
		return fail(err)
	}
	d.logStarted()
	NotifyUp(notify, nil)
	d.notifyReady()

	status := -1
	for status < 0 {
		select {
		case <-hups:
			d.reload() // it logs what it did
		case sig := <-sigs:
			log.Info("stopping", "signal", sig.String())
			status = 0
		case <-d.shutdown:
			log.Info("stopping", "reason", "mctun down")
			status = 0
		case err := <-d.failed:
			d.pathFailed(err)
			status = 1
		}
	}
	d.notifySystemd("STOPPING=1", "STATUS=stopping: undoing the host changes")
	if err := d.stop(); err != nil {
		log.Error("could not undo every change", "err", err, "journal", state.journalPath())
		return 1
	}
	log.Info("stopped; host restored")
	return status
}

// UpNotice is how the start went, as the daemon tells mctun up: one JSON line on the pipe
// up gave it.
type UpNotice struct {
	Status string `json:"status"` // "ready" or "failed"
	Error  string `json:"error,omitempty"`
	// Leftover, on a failed start, says that changes to the host are left, listed in the
	// journal for mctun down to undo; else the host is as it was.
	Leftover bool `json:"leftover,omitempty"`
}

// NotifyUp tells mctun up that the start went well (err nil), or that it failed before it
// changed anything on the host.
func NotifyUp(notify *os.File, err error) {
	n := UpNotice{Status: "ready"}
	if err != nil {
		n = UpNotice{Status: "failed", Error: err.Error()}
	}
	notifyUp(notify, n)
}

func notifyUp(notify *os.File, n UpNotice) {
	if notify == nil {
		return
	}
	json.NewEncoder(notify).Encode(n)
	notify.Close()
}

// start sets up the host and starts forwarding. On error the caller calls stop, which undoes
// whatever start got done.
func (d *daemon) start() error {
	cfg := d.cfg
	if err := d.startMetrics(); err != nil {
		return err
	}
	var auth *encap.Auth
	if cfg.SecretFile != "" { // before anything changes on the host
		secret, err := config.ReadSecret(cfg.SecretFile)
		if err != nil {
			return err
		}
		if auth, err = encap.NewAuth(secret, cfg.Key); err != nil {
			return fmt.Errorf("secret_file %s: %w", cfg.SecretFile, err)
		}
	}
	if cfg.Source != nil {
		// Before the member's route exists: afterwards 224.0.0.0/4 points into the TUN.
		if err := d.chooseInterface(); err != nil {
			return err
		}
	}
	if err := d.chooseDatapath(); err != nil {
		return err
	}
	// One sending instance for everything this host seals: the sender side's packets and
	// the member's reports, so that a peer's Opener sees one instance of this host.
	var seal *encap.Sealer
	if auth != nil {
		epoch, err := d.state.nextSenderEpoch()
		if err != nil {
			return err
		}
		if seal, err = auth.NewSealer(epoch, cfg.Encrypt); err != nil {
			return err
		}
	}
	if cfg.Member != nil {
		if err := d.startMember(auth, seal); err != nil {
			return err
		}
	} else if err := d.routeMulticast(); err != nil {
		return err
	}
	if cfg.Source != nil {
		if err := d.startSource(seal); err != nil {
			return err
		}
		if err := d.startJoins(auth); err != nil {
			return err
		}
	}

	if d.metrics != nil { // there is something to read now; before the control socket, so before any reload
		d.metrics.serve()
	}
	ctl, err := control.Listen(control.SocketName, d.log)
	if err != nil {
		return err
	}
	d.closers = append(d.closers, ctl)
	go func() {
		if err := ctl.Serve(d.handle); err != nil {
			d.log.Error("the control socket stopped answering: mctun status, reload and down will not reach this instance; stop it with SIGTERM", "err", err)
		}
	}()

	if d.sender != nil {
		go d.routineMembership()
	}
	d.followHost()
	if d.reportConn != nil {
		d.run("report flow", func() error { return d.reports.Run(d.reportConn) })
	}
	if d.receiver != nil {
		d.run("receiver side", func() error { return d.receiver.Run(d.sender == nil) })
		d.reporter.start()
	}
	return nil
}

// keptEpochsOpener returns an Opener that refuses the instances of each peer older than the
// newest epoch kept at path, and the hook that keeps there each instance it authenticates
// first (rare: a peer starting). whose names the peers in the log.
func (d *daemon) keptEpochsOpener(auth *encap.Auth, path, whose string) (*encap.Opener, func(netip.Addr, uint64)) {
	open := auth.NewOpener(d.cfg.Encrypt)
	kept := loadEpochs(path)
	for peer, epoch := range kept {
		if peer.Is4() {
			open.SetEpoch(peer.As4(), epoch)
		}
	}
	return open, func(peer netip.Addr, epoch uint64) {
		kept[peer] = epoch
		if err := saveEpochs(path, kept); err != nil {
			d.log.Warn("cannot keep the "+whose+"' epochs", "err", err)
		}
	}
}

// startMember readies the host to receive (TUN, route, sysctls) and opens the tunnel socket.
func (d *daemon) startMember(auth *encap.Auth, seal *encap.Sealer) error {
	cfg, m := d.cfg, d.cfg.Member
	// The TUN is persistent while mctun runs, so that if it dies the applications' groups,
	// joined on the TUN, survive for the next instance to take over; down deletes it.
	openTUN := tun.Create
	if d.keptTUN {
		openTUN = tun.Attach // already in the journal
	}
	dev, err := openTUN(m.TUN)
	if err != nil {
		return err
	}
	d.dev = dev
	d.closers = append(d.closers, dev)
	if !d.keptTUN {
		if err := d.host.CreatedLink(m.TUN); err != nil {
			return err
		}
	}
	if err := dev.Persist(); err != nil {
		return err
	}
	if err := d.host.ConfigureTUN(m.TUN, m.MTU); err != nil {
		return err
	}
	if _, err := d.routeTUN(); err != nil {
		return err
	}
	if err := d.host.RaiseSysctl("net/ipv4/igmp_max_memberships", max(256, len(m.Groups))); err != nil {
		return err
	}
	// The kernel drops a fragment queue once more than ipfrag_max_dist fragments from the
	// same source address arrive between two of its fragments. The source's tunnel packets,
	// fragmented on the way, and the inner fragments mctun injects share that address, so
	// whenever mctun is a moment late the check throws away good datagrams (measured: dozens
	// per thousand under CPU load). Queues still expire after ipfrag_time and within
	// ipfrag_high_thresh.
	if err := d.host.SetSysctl("net/ipv4/ipfrag_max_dist", "0"); err != nil {
		return err
	}
	// The kernel path first: tunnel packets that waited in the socket for the user-space
	// receiver, while the kernel delivered newer ones, would count as late.
	if d.kReceiver != nil {
		o := kernelpath.ReceiverOptions{TUN: m.TUN, Port: cfg.Port, Key: cfg.Key, Member: *m, Hooks: d.hooks(), Log: d.log}
		if s := cfg.Source; s != nil { // startJoins diverts reports to its report flow
			o.Reports, o.JoinFrom = true, s.JoinFrom
		}
		err := d.kReceiver.Start(o)
		if err != nil {
			return err
		}
	}
	d.recvConn, err = encap.ListenUDP(netip.AddrPortFrom(netip.IPv4Unspecified(), cfg.Port), encap.UDPOptions{})
	if err != nil {
		return err
	}
	d.closers = append(d.closers, d.recvConn)
	var open *encap.Opener
	var onEpoch func(netip.Addr, uint64)
	if auth != nil {
		open, onEpoch = d.keptEpochsOpener(auth, d.state.sourceEpochsPath(), "sources")
	}
	// The packet paths read the TUN through igmpWatch: the host's own IGMP there means an
	// application joined or left a group, which the reporter tells the sources at once.
	var kick func()
	d.tunDev = igmpWatch{Native: d.dev, kick: func() { kick() }}
	d.receiver = datapath.NewReceiver(d.recvConn, d.tunDev, cfg.Key, *m, open, onEpoch, d.log)
	if d.kReceiver != nil {
		d.receiver.ShareFlows(d.kReceiver)
	}
	d.reporter, err = newReporter(d.recvConn, seal, m.TUN, cfg.Key, cfg.Port, m.Sources, d.receiver.Resync, d.log)
	if err != nil {
		return err
	}
	kick = d.reporter.Kick
	return nil
}

// sourceCapture is where the user-space sender reads what leaves the source interface: the
// AF_PACKET capture on the interface, or on the kernel path the hand-off, where the kernel
// leaves it what it does not forward itself.
type sourceCapture interface {
	capture.Source
	Stats() capture.Stats
}

// routeTUN makes the TUN carry 224.0.0.0/4, so that applications that join with INADDR_ANY
// join there, unless it does already, and reports whether it changed the route. On a host
// that is a source too, the host's own multicast leaves by that route too, into the sender
// side, and the route gives it the address members know the source by (src self): else it
// would carry the TUN's link-local address. The caller holds d.mu, or is start.
func (d *daemon) routeTUN() (changed bool, err error) {
	var src netip.Addr
	if d.cfg.Source != nil {
		src = d.self
	}
	return d.host.ReplaceRoute(route.Multicast, d.cfg.Member.TUN, src)
}

// keepTUN keeps the TUN's route (routeTUN) while the TUN is up: the kernel removes a route
// when its device goes down (ip link set mctun0 down, by hand or by a network manager) and
// when the address it names goes (the source's, on a host that is a source too: a DHCP client
// that takes the address down and up, or gives a new one, which setSelf has taken); without
// it, applications' joins and the host's own multicast would go elsewhere for good. It logs when the TUN goes down (nothing is delivered
// meanwhile: tun_write_failed) and when it comes back. routineHost calls it when the TUN's
// link, a route to 224.0.0.0/4 or the source's address changes.
func (d *daemon) keepTUN() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	// Stop undoes the route: do not add it again. Stop closes stopping, then takes mu
	// (stopMetrics) before it undoes, so a look under way ends before the undo.
	if d.isStopping() {
		return nil
	}
	tun := d.cfg.Member.TUN
	up, err := d.host.LinkUp(tun)
	if err != nil {
		return err
	}
	if !up {
		if !d.tunDown {
			d.tunDown = true
			d.log.Warn("the TUN is down: nothing is delivered until it is up again (ip link set "+tun+" up)", "tun", tun)
		}
		return nil
	}
	if d.tunDown {
		d.tunDown = false
		d.log.Info("the TUN is up again", "tun", tun)
	}
	if d.cfg.Source != nil { // the route names self: wait while the interface lacks it
		if cur, err := d.host.PrimaryAddr(d.iface); err != nil || cur != d.self {
			return err
		}
	}
	changed, err := d.routeTUN()
	if changed { // the kernel had removed it, or the source's address changed
		d.log.Info("routed multicast into the TUN again", "route", "224.0.0.0/4 dev "+tun, "src", d.self)
	}
	return err
}

// startSource opens the capture and the sending socket and starts the sender side, in user
// space and then in the kernel; with a Sealer, the sender side sends the authenticated form.
func (d *daemon) startSource(seal *encap.Sealer) error {
	cfg := d.cfg
	local, err := localAddrs()
	if err != nil {
		return err
	}
	groups := d.sendingTo(cfg.Source.Groups, local)
	for _, m := range d.skipped {
		d.log.Info("member is this host: not sending to it", "member", m)
	}
	d.sendConn, err = encap.ListenUDP(netip.AddrPortFrom(netip.IPv4Unspecified(), 0), encap.UDPOptions{SendOnly: true})
	if err != nil {
		return err
	}
	d.closers = append(d.closers, d.sendConn)
	if d.kSender == nil {
		if d.capture, err = capture.OpenAFPacket(d.iface, capture.Options{}); err != nil {
			return err
		}
		d.closers = append(d.closers, d.capture)
	} else {
		o := kernelpath.SenderOptions{Interface: d.iface, Addr: d.self, Port: d.sendConn.LocalAddr().Port(),
			Key: cfg.Key, Groups: groups, Hooks: d.hooks(), Host: d.host, Log: d.log}
		if cfg.Member != nil { // the host's own multicast leaves by the TUN
			o.TUN = cfg.Member.TUN
		}
		if err := d.kSender.Start(o); err != nil {
			return err
		}
		d.capture = d.kSender.Handoff()
		d.closers = append(d.closers, d.capture)
	}
	d.sender = datapath.NewSender(d.sendConn, cfg.Key, groups, seal, d.log)
	if d.kSender != nil {
		d.sender.ShareSequences(d.kSender.Sequence)
		d.kSender.ReportMembers(d.sender.MemberFailing)
	}
	sources := []capture.Source{d.capture}
	if d.dev != nil {
		sources = append(sources, d.tunDev) // the host's own multicast, routed into the TUN
	}
	d.run("sender side", func() error { return d.sender.Run(sources...) })
	// Only now the kernel path: what user space read before it takes over, it has already
	// numbered and sent; else the kernel's first packets would overtake it.
	if d.kSender != nil {
		return d.kSender.Attach()
	}
	return nil
}

// chooseDatapath settles where packets are forwarded: in the kernel when the config allows
// it (datapath auto or kernel, and the plain tunnel) and the host does, else in user space.
// The host allows it when the kernel takes the programs, which is tried here, before the
// host changes. For auto it records why user space was chosen; for kernel, a host that does
// not allow it is an error.
func (d *daemon) chooseDatapath() error {
	d.datapath = config.DatapathUser
	switch {
	case d.cfg.Datapath == config.DatapathUser:
		return nil
	case d.cfg.SecretFile != "":
		d.datapathReason = "the authenticated tunnel runs in user space"
		return nil
	}
	err := d.loadKernelPath()
	switch {
	case err == nil:
		d.datapath = config.DatapathKernel
		return nil
	case d.cfg.Datapath == config.DatapathKernel:
		return fmt.Errorf("datapath kernel: %w", err)
	}
	d.datapathReason = err.Error()
	return nil
}

// loadKernelPath loads the kernel path's programs for this host's roles, attaching nothing.
func (d *daemon) loadKernelPath() error {
	if why := os.Getenv(refuseKernelEnv); why != "" {
		return fmt.Errorf("refused by %s: %s", refuseKernelEnv, why)
	}
	if d.cfg.Source != nil {
		ks, err := kernelpath.LoadSender(d.iface)
		if err != nil {
			return err
		}
		d.kSender = ks
	}
	if d.cfg.Member != nil {
		kr, err := kernelpath.LoadReceiver()
		if err != nil {
			d.closeKernelPath()
			return err
		}
		d.kReceiver = kr
	}
	return nil
}

// hooks is how the kernel path attaches its programs: with tcx, or by way of the journal
// with tc where the kernel has no tcx (or attachClsActEnv asks for it).
func (d *daemon) hooks() kernelpath.Hooks {
	return kernelpath.Hooks{ClsAct: d.host, ForceClsAct: os.Getenv(attachClsActEnv) != ""}
}

// attachClsActEnv, set, makes the kernel path attach with tc (clsact) where the kernel has
// tcx too: the way older kernels take it, tested on a new one.
const attachClsActEnv = "MCTUN_KERNEL_PATH_CLSACT"

// refuseKernelEnv, set to a reason, makes the kernel path refuse to load, as a kernel that
// does not take its programs would: so that the fallback of datapath = "auto" can be seen
// and tested on a host that has everything.
const refuseKernelEnv = "MCTUN_REFUSE_KERNEL_PATH"

// closeKernelPath detaches and unloads the kernel path. The packet paths must have stopped:
// the user-space sender takes sequence numbers from memory the kernel path maps. Once start
// has returned, the caller holds d.mu: status and stats read the kernel path under it.
func (d *daemon) closeKernelPath() error {
	var errs []error
	if d.kSender != nil {
		errs = append(errs, d.kSender.Close())
		d.kSender = nil
	}
	if d.kReceiver != nil {
		errs = append(errs, d.kReceiver.Close())
		d.kReceiver = nil
	}
	return errors.Join(errs...)
}

// run starts a packet path; if it ever returns, the daemon stops.
func (d *daemon) run(name string, f func() error) {
	d.routines++
	go func() {
		err := f()
		if err == nil {
			err = errors.New("closed")
		}
		d.failed <- fmt.Errorf("%s: %w", name, err)
	}()
}

// chooseInterface settles the source interface: the configured one, else the one that carries
// 224.0.0.0/4 (or the default route); and reads its address, self, which it must have.
func (d *daemon) chooseInterface() error {
	d.iface = d.cfg.Source.Interface
	if d.iface == "" {
		p, err := d.host.Multicast()
		if err != nil {
			return err
		}
		if p.Dev == "" {
			return errors.New("source.interface is not set and no route carries 224.0.0.0/4 (no default route either): set source.interface")
		}
		d.iface = p.Dev
	}
	if _, err := net.InterfaceByName(d.iface); err != nil {
		return fmt.Errorf("source.interface %s: %w", d.iface, err)
	}
	return d.readSelf()
}

// routeMulticast makes the applications' multicast leave a source-only host by the source
// interface, where the capture is, by a route of its own: it adds 224.0.0.0/4 dev IFACE if
// no route sends multicast there (what the original tool told operators to type by hand), and
// also if only a wider route does, such as the default route. The kernel caches the output
// route of a multicast destination only when a route to 224.0.0.0/4 (or a narrower one)
// carries it: by the default route it builds a route for every datagram an application
// sends and frees it through RCU (in a profile of the benchmark at 16,000 datagrams a second
// to one member, 5.6% of the machine's busy time went to output routes and their freeing;
// 1.9% with the route, and VXLAN's, whose device has one, 2.2%). In that case the route keeps
// the source address the host gave that multicast (src). keepMulticastRoute puts the route
// back when it goes. The caller holds d.mu, or is start.
func (d *daemon) routeMulticast() error {
	if d.cfg.Source == nil {
		return nil
	}
	p, err := d.host.Multicast()
	if err != nil || p.Dev == d.iface && p.Own {
		return err
	}
	var src netip.Addr
	was := "no route to it"
	if p.Dev != "" {
		was = "by " + p.Dev
	}
	if p.Dev == d.iface {
		src, was = p.Src, "by a wider route (not cached for multicast)"
	}
	d.log.Info("routing multicast out of the source interface", "route", "224.0.0.0/4 dev "+d.iface, "was", was)
	_, err = d.host.ReplaceRoute(route.Multicast, d.iface, src)
	return err
}

// sendingTo is the groups the sender side sends to, less this host's own addresses
// (withoutSelf), which it keeps in d.skipped, and their size in d.sending. local is the
// host's addresses (localAddrs).
func (d *daemon) sendingTo(groups []config.Group, local map[netip.Addr]bool) []config.Group {
	groups, skipped := withoutSelf(groups, local)
	d.skipped = skipped
	d.sending.groups, d.sending.members = len(groups), 0
	for _, g := range groups {
		d.sending.members += len(g.Members)
	}
	return groups
}

// localAddrs lists this host's addresses, for withoutSelf.
func localAddrs() (map[netip.Addr]bool, error) {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return nil, fmt.Errorf("list this host's addresses: %w", err)
	}
	local := make(map[netip.Addr]bool)
	for _, a := range addrs {
		if p, err := netip.ParsePrefix(a.String()); err == nil {
			local[p.Addr()] = true
		}
	}
	return local, nil
}

// withoutSelf drops the members that are this host's own addresses, local, and returns them
// apart: a host that is a member too gets its own multicast through the kernel's loopback,
// and a tunnelled copy would be a duplicate. A config shared by all hosts of a many-to-many
// setup lists every host.
func withoutSelf(groups []config.Group, local map[netip.Addr]bool) (out []config.Group, skipped []netip.AddrPort) {
	out = make([]config.Group, len(groups))
	for i, g := range groups {
		out[i] = g
		if !slices.ContainsFunc(g.Members, func(m netip.AddrPort) bool { return local[m.Addr()] }) {
			continue // the group's own slice: with 65,536 members, a copy is 2 MiB
		}
		out[i].Members = nil
		for _, m := range g.Members {
			if local[m.Addr()] {
				if !slices.Contains(skipped, m) {
					skipped = append(skipped, m)
				}
				continue
			}
			out[i].Members = append(out[i].Members, m)
		}
	}
	return out, skipped
}

// stop closes everything start opened, waits for the packet paths to end, and undoes the
// host changes.
func (d *daemon) stop() error {
	if d.reporter != nil && d.receiver != nil {
		d.reporter.Stop() // leaves every group at every source, while the socket is open
	}
	close(d.stopping)
	d.stopMetrics()
	if d.joins != nil && d.joins.Len() > 0 {
		if err := d.state.saveMembers(d.joins.Entries()); err != nil {
			d.log.Warn("cannot keep the dynamic members for the next start", "err", err)
		}
	}
	for i := len(d.closers) - 1; i >= 0; i-- {
		d.closers[i].Close()
	}
	if d.waitPaths(5 * time.Second) {
		d.mu.Lock() // an answer that outlasted the control socket's wait may read it
		err := d.closeKernelPath()
		d.mu.Unlock()
		if err != nil {
			d.log.Error("could not unload the kernel path", "err", err)
		}
	} // else the process is about to exit, which unloads it
	return d.host.Undo()
}

// pathFailed takes the end of a packet path that failed: stop then waits for the others only.
func (d *daemon) pathFailed(err error) {
	d.routines--
	d.log.Error("stopping: a packet path failed", "err", err)
}

// waitPaths waits for the packet paths that have not ended yet to end, each within timeout,
// and reports whether they all did.
func (d *daemon) waitPaths(timeout time.Duration) bool {
	for ; d.routines > 0; d.routines-- {
		select {
		case <-d.failed:
		case <-time.After(timeout):
			d.log.Error("a packet path did not stop within " + timeout.String())
			return false
		}
	}
	return true
}

func (d *daemon) logStarted() {
	attrs := []any{"pid", os.Getpid(), "config", d.cfg.Path, "netns", d.state.ns, "port", d.cfg.Port, "datapath", d.datapath}
	if d.datapathReason != "" {
		attrs = append(attrs, "not_kernel", d.datapathReason)
	}
	if s := d.cfg.Source; s != nil {
		attrs = append(attrs, "source_interface", d.iface, "groups", len(s.Groups))
		if len(s.JoinFrom) > 0 {
			attrs = append(attrs, "join_from", s.JoinFrom)
		}
	}
	if m := d.cfg.Member; m != nil {
		attrs = append(attrs, "tun", m.TUN, "sources", len(m.Sources))
	}
	if d.metrics != nil {
		attrs = append(attrs, "metrics", d.metrics.url())
	}
	d.log.Info("forwarding", attrs...)
	if d.cfg.SecretFile == "" {
		d.log.Warn("the tunnel is not authenticated: a host that can forge a source's address can inject packets; set secret_file")
	} else {
		d.log.Info("the tunnel is " + tunnelProtection(d.cfg))
	}
}

// tunnelProtection says in words what protects the tunnel.
func tunnelProtection(cfg *config.Config) string {
	switch {
	case cfg.Encrypt:
		return "authenticated and encrypted (AES-256-GCM)"
	case cfg.SecretFile != "":
		return "authenticated (AES-256-GCM)"
	}
	return "not authenticated"
}

// handle answers the control socket. Anyone may look (status, listing); only root or
// CAP_NET_ADMIN may change anything or see the traffic (dump).
func (d *daemon) handle(peer control.Peer, req control.Request) (any, error) {
	switch req.Op {
	case "status":
		return d.status(), nil
	case "stats":
		return statsStream{d}, nil
	case "listing":
		return d.listing(), nil
	}
	if !peer.Privileged {
		return nil, control.ErrNotPermitted
	}
	switch req.Op {
	case "shutdown":
		select {
		case d.shutdown <- struct{}{}:
		default:
		}
		return nil, nil
	case "reload":
		return d.reload()
	case "edit":
		var a EditArgs
		if err := json.Unmarshal(req.Args, &a); err != nil {
			return nil, fmt.Errorf("bad request: %w", err)
		}
		return d.edit(a)
	case "dump":
		var a DumpArgs
		if err := json.Unmarshal(req.Args, &a); err != nil {
			return nil, fmt.Errorf("bad request: %w", err)
		}
		return d.dumpRequest(a)
	}
	return nil, fmt.Errorf("unknown operation %q", req.Op)
}
