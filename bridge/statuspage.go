package bridge

import (
	"bytes"
	_ "embed"
	"fmt"
	"html/template"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/edgehook/edgehook/bridge/queue"
)

//go:embed web/status.html
var statusHTML string

// parseStatusPage compiles the template of GET /. Run calls it once.
func parseStatusPage() (*template.Template, error) {
	return template.New("status").Funcs(template.FuncMap{
		"ago":        func(t, now time.Time) string { return humanDur(now.Sub(t)) + " ago" },
		"until":      func(t, now time.Time) string { return "in " + humanDur(t.Sub(now)) },
		"since":      func(t, now time.Time) string { return humanDur(now.Sub(t)) },
		"stamp":      func(t time.Time) string { return t.Local().Format("2006-01-02 15:04:05 MST") },
		"num":        func(v float64) string { return strconv.FormatFloat(v, 'g', 6, 64) },
		"join":       strings.Join,
		"bytes":      humanBytes,
		"stateClass": stateClass,
		"codeClass":  codeClass,
	}).Parse(statusHTML)
}

// maxDeadLettersShown bounds the dead letters listed on the page (newest
// first); the API lists them all.
const maxDeadLettersShown = 100

type statusPageData struct {
	S        Status
	Dead     []DeadLetter // newest first
	Flash    string
	FlashBad bool
	Refresh  int // seconds; 0: no auto-refresh
}

// handleStatusPage renders the status page: plain HTML and forms, no script.
func (b *Bridge) handleStatusPage(w http.ResponseWriter, r *http.Request) {
	d := statusPageData{S: b.status()}
	err := b.store.NewestDeadLetters(maxDeadLettersShown, func(j *queue.Job) { d.Dead = append(d.Dead, deadLetterOf(j)) })
	if err != nil {
		d.Flash, d.FlashBad = "reading dead letters failed: "+err.Error(), true
	}
	q := r.URL.Query()
	if n, err := strconv.Atoi(q.Get("refresh")); err == nil {
		d.Refresh = min(max(n, 5), 300)
	}
	if q.Has("deleted") {
		n, _ := strconv.Atoi(q.Get("deleted"))
		d.Flash, d.FlashBad = fmt.Sprintf("Deleted %d dead letter(s).", n), q.Get("failed") == "1"
	}
	if q.Has("retried") {
		retried, _ := strconv.Atoi(q.Get("retried"))
		skipped, _ := strconv.Atoi(q.Get("skipped"))
		switch {
		case q.Get("failed") == "1" && retried == 0:
			d.Flash, d.FlashBad = "Retry failed: nothing was re-queued (see the log).", true
		default:
			d.Flash = fmt.Sprintf("Re-queued %d dead letter(s).", retried)
			if skipped > 0 {
				d.Flash += fmt.Sprintf(" %d could not be retried: their endpoint is no longer configured, or they never rendered (see the reason).", skipped)
				d.FlashBad = true
			}
		}
	}
	var buf bytes.Buffer
	if err := b.page.Execute(&buf, d); err != nil {
		b.log.Error("rendering the status page failed", "err", err)
		http.Error(w, "rendering the status page failed", http.StatusInternalServerError)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
	h.Set("X-Frame-Options", "DENY") // the Retry buttons must not be clickjacked
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	_, _ = w.Write(buf.Bytes())
}

// humanDur is d rounded for people: "4s", "3m 20s", "2h 5m", "3d 4h".
func humanDur(d time.Duration) string {
	if d < 0 {
		d = 0
	}
	switch {
	case d < time.Second:
		return fmt.Sprintf("%dms", d.Milliseconds())
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm %ds", int(d.Minutes()), int(d.Seconds())%60)
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh %dm", int(d.Hours()), int(d.Minutes())%60)
	}
	return fmt.Sprintf("%dd %dh", int(d.Hours())/24, int(d.Hours())%24)
}

func humanBytes(n int64) string {
	switch {
	case n < 1<<10:
		return fmt.Sprintf("%d B", n)
	case n < 1<<20:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
}

func stateClass(state string) string {
	switch state {
	case "firing":
		return "bad"
	case "active", "pending":
		return "warn"
	case "ok":
		return "ok"
	}
	return ""
}

func codeClass(code int) string {
	switch {
	case code < 300:
		return "ok"
	case code == 429 || code == 503:
		return "warn"
	}
	return "bad"
}
