package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/edgehook/edgehook/bridge/mosquittotest"
)

// chromiumPath finds Debian's chromium; without it the browser test skips,
// except in CI (EDGEHOOK_REQUIRE_MOSQUITTO=1), where it fails.
func chromiumPath(t *testing.T) string {
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("EDGEHOOK_REQUIRE_MOSQUITTO") == "1" {
		t.Fatal("chromium is missing (make deps installs it)")
	}
	t.Skip("SKIPPED: chromium is not installed (make deps installs it)")
	return ""
}

const coldRuleE2E = `
[[rule]]
name = "cold"
topic = "home/+/temperature"
value = "temperature"
below = 18.0
hysteresis = 0.5
resolve = true
endpoints = ["rx"]

[[inbound]]
name = "heating"
path = "/hooks/heating"
secret = "browser-inbound-secret"
topic = "home/heating/set"
`

// The status page in a real headless browser: it shows the rule that fired
// and the dead letter its webhook became; clicking Retry re-queues it and the
// receiver gets it, with its original webhook-id. Screenshots go to the
// test's artifact directory (go test -artifacts).
func TestStatusPageInBrowser(t *testing.T) {
	chrome := chromiumPath(t)
	b := mosquittotest.Start(t)
	rx := newSink(t)
	rx.set(http.StatusBadRequest) // the first attempt dead-letters the event
	dir := t.TempDir()
	listen := fmt.Sprintf("127.0.0.1:%d", mosquittotest.FreePort(t))
	cfg := writeConfig(t, dir, daemonConfig(filepath.Join(dir, "store"), b.URL(), listen, rx.srv.URL, coldRuleE2E))
	d := start(t, cfg, listen)

	pub := publisher(t, b.URL())
	for _, v := range []float64{21, 16.5} {
		tok := pub.Publish("home/kitchen/temperature", 1, false, fmt.Sprintf(`{"temperature": %v}`, v))
		if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
			t.Fatalf("publish: %v", tok.Error())
		}
	}
	var id string
	waitUntil(t, "a dead letter", 20*time.Second, func() bool {
		resp, err := http.Get(d.http + "/api/v1/deadletters")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		var list struct {
			DeadLetters []struct {
				ID string `json:"id"`
			} `json:"dead_letters"`
		}
		if json.NewDecoder(resp.Body).Decode(&list) != nil || len(list.DeadLetters) != 1 {
			return false
		}
		id = list.DeadLetters[0].ID
		return true
	})
	// An unsigned inbound request, to show in the inbound table.
	if resp, err := http.Post(d.http+"/hooks/heating", "application/json", strings.NewReader(`{"on":true}`)); err == nil {
		resp.Body.Close()
	}
	rx.set(http.StatusOK)

	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(chrome), chromedp.NoSandbox,
		chromedp.DisableGPU, chromedp.Flag("disable-dev-shm-usage", true), chromedp.WindowSize(1280, 1000))
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	actx, cancelAlloc := chromedp.NewExecAllocator(ctx, opts...)
	defer cancelAlloc()
	bctx, cancelBrowser := chromedp.NewContext(actx)
	defer cancelBrowser()

	must := func(what string, err error) {
		t.Helper()
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	must("loading the status page", chromedp.Do(bctx, chromedp.Navigate(d.http+"/")))
	must("waiting for the dead letter", chromedp.Do(bctx, chromedp.WaitVisible(chromedp.ID("dl-"+id))))
	page, err := chromedp.Run(bctx, chromedp.Text(chromedp.CSS("body")))
	must("reading the page", err)
	ready, err := chromedp.Run(bctx, chromedp.Text(chromedp.ID("ready")))
	must("reading the ready badge", err)
	before, err := chromedp.Run(bctx, chromedp.FullScreenshot(90))
	must("screenshot", err)
	for _, want := range []string{"cold", "1 firing", "home/kitchen", "16.5", "last fired home/kitchen", id, "400", "Retry", "heating", "/hooks/heating", "401"} {
		if !strings.Contains(page, want) {
			t.Errorf("the page does not show %q", want)
		}
	}
	if ready != "ready" {
		t.Errorf("ready badge says %q", ready)
	}
	for _, secret := range []string{secret, "browser-inbound-secret"} {
		if strings.Contains(page, secret) {
			t.Error("the page shows a secret")
		}
	}

	// Click Retry: the form posts, the daemon re-queues and sends the
	// browser back to the page, which says so.
	resp, err := chromedp.RunResponse(bctx, chromedp.Click(chromedp.CSS("#dl-"+id+" button")))
	must("clicking Retry", err)
	if resp.Status != http.StatusOK {
		t.Errorf("after Retry the browser landed on a %d", resp.Status)
	}
	flash, err := chromedp.Run(bctx, chromedp.Text(chromedp.ID("flash")))
	must("reading the notice", err)
	if !strings.Contains(flash, "Re-queued 1 dead letter") {
		t.Errorf("after Retry the page says %q", flash)
	}
	waitUntil(t, "the receiver to get the retried event", 20*time.Second, func() bool {
		rx.mu.Lock()
		defer rx.mu.Unlock()
		return rx.ok[id] == 1
	})
	// Reload: the dead letter is gone.
	must("reloading", chromedp.Do(bctx, chromedp.Navigate(d.http+"/")))
	page, err = chromedp.Run(bctx, chromedp.Text(chromedp.CSS("body")))
	must("reading the page", err)
	after, err := chromedp.Run(bctx, chromedp.FullScreenshot(90))
	must("screenshot", err)
	if strings.Contains(page, "Retry all") {
		t.Error("dead letters are still listed after the retried one was delivered")
	}
	out := t.ArtifactDir()
	for name, img := range map[string][]byte{"status-before-retry.jpg": before, "status-after-retry.jpg": after} {
		p := filepath.Join(out, name)
		if err := os.WriteFile(p, img, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("screenshot %s (%d bytes)", p, len(img))
	}
	if rx.bad != 0 {
		t.Errorf("%d deliveries failed verification", rx.bad)
	}
}
