package main

import (
	"fmt"
	"net/http"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/edgehook/edgehook/bridge/mosquittotest"
)

// `edgehook deadletters list|retry ID|retry --all` against the running
// daemon: it finds the daemon from the config's [http] listen, lists the dead
// letters, re-queues one by id (delivered with its original webhook-id), says
// so for an unknown id (exit 1), and retries all.
func TestDeadlettersCLI(t *testing.T) {
	b := mosquittotest.Start(t)
	rx := newSink(t)
	rx.set(http.StatusBadRequest)
	dir := t.TempDir()
	listen := fmt.Sprintf("127.0.0.1:%d", mosquittotest.FreePort(t))
	cfg := writeConfig(t, dir, daemonConfig(filepath.Join(dir, "store"), b.URL(), listen, rx.srv.URL, forwardRule))
	d := start(t, cfg, listen)
	publishN(t, publisher(t, b.URL()), 3) // three series, three dead letters
	waitUntil(t, "three dead letters", 20*time.Second, func() bool {
		return d.metric(`edgehook_dead_letters_total{endpoint="rx"}`) == 3
	})
	cli := func(args ...string) (string, int) {
		t.Helper()
		cmd := exec.Command(binary, append([]string{"deadletters"}, args...)...)
		out, _ := cmd.CombinedOutput()
		return string(out), cmd.ProcessState.ExitCode()
	}
	var out string
	var code int
	waitUntil(t, "the list to show three", 10*time.Second, func() bool {
		out, code = cli("list", "-c", cfg)
		return code == 0 && len(regexp.MustCompile(`(?m)^evt_\S+\s+rx\s+all\s`).FindAllString(out, -1)) == 3
	})
	if !strings.Contains(out, "ID") || !strings.Contains(out, "400") {
		t.Fatalf("list:\n%s", out)
	}
	ids := regexp.MustCompile(`(?m)^(evt_\S+)`).FindAllString(out, -1)

	rx.set(http.StatusOK)
	if out, code := cli("retry", "-c", cfg, ids[0]); code != 0 || !strings.Contains(out, "re-queued "+ids[0]) {
		t.Fatalf("retry %s: exit %d\n%s", ids[0], code, out)
	}
	waitUntil(t, "the retried one delivered", 10*time.Second, func() bool {
		rx.mu.Lock()
		defer rx.mu.Unlock()
		return rx.ok[ids[0]] == 1
	})
	if out, code := cli("retry", "evt_doesnotexist", "-c", cfg); code != 1 || !strings.Contains(out, "no dead letter") {
		t.Fatalf("retry of an unknown id: exit %d\n%s", code, out)
	}
	if out, code := cli("retry", "--all", "--url", "http://"+listen); code != 0 || !strings.Contains(out, "re-queued 2 dead letter(s)") {
		t.Fatalf("retry --all: exit %d\n%s", code, out)
	}
	waitUntil(t, "all delivered", 10*time.Second, func() bool {
		rx.mu.Lock()
		defer rx.mu.Unlock()
		return rx.ok[ids[1]] == 1 && rx.ok[ids[2]] == 1
	})
	if out, code := cli("list", "-c", cfg); code != 0 || !strings.Contains(out, "no dead letters") {
		t.Fatalf("list after retrying all: exit %d\n%s", code, out)
	}
	// delete: two more dead letters; one by id, then the rest.
	rx.set(http.StatusBadRequest)
	publishN(t, publisher(t, b.URL()), 2)
	waitUntil(t, "two new dead letters", 20*time.Second, func() bool {
		return d.metric(`edgehook_dead_letters{endpoint="rx"}`) == 2
	})
	out, _ = cli("list", "-c", cfg)
	ids = regexp.MustCompile(`(?m)^(evt_\S+)`).FindAllString(out, -1)
	if out, code := cli("delete", ids[0], "-c", cfg); code != 0 || !strings.Contains(out, "deleted "+ids[0]) {
		t.Fatalf("delete %s: exit %d\n%s", ids[0], code, out)
	}
	if out, code := cli("delete", "--all", "-c", cfg); code != 0 || !strings.Contains(out, "deleted 1 dead letter(s)") {
		t.Fatalf("delete --all: exit %d\n%s", code, out)
	}
	// A config we cannot read is named, not silently ignored.
	if out, _ := cli("list", "-c", filepath.Join(dir, "missing.toml")); !strings.Contains(out, "cannot use") {
		t.Errorf("an unreadable config is not mentioned:\n%s", out)
	}
	// JSON for scripts.
	if out, code := cli("list", "--json", "-c", cfg); code != 0 || !strings.Contains(out, `"count": 0`) {
		t.Fatalf("list --json: exit %d\n%s", code, out)
	}
	// Usage errors exit 2; an unreachable daemon exits 1.
	if _, code := cli("retry", "-c", cfg); code != 2 {
		t.Errorf("retry without an id: exit %d, want 2", code)
	}
	if _, code := cli("retry", "--all", "-c", cfg, ids[0]); code != 2 {
		t.Errorf("retry --all with an id: exit %d, want 2", code)
	}
	if _, code := cli("frobnicate"); code != 2 {
		t.Errorf("unknown subcommand: exit %d, want 2", code)
	}
	if out, code := cli("list", "--url", fmt.Sprintf("http://127.0.0.1:%d", mosquittotest.FreePort(t))); code != 1 || !strings.Contains(out, "cannot reach edgehook") {
		t.Errorf("unreachable daemon: exit %d\n%s", code, out)
	}
}
