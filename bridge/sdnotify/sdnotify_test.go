package sdnotify

import (
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestNotify(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "notify")
	l, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	env := map[string]string{"NOTIFY_SOCKET": sock, "WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "42"}
	n := FromEnv(func(k string) (string, bool) { v, ok := env[k]; return v, ok }, 42)
	if n.WatchdogInterval() != 15*time.Second {
		t.Fatalf("watchdog interval %v", n.WatchdogInterval())
	}
	for _, state := range []string{"READY=1", Reloading(), "STOPPING=1"} {
		if err := n.Notify(state); err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 256)
		l.SetReadDeadline(time.Now().Add(time.Second))
		k, err := l.Read(buf)
		if err != nil || !strings.HasPrefix(string(buf[:k]), strings.Split(state, "\n")[0]) {
			t.Fatalf("got %q, %v", buf[:k], err)
		}
	}
	if !strings.Contains(Reloading(), "MONOTONIC_USEC=") {
		t.Fatal(Reloading())
	}
	// Another process's watchdog is not ours; no socket means do nothing.
	if FromEnv(func(k string) (string, bool) { v, ok := env[k]; return v, ok }, 7).WatchdogInterval() != 0 {
		t.Fatal("watchdog of another pid")
	}
	var none *Notifier
	if err := none.Notify("READY=1"); err != nil || none.WatchdogInterval() != 0 {
		t.Fatal("nil notifier")
	}
}
