// Command bench measures edgehook end to end on this machine and compares it
// with a minimal non-durable bridge (bench/baseline) in the same run: the same
// mosquitto, the same publisher, the same receiver, one bridge at a time.
//
//	go run ./bench            (or: make bench)
//
// It reports sustained events/s (every message fires), publish→webhook
// latency at a fixed rate, CPU seconds per 100,000 messages when 1% fire,
// idle and peak RSS, and stripped static binary sizes. Every load loop is
// bounded in count and time, and everything listens on loopback only.
package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/edgehook/edgehook/bridge/mosquittotest"
)

var (
	nThroughput = flag.Int("messages", 50000, "messages in the throughput run (each fires)")
	rate        = flag.Int("rate", 1000, "messages per second in the latency run")
	nLatency    = flag.Int("latency-messages", 10000, "messages in the latency run")
	nCPU        = flag.Int("cpu-messages", 100000, "messages in the CPU run (1% fire)")
	sensors     = flag.Int("sensors", 50, "distinct topics (series) messages are spread over")
	sync_       = flag.String("sync", "fsync", "edgehook store.sync")
	outDir      = flag.String("out", "bench/out", "where results.md goes")
	only        = flag.String("only", "", "run only this bridge (edgehook or baseline)")
	nInbound    = flag.Int("inbound", 5000, "signed inbound requests in the inbound run (0 skips it)")
	ehBin       = flag.String("edgehook-bin", "", "measure this edgehook binary instead of building ./cmd/edgehook (A/B comparisons)")
)

func main() {
	flag.Parse()
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

// result is what one bridge achieved.
type result struct {
	name                 string
	throughput           float64 // events/s
	lost, dup            int
	p50, p99, pmax       time.Duration
	cpuPer100k           float64 // CPU seconds
	idleRSS, peakRSS     int64   // KiB
	peakAnon, peakFile   int64   // KiB: heap and stacks vs file-backed (the store's mmap)
	peakBacklog          int
	throughputLost       int
	latencyLost, cpuLost int
	// inbound (edgehook only)
	inRate                 float64 // requests/s, request → PUBACK → 200
	inP50, inP99           time.Duration
	cpuBadSig, cpuOversize float64 // CPU µs per rejected request
}

func run() error {
	work, err := os.MkdirTemp("", "edgehook-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	bins := map[string]string{}
	for name, pkg := range map[string]string{"edgehook": "./cmd/edgehook", "baseline": "./bench/baseline"} {
		bins[name] = filepath.Join(work, name)
		if name == "edgehook" && *ehBin != "" {
			bins[name] = *ehBin
			continue
		}
		if out, err := exec.Command("go", "build", "-trimpath", "-ldflags", "-s -w", "-o", bins[name], pkg).CombinedOutput(); err != nil {
			return fmt.Errorf("build %s: %v\n%s", pkg, err, out)
		}
	}
	bin := mosquittotest.Binary()
	if bin == "" {
		return errors.New("mosquitto is not installed (make deps)")
	}
	brokerDir := filepath.Join(work, "broker")
	os.MkdirAll(brokerDir, 0o700)
	broker, err := mosquittotest.Launch(bin, brokerDir, mosquittotest.Options{Ephemeral: true})
	if err != nil {
		return err
	}
	defer broker.Stop()
	rx, err := newReceiver()
	if err != nil {
		return err
	}
	defer rx.close()
	pub, err := newPublisher(broker.URL())
	if err != nil {
		return err
	}
	defer pub.c.Disconnect(100)

	fmt.Printf("machine: %d CPUs; mosquitto %s; edgehook store.sync=%s; %d series\n\n", numCPU(), broker.URL(), *sync_, *sensors)
	var results []result
	for _, name := range []string{"baseline", "edgehook"} {
		if *only != "" && *only != name {
			continue
		}
		r, err := measure(name, bins[name], work, broker.URL(), rx, pub)
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		results = append(results, r)
	}
	sizes := binarySizes(work)
	report := format(results, sizes)
	fmt.Print(report)
	os.MkdirAll(*outDir, 0o755)
	return os.WriteFile(filepath.Join(*outDir, "results.md"), []byte(report), 0o644)
}

// bridgeProc is a bridge under test running as a child process.
type bridgeProc struct {
	cmd        *exec.Cmd
	pid        int
	done       chan struct{}
	metricsURL string // edgehook only
	httpAddr   string // edgehook only
}

func startBridge(name, bin, work, brokerURL, rxURL string) (*bridgeProc, error) {
	topic := "bench/" + name + "/+"
	var cmd *exec.Cmd
	var metricsURL string
	ready := make(chan struct{})
	switch name {
	case "baseline":
		cmd = exec.Command(bin, "-broker", brokerURL, "-topic", topic, "-url", rxURL, "-below", "1000000", "-workers", "8")
	case "edgehook":
		dir := filepath.Join(work, "edgehook-"+strconv.FormatInt(time.Now().UnixNano(), 36))
		os.MkdirAll(dir, 0o700)
		listen, err := freeAddr()
		if err != nil {
			return nil, err
		}
		metricsURL = "http://" + listen + "/metrics"
		cfg := fmt.Sprintf(`
[mqtt]
broker = %q
client_id = "edgehook-bench-%d"
[http]
listen = %q
[store]
dir = %q
sync = %q
max_bytes = "1GiB"
[rules]
files = []
[[endpoint]]
name = "rx"
url = %q
secret = "whsec_YmVuY2gtc2VjcmV0LWZvci1lZGdlaG9vaw=="
concurrency = 8
timeout = "10s"
[[rule]]
name = "all"
topic = %q
value = "v"
below = 1000000.0
level = true
endpoints = ["rx"]

[[inbound]]
name = "cmd"
path = "/hooks/cmd"
secret = %q
rate = 0.0
topic = "bench/cmd/{{ .zone }}/set"
allow_topics = ["bench/cmd/+/set"]
payload = "{{ .mode }}"
`, brokerURL, time.Now().UnixNano(), listen, dir, *sync_, rxURL, topic, inboundSecret)
		path := filepath.Join(dir, "edgehook.toml")
		if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
			return nil, err
		}
		cmd = exec.Command(bin, "run", "-c", path, "--log-level", "warn")
		if addr := os.Getenv("BENCH_PPROF"); addr != "" {
			cmd.Env = append(os.Environ(), "EDGEHOOK_PPROF="+addr)
		}
		go func() {
			for {
				if resp, err := http.Get("http://" + listen + "/readyz"); err == nil {
					resp.Body.Close()
					if resp.StatusCode == 200 {
						close(ready)
						return
					}
				}
				time.Sleep(20 * time.Millisecond)
			}
		}()
	}
	cmd.Stderr = os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	stdout, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	p := &bridgeProc{cmd: cmd, pid: cmd.Process.Pid, done: make(chan struct{}), metricsURL: metricsURL,
		httpAddr: strings.TrimSuffix(strings.TrimPrefix(metricsURL, "http://"), "/metrics")}
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if sc.Text() == "ready" && name == "baseline" {
				close(ready)
			}
		}
		cmd.Wait()
		close(p.done)
	}()
	select {
	case <-ready:
		return p, nil
	case <-p.done:
		return nil, errors.New("exited before it was ready")
	case <-time.After(30 * time.Second):
		p.stop()
		return nil, errors.New("not ready within 30s")
	}
}

func (p *bridgeProc) stop() {
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(15 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

func measure(name, bin, work, brokerURL string, rx *receiver, pub *publisher) (result, error) {
	r := result{name: name}
	p, err := startBridge(name, bin, work, brokerURL, rx.url)
	if err != nil {
		return r, err
	}
	defer p.stop()
	time.Sleep(2 * time.Second)
	r.idleRSS = procStatus(p.pid, "VmRSS")
	stopSampling := make(chan struct{})
	sampled := make(chan struct{})
	go func() { // peak anonymous and file-backed RSS, sampled every 50 ms
		defer close(sampled)
		for {
			r.peakAnon = max(r.peakAnon, procStatus(p.pid, "RssAnon"))
			r.peakFile = max(r.peakFile, procStatus(p.pid, "RssFile")+procStatus(p.pid, "RssShmem"))
			if p.metricsURL != "" {
				if resp, err := http.Get(p.metricsURL); err == nil {
					sc := bufio.NewScanner(resp.Body)
					for sc.Scan() {
						if v, ok := strings.CutPrefix(sc.Text(), `edgehook_outbox_jobs{endpoint="rx"} `); ok {
							n, _ := strconv.Atoi(v)
							r.peakBacklog = max(r.peakBacklog, n)
						}
					}
					resp.Body.Close()
				}
			}
			select {
			case <-stopSampling:
				return
			case <-time.After(50 * time.Millisecond):
			}
		}
	}()
	defer func() { close(stopSampling); <-sampled }()
	topic := func(i int) string { return fmt.Sprintf("bench/%s/s%d", name, i%*sensors) }
	fmt.Printf("%s: idle RSS %d KiB (anonymous %d, file-backed %d: the executable's pages and the store's map)\n",
		name, r.idleRSS, procStatus(p.pid, "RssAnon"), procStatus(p.pid, "RssFile"))

	// 1. Throughput: every message fires.
	rx.reset(*nThroughput)
	start := time.Now()
	if err := pub.burst(*nThroughput, topic, func(int) float64 { return 5 }); err != nil {
		return r, err
	}
	last := rx.wait(*nThroughput, 120*time.Second)
	r.throughput = float64(rx.got()) / last.Sub(start).Seconds()
	r.throughputLost, r.dup = *nThroughput-rx.got(), rx.dups()
	fmt.Printf("%s: %d events in %v: %.0f events/s (lost %d, duplicates %d)\n", name, rx.got(), last.Sub(start).Round(time.Millisecond), r.throughput, r.throughputLost, r.dup)
	rx.settle()

	// 2. Latency at a fixed rate.
	rx.reset(*nLatency)
	pub.paced(*nLatency, *rate, topic)
	rx.wait(*nLatency, 60*time.Second)
	r.p50, r.p99, r.pmax = rx.percentiles()
	if p.metricsURL != "" && os.Getenv("BENCH_HIST") != "" {
		if resp, err := http.Get(p.metricsURL); err == nil {
			sc := bufio.NewScanner(resp.Body)
			for sc.Scan() {
				if l := sc.Text(); strings.HasPrefix(l, "edgehook_store_commit_seconds_bucket") || strings.HasPrefix(l, "edgehook_delivery_wait_seconds_bucket") || strings.HasPrefix(l, "edgehook_delivery_latency_seconds_bucket") {
					fmt.Println("  ", l)
				}
			}
			resp.Body.Close()
		}
	}
	r.latencyLost = *nLatency - rx.got()
	fmt.Printf("%s: latency at %d msg/s: p50 %v p99 %v max %v (lost %d)\n", name, *rate, r.p50, r.p99, r.pmax, r.latencyLost)
	rx.settle()

	// 3. CPU per 100k messages when 1% fire.
	fires := *nCPU / 100
	rx.reset(fires)
	cpu0 := procCPU(p.pid)
	if err := pub.burst(*nCPU, topic, func(i int) float64 {
		if i%100 == 0 {
			return 5
		}
		return 2e6
	}); err != nil {
		return r, err
	}
	rx.wait(fires, 120*time.Second)
	time.Sleep(500 * time.Millisecond) // let the bridge finish the last non-firing messages
	r.cpuPer100k = (procCPU(p.pid) - cpu0) * 100000 / float64(*nCPU)
	r.cpuLost = fires - rx.got()
	r.peakRSS = procStatus(p.pid, "VmHWM")
	if name == "edgehook" && *nInbound > 0 {
		if err := measureInbound(p, &r); err != nil {
			return r, err
		}
	}
	if name == "edgehook" {
		matches, _ := filepath.Glob(filepath.Join(work, "edgehook-*", "edgehook.db"))
		for _, m := range matches {
			if fi, err := os.Stat(m); err == nil {
				fmt.Printf("%s: store file %s is %d KiB\n", name, filepath.Base(filepath.Dir(m)), fi.Size()>>10)
			}
		}
	}
	fmt.Printf("%s: peak outbox backlog %d jobs\n", name, r.peakBacklog)
	fmt.Printf("%s: %.2f CPU s per 100k messages (1%% fire); peak RSS %d KiB (sampled peaks: anonymous %d KiB, file-backed %d KiB)\n\n",
		name, r.cpuPer100k, r.peakRSS, r.peakAnon, r.peakFile)
	return r, nil
}

// receiver counts events by sequence number and records publish→receive latency.
type receiver struct {
	srv     *http.Server
	url     string
	mu      sync.Mutex
	want    int
	seen    map[int]int
	lat     []time.Duration
	last    time.Time
	changed chan struct{}
}

func newReceiver() (*receiver, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	rx := &receiver{url: "http://" + l.Addr().String() + "/hook", changed: make(chan struct{}, 1)}
	rx.srv = &http.Server{Handler: http.HandlerFunc(rx.handle), ReadHeaderTimeout: 5 * time.Second}
	go rx.srv.Serve(l)
	return rx, nil
}

func (rx *receiver) close() { rx.srv.Close() }

func (rx *receiver) handle(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	now := time.Now()
	var e struct {
		Payload struct {
			Seq int   `json:"seq"`
			TS  int64 `json:"ts"`
		} `json:"payload"`
	}
	if json.Unmarshal(body, &e) != nil {
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	rx.mu.Lock()
	rx.seen[e.Payload.Seq]++
	if rx.seen[e.Payload.Seq] == 1 {
		rx.lat = append(rx.lat, now.Sub(time.Unix(0, e.Payload.TS)))
		rx.last = now
	}
	rx.mu.Unlock()
	select {
	case rx.changed <- struct{}{}:
	default:
	}
}

func (rx *receiver) reset(want int) {
	rx.mu.Lock()
	rx.want, rx.seen, rx.lat = want, make(map[int]int, want), make([]time.Duration, 0, want)
	rx.mu.Unlock()
}

func (rx *receiver) got() int {
	rx.mu.Lock()
	defer rx.mu.Unlock()
	return len(rx.lat)
}

func (rx *receiver) dups() int {
	rx.mu.Lock()
	defer rx.mu.Unlock()
	n := 0
	for _, c := range rx.seen {
		n += c - 1
	}
	return n
}

// wait returns when n events arrived or nothing arrived for a while (bounded by max).
func (rx *receiver) wait(n int, max time.Duration) time.Time {
	deadline := time.Now().Add(max)
	for rx.got() < n && time.Now().Before(deadline) {
		select {
		case <-rx.changed:
		case <-time.After(5 * time.Second):
			if rx.got() > 0 {
				rx.mu.Lock()
				idle := time.Since(rx.last)
				rx.mu.Unlock()
				if idle > 5*time.Second {
					goto done
				}
			}
		}
	}
done:
	rx.mu.Lock()
	defer rx.mu.Unlock()
	return rx.last
}

// settle waits until no event has arrived for 300 ms (retries of the previous run).
func (rx *receiver) settle() {
	for i := 0; i < 100; i++ {
		rx.mu.Lock()
		idle := time.Since(rx.last)
		rx.mu.Unlock()
		if idle > 300*time.Millisecond {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (rx *receiver) percentiles() (p50, p99, pmax time.Duration) {
	rx.mu.Lock()
	defer rx.mu.Unlock()
	if len(rx.lat) == 0 {
		return
	}
	l := append([]time.Duration(nil), rx.lat...)
	sort.Slice(l, func(i, j int) bool { return l[i] < l[j] })
	return l[len(l)/2], l[len(l)*99/100], l[len(l)-1]
}

// publisher sends QoS 1 messages {"v", "seq", "ts"} and waits for PUBACKs.
type publisher struct {
	c   paho.Client
	seq atomic.Int64
}

func newPublisher(url string) (*publisher, error) {
	c := paho.NewClient(paho.NewClientOptions().AddBroker(url).SetClientID("bench-publisher").SetMaxResumePubInFlight(1000))
	if t := c.Connect(); !t.WaitTimeout(10*time.Second) || t.Error() != nil {
		return nil, fmt.Errorf("publisher: %v", t.Error())
	}
	return &publisher{c: c}, nil
}

func (p *publisher) payload(v float64) []byte {
	return []byte(fmt.Sprintf(`{"v": %g, "seq": %d, "ts": %d}`, v, p.seq.Add(1), time.Now().UnixNano()))
}

// burst publishes n messages as fast as the broker acknowledges them, with at
// most 1000 unacknowledged at a time.
func (p *publisher) burst(n int, topic func(int) string, value func(int) float64) error {
	p.seq.Store(0)
	toks := make(chan paho.Token, 1000)
	errc := make(chan error, 1)
	go func() {
		var first error
		for t := range toks {
			if !t.WaitTimeout(30*time.Second) && first == nil {
				first = errors.New("publish not acknowledged within 30s")
			}
			if t.Error() != nil && first == nil {
				first = t.Error()
			}
		}
		errc <- first
	}()
	for i := 0; i < n; i++ {
		toks <- p.c.Publish(topic(i), 1, false, p.payload(value(i)))
	}
	close(toks)
	return <-errc
}

// paced publishes n firing messages at rate per second.
func (p *publisher) paced(n, rate int, topic func(int) string) {
	p.seq.Store(0)
	interval := time.Second / time.Duration(rate)
	start := time.Now()
	for i := 0; i < n; i++ {
		if d := time.Until(start.Add(time.Duration(i) * interval)); d > 0 {
			time.Sleep(d)
		}
		p.c.Publish(topic(i), 1, false, p.payload(5))
	}
}

func procCPU(pid int) float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	s := string(b)
	fields := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	ut, _ := strconv.ParseFloat(fields[11], 64)
	st, _ := strconv.ParseFloat(fields[12], 64)
	return (ut + st) / 100 // USER_HZ
}

func procStatus(pid int, key string) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, key+":"); ok {
			n, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return n
		}
	}
	return 0
}

func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

func numCPU() int {
	b, _ := os.ReadFile("/proc/cpuinfo")
	return strings.Count(string(b), "processor\t:")
}

// binarySizes cross-builds stripped static binaries and returns their sizes.
func binarySizes(work string) map[string]int64 {
	sizes := map[string]int64{}
	for _, t := range []struct{ name, goarch, goarm string }{{"linux/arm (GOARM=6)", "arm", "6"}, {"linux/arm64", "arm64", ""}, {"linux/amd64", "amd64", ""}} {
		out := filepath.Join(work, "size-"+t.goarch)
		cmd := exec.CommandContext(context.Background(), "go", "build", "-trimpath", "-ldflags", "-s -w", "-o", out, "./cmd/edgehook")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+t.goarch, "GOARM="+t.goarm)
		if b, err := cmd.CombinedOutput(); err != nil {
			fmt.Fprintf(os.Stderr, "cross-build %s: %v\n%s", t.name, err, b)
			continue
		}
		if fi, err := os.Stat(out); err == nil {
			sizes[t.name] = fi.Size()
		}
	}
	return sizes
}

func format(rs []result, sizes map[string]int64) string {
	var b strings.Builder
	fmt.Fprintf(&b, "| figure | baseline | edgehook | edgehook / baseline |\n|---|---|---|---|\n")
	get := func(name string) *result {
		for i := range rs {
			if rs[i].name == name {
				return &rs[i]
			}
		}
		return &result{}
	}
	base, eh := get("baseline"), get("edgehook")
	ratio := func(a, b float64) string {
		if b == 0 {
			return "-"
		}
		return fmt.Sprintf("%.2f×", a/b)
	}
	ms := func(d time.Duration) string { return fmt.Sprintf("%.2f ms", float64(d)/1e6) }
	fmt.Fprintf(&b, "| sustained events/s (%d msgs, all fire) | %.0f | %.0f | %s |\n", *nThroughput, base.throughput, eh.throughput, ratio(eh.throughput, base.throughput))
	fmt.Fprintf(&b, "| lost / duplicated in that run | %d / %d | %d / %d | |\n", base.throughputLost, base.dup, eh.throughputLost, eh.dup)
	fmt.Fprintf(&b, "| latency p50 at %d msg/s | %s | %s | |\n", *rate, ms(base.p50), ms(eh.p50))
	fmt.Fprintf(&b, "| latency p99 at %d msg/s | %s | %s | |\n", *rate, ms(base.p99), ms(eh.p99))
	fmt.Fprintf(&b, "| latency max at %d msg/s | %s | %s | |\n", *rate, ms(base.pmax), ms(eh.pmax))
	if eh.inRate > 0 {
		fmt.Fprintf(&b, "| inbound: signed requests/s (request → PUBACK → 200, 8 clients) | | %.0f | |\n", eh.inRate)
		fmt.Fprintf(&b, "| inbound: latency p50 / p99 | | %s / %s | |\n", ms(eh.inP50), ms(eh.inP99))
		fmt.Fprintf(&b, "| inbound: CPU per rejected request, bad signature / oversized body | | %.0f / %.0f µs | |\n", eh.cpuBadSig, eh.cpuOversize)
	}
	fmt.Fprintf(&b, "| CPU s per 100k msgs (1%% fire) | %.2f | %.2f | %s |\n", base.cpuPer100k, eh.cpuPer100k, ratio(eh.cpuPer100k, base.cpuPer100k))
	fmt.Fprintf(&b, "| idle RSS | %.1f MiB | %.1f MiB | |\n", float64(base.idleRSS)/1024, float64(eh.idleRSS)/1024)
	fmt.Fprintf(&b, "| peak RSS (VmHWM) | %.1f MiB | %.1f MiB | |\n", float64(base.peakRSS)/1024, float64(eh.peakRSS)/1024)
	fmt.Fprintf(&b, "| of which anonymous / file-backed (sampled) | %.1f / %.1f MiB | %.1f / %.1f MiB | |\n",
		float64(base.peakAnon)/1024, float64(base.peakFile)/1024, float64(eh.peakAnon)/1024, float64(eh.peakFile)/1024)
	for _, k := range []string{"linux/arm (GOARM=6)", "linux/arm64", "linux/amd64"} {
		fmt.Fprintf(&b, "| edgehook binary %s, static, stripped | | %.1f MiB | |\n", k, float64(sizes[k])/(1<<20))
	}
	return b.String()
}

const inboundSecret = "whsec_YmVuY2gtaW5ib3VuZC1zZWNyZXQ="

// measureInbound sends signed inbound requests from 8 clients and measures
// requests/s and latency (each answered after the broker's PUBACK), then the
// daemon's CPU per request it rejects for a bad signature or an oversized body.
func measureInbound(p *bridgeProc, r *result) error {
	key, _ := base64.StdEncoding.DecodeString(strings.TrimPrefix(inboundSecret, "whsec_"))
	url := "http://" + p.httpAddr + "/hooks/cmd"
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 16}, Timeout: 10 * time.Second}
	send := func(id string, body []byte, sign bool, contentLength int64) (int, error) {
		req, _ := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
		if contentLength >= 0 {
			req.ContentLength = contentLength
		}
		now := time.Now()
		ts := strconv.FormatInt(now.Unix(), 10)
		req.Header.Set("webhook-id", id)
		req.Header.Set("webhook-timestamp", ts)
		sig := "v1," + strings.Repeat("A", 43) + "="
		if sign {
			m := hmac.New(sha256.New, key)
			m.Write([]byte(id + "." + ts + "."))
			m.Write(body)
			sig = "v1," + base64.StdEncoding.EncodeToString(m.Sum(nil))
		}
		req.Header.Set("webhook-signature", sig)
		resp, err := client.Do(req)
		if err != nil {
			return 0, err
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode, nil
	}
	run := func(n int, f func(i int) (int, error), want int) ([]time.Duration, time.Duration, error) {
		var mu sync.Mutex
		lat := make([]time.Duration, 0, n)
		var next atomic.Int64
		var firstErr error
		var wg sync.WaitGroup
		start := time.Now()
		for w := 0; w < 8; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					i := int(next.Add(1)) - 1
					if i >= n {
						return
					}
					t0 := time.Now()
					code, err := f(i)
					d := time.Since(t0)
					mu.Lock()
					if (err != nil || code != want) && firstErr == nil {
						firstErr = fmt.Errorf("request %d: status %d, err %v", i, code, err)
					}
					lat = append(lat, d)
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
		return lat, time.Since(start), firstErr
	}
	body := []byte(`{"zone": "living", "mode": "heat"}`)
	lat, took, err := run(*nInbound, func(i int) (int, error) {
		return send(fmt.Sprintf("msg_%d_%d", time.Now().UnixNano(), i), body, true, -1)
	}, 200)
	if err != nil {
		return err
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	r.inRate = float64(len(lat)) / took.Seconds()
	r.inP50, r.inP99 = lat[len(lat)/2], lat[len(lat)*99/100]
	fmt.Printf("edgehook: inbound %d signed requests in %v: %.0f req/s, p50 %v p99 %v\n", len(lat), took.Round(time.Millisecond), r.inRate, r.inP50, r.inP99)

	const nReject = 20000
	cpu0 := procCPU(p.pid)
	if _, _, err := run(nReject, func(i int) (int, error) { return send(fmt.Sprintf("bad_%d", i), body, false, -1) }, 401); err != nil {
		return err
	}
	cpu1 := procCPU(p.pid)
	big := bytes.Repeat([]byte("x"), 100<<10) // over the default 64KiB max_body
	if _, _, err := run(nReject, func(i int) (int, error) { return send(fmt.Sprintf("big_%d", i), big, true, int64(len(big))) }, 413); err != nil {
		return err
	}
	cpu2 := procCPU(p.pid)
	r.cpuBadSig = (cpu1 - cpu0) * 1e6 / nReject
	r.cpuOversize = (cpu2 - cpu1) * 1e6 / nReject
	fmt.Printf("edgehook: daemon CPU per rejected request: bad signature %.0f µs, oversized body %.0f µs (HTTP server included)\n", r.cpuBadSig, r.cpuOversize)
	return nil
}
