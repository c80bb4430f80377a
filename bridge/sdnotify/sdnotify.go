// Package sdnotify speaks systemd's notify protocol (sd_notify(3)): states
// such as READY=1, RELOADING=1, STOPPING=1 and WATCHDOG=1 are datagrams sent
// to the socket named by $NOTIFY_SOCKET. Without that variable (not started
// by systemd with Type=notify) every call does nothing.
package sdnotify

import (
	"fmt"
	"net"
	"strconv"
	"time"
)

// Notifier sends states to systemd. The zero value and nil do nothing. Safe
// for concurrent use.
type Notifier struct {
	addr     *net.UnixAddr
	watchdog time.Duration
}

// FromEnv reads NOTIFY_SOCKET, WATCHDOG_USEC and WATCHDOG_PID (for pid).
func FromEnv(getenv func(string) (string, bool), pid int) *Notifier {
	sock, ok := getenv("NOTIFY_SOCKET")
	if !ok || sock == "" {
		return nil
	}
	n := &Notifier{addr: &net.UnixAddr{Name: sock, Net: "unixgram"}}
	if sock[0] == '@' {
		n.addr.Name = "\x00" + sock[1:] // abstract namespace
	}
	if us, ok := getenv("WATCHDOG_USEC"); ok {
		if p, ok := getenv("WATCHDOG_PID"); !ok || p == strconv.Itoa(pid) {
			if v, err := strconv.ParseInt(us, 10, 64); err == nil && v > 0 {
				n.watchdog = time.Duration(v) * time.Microsecond
			}
		}
	}
	return n
}

// Notify sends state, e.g. "READY=1" or "STATUS=connected".
func (n *Notifier) Notify(state string) error {
	if n == nil || n.addr == nil {
		return nil
	}
	c, err := net.DialUnix("unixgram", nil, n.addr)
	if err != nil {
		return fmt.Errorf("sd_notify: %w", err)
	}
	defer c.Close()
	if _, err := c.Write([]byte(state)); err != nil {
		return fmt.Errorf("sd_notify: %w", err)
	}
	return nil
}

// Reloading is the RELOADING=1 message, with the monotonic timestamp that
// systemd (Type=notify-reload, v253+) expects.
func Reloading() string {
	return "RELOADING=1\nMONOTONIC_USEC=" + strconv.FormatInt(monotonicUsec(), 10)
}

// WatchdogInterval is how often to send WATCHDOG=1 (half of WatchdogSec), or 0.
func (n *Notifier) WatchdogInterval() time.Duration {
	if n == nil {
		return 0
	}
	return n.watchdog / 2
}
