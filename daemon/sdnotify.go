package daemon

import (
	"fmt"
	"net"
	"os"
	"strings"

	"golang.org/x/sys/unix"

	"mctun/config"
	"mctun/internal/words"
)

// systemd learns the daemon's state the way sd_notify(3) tells it (mctun.service is
// Type=notify): one datagram of newline-separated VAR=value lines to the Unix datagram socket
// named by $NOTIFY_SOCKET, in the abstract namespace if the name starts with @ (Go's
// net.UnixAddr does that translation). The daemon sends
//
//	READY=1 + STATUS=...        once packets are being forwarded, and after each reload
//	RELOADING=1 + MONOTONIC_USEC=...  when a reload begins (systemd 253 and later want the time)
//	STATUS=...                  after a management command changed the groups or sources,
//	                            and after members joined or left (at most once per applyEvery)
//	STOPPING=1                  when it stops
//
// and nothing else; a daemon that does not start sends no READY=1, only a STATUS saying why.

// systemdNotifier writes to $NOTIFY_SOCKET; the zero value (no systemd) does nothing.
type systemdNotifier struct {
	addr *net.UnixAddr
}

// newSystemdNotifier reads $NOTIFY_SOCKET and removes it from the environment, so that no
// process the daemon might start takes the messages for its own.
func newSystemdNotifier() systemdNotifier {
	name := os.Getenv("NOTIFY_SOCKET")
	os.Unsetenv("NOTIFY_SOCKET")
	if name == "" || (name[0] != '/' && name[0] != '@') {
		return systemdNotifier{}
	}
	return systemdNotifier{addr: &net.UnixAddr{Name: name, Net: "unixgram"}}
}

// send sends one message of VAR=value lines. systemd may be gone or restarting: an error
// here costs the daemon nothing, and the caller only logs it.
func (n systemdNotifier) send(lines ...string) error {
	if n.addr == nil {
		return nil
	}
	conn, err := net.DialUnix("unixgram", nil, n.addr)
	if err != nil {
		return fmt.Errorf("sd_notify: %w", err)
	}
	defer conn.Close()
	if _, err := conn.Write([]byte(strings.Join(lines, "\n") + "\n")); err != nil {
		return fmt.Errorf("sd_notify: %w", err)
	}
	return nil
}

// monotonicUsec is CLOCK_MONOTONIC in microseconds, as systemd reads MONOTONIC_USEC.
func monotonicUsec() string {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		return "0"
	}
	return fmt.Sprint(ts.Nano() / 1000)
}

// statusLine is the line systemctl status shows: what the daemon forwards, by role. The
// caller holds d.mu, or owns d before it starts serving.
func (d *daemon) statusLine() string {
	where := "in user space"
	if d.datapath == config.DatapathKernel {
		where = "in the kernel"
	}
	parts := []string{"STATUS=forwarding " + where}
	if d.cfg.Source != nil {
		parts = append(parts, fmt.Sprintf("source on %s: %s, %s", d.iface,
			words.Plural(d.sending.groups, "group"), words.Plural(d.sending.members, "member")))
	}
	if m := d.cfg.Member; m != nil {
		groups := "any group"
		if len(m.Groups) > 0 {
			groups = words.Plural(len(m.Groups), "group")
		}
		parts = append(parts, fmt.Sprintf("member on %s: %s, %s", m.TUN, words.Plural(len(m.Sources), "source"), groups))
	}
	return strings.Join(parts, "; ")
}

// notifyReady tells systemd that packets are being forwarded, and how.
func (d *daemon) notifyReady() {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.notifySystemd("READY=1", d.statusLine())
}

// notifySystemd sends a message to systemd, logging a failure.
func (d *daemon) notifySystemd(lines ...string) {
	if err := d.systemd.send(lines...); err != nil {
		d.log.Warn("cannot tell systemd", "err", err)
	}
}

// oneLine is err's message on one line, as a STATUS value must be.
func oneLine(err error) string {
	return strings.Join(strings.Fields(err.Error()), " ")
}
