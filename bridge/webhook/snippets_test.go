package webhook

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// The receiver snippets in docs/verify (quoted in README.md) verify what Sign
// produces and reject tampering. Python and Node are skipped when missing.
func TestReceiverSnippets(t *testing.T) {
	root := filepath.Join("..", "..")
	readme, err := os.ReadFile(filepath.Join(root, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	runners := []struct {
		file string
		cmd  []string
	}{
		{"verify.go", []string{"go", "run"}},
		{"verify.py", []string{"python3"}},
		{"verify.js", []string{"node"}},
	}
	const secret = "whsec_c25pcHBldC10ZXN0LXNlY3JldC1mb3ItZWRnZWhvb2s="
	key, _ := DecodeKey(secret)
	body := []byte(`{"type":"rule.fired","value":17.4}`)
	now := time.Now()
	good := map[string]string{HeaderID: "evt_1", HeaderTimestamp: itoa(now.Unix()), HeaderSignature: "v1,bogus " + Sign(key, "evt_1", now, body)}
	cases := []struct {
		name    string
		secret  string
		headers map[string]string
		body    []byte
		want    string
	}{
		{"valid", secret, good, body, "valid"},
		{"raw secret", "plain-secret", map[string]string{HeaderID: "evt_2", HeaderTimestamp: itoa(now.Unix()),
			HeaderSignature: Sign([]byte("plain-secret"), "evt_2", now, body)}, body, "valid"},
		{"body altered", secret, good, []byte(`{"type":"rule.fired","value":17.5}`), "invalid"},
		{"wrong secret", "whsec_b3RoZXI=", good, body, "invalid"},
		{"stale", secret, map[string]string{HeaderID: "evt_1", HeaderTimestamp: itoa(now.Add(-10 * time.Minute).Unix()),
			HeaderSignature: Sign(key, "evt_1", now.Add(-10*time.Minute), body)}, body, "invalid"},
		{"missing headers", secret, map[string]string{}, body, "invalid"},
	}
	for _, r := range runners {
		t.Run(r.file, func(t *testing.T) {
			path := filepath.Join(root, "docs", "verify", r.file)
			src, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			snippet := between(string(src), "snippet start\n", "snippet end")
			snippet = strings.TrimRight(snippet[:strings.LastIndex(snippet, "\n")+1], "\n") // drop the marker's comment prefix line
			if snippet == "" || !bytes.Contains(readme, []byte(snippet)) {
				t.Errorf("README.md does not quote the snippet of %s verbatim:\n%s", r.file, snippet)
			}
			if _, err := exec.LookPath(r.cmd[0]); err != nil {
				t.Skipf("%s not installed", r.cmd[0])
			}
			for _, c := range cases {
				in, _ := json.Marshal(map[string]any{"secret": c.secret, "headers": c.headers, "body": c.body})
				cmd := exec.Command(r.cmd[0], append(r.cmd[1:], path)...)
				cmd.Stdin = bytes.NewReader(in)
				out, err := cmd.CombinedOutput()
				if got := strings.TrimSpace(string(out)); err != nil || got != c.want {
					t.Errorf("%s: got %q (%v), want %q", c.name, got, err, c.want)
				}
			}
		})
	}
}

func between(s, from, to string) string {
	i := strings.Index(s, from)
	j := strings.Index(s, to)
	if i < 0 || j < i {
		return ""
	}
	return s[i+len(from) : j]
}

func itoa(n int64) string { b, _ := json.Marshal(n); return string(b) }
