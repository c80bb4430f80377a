// Package mosquittotest starts a real mosquitto broker for tests, on a free
// loopback port, with persistence in a temporary directory so it can be
// stopped, killed and restarted with its sessions intact.
//
// When the mosquitto binary is missing the test is skipped with a loud
// message, unless EDGEHOOK_REQUIRE_MOSQUITTO=1 (as CI sets), which turns the
// skip into a failure. `make test` installs the Debian mosquitto package.
package mosquittotest

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Broker is one mosquitto process under test control. Methods are safe for
// concurrent use.
type Broker struct {
	bin     string
	dir     string
	port    int
	tlsPort int
	tls     TLSFiles
	conf    string

	mu  sync.Mutex // guards cmd
	cmd *exec.Cmd
}

// Options adjust the broker configuration.
type Options struct {
	// Extra is appended to mosquitto.conf verbatim.
	Extra string
	// Ephemeral turns persistence off (benchmarks: no autosave work).
	Ephemeral bool
	// Users, when set, turns anonymous access off: only these username →
	// password pairs may connect (written with mosquitto_passwd).
	Users map[string]string
	// TLS adds a second listener that requires TLS and a client certificate
	// signed by a test CA (see Broker.TLSURL and Broker.TLS).
	TLS bool
}

// Binary returns the path of mosquitto, or "" when it is not installed.
func Binary() string {
	if p, err := exec.LookPath("mosquitto"); err == nil {
		return p
	}
	for _, p := range []string{"/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto", "/opt/homebrew/sbin/mosquitto"} {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	return ""
}

// Require skips (or, with EDGEHOOK_REQUIRE_MOSQUITTO=1, fails) the test when
// mosquitto is not installed, and returns its path.
func Require(t testing.TB) string {
	t.Helper()
	bin := Binary()
	if bin == "" {
		msg := "mosquitto is not installed: this integration test needs a real broker (run `make test`, which installs it, or apt-get install mosquitto)"
		if os.Getenv("EDGEHOOK_REQUIRE_MOSQUITTO") == "1" {
			t.Fatal(msg)
		}
		t.Skip("SKIPPED: " + msg)
	}
	return bin
}

// Start starts a broker and stops it when the test ends.
func Start(t testing.TB, opts ...Options) *Broker {
	t.Helper()
	bin := Require(t)
	b, err := Launch(bin, t.TempDir(), opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Stop)
	return b
}

// Launch starts mosquitto (bin) with its files in dir, on a free loopback
// port, for use outside tests (benchmarks). The caller stops it.
func Launch(bin, dir string, opts ...Options) (*Broker, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	b := &Broker{bin: bin, dir: dir, port: port}
	var extra []string
	persistence, anonymous := "true", "true"
	for _, o := range opts {
		extra = append(extra, o.Extra)
		if o.Ephemeral {
			persistence = "false"
		}
		if len(o.Users) > 0 {
			anonymous = "false"
			pw := filepath.Join(dir, "passwd")
			for u, p := range o.Users {
				args := []string{"-b", pw, u, p}
				if _, err := os.Stat(pw); err != nil {
					args = append([]string{"-c"}, args...)
				}
				if out, err := exec.Command("mosquitto_passwd", args...).CombinedOutput(); err != nil {
					return nil, fmt.Errorf("mosquitto_passwd (installed with mosquitto): %v %s", err, out)
				}
			}
			extra = append(extra, "password_file "+pw)
		}
		if o.TLS {
			if b.tlsPort, err = freePort(); err != nil {
				return nil, err
			}
			if b.tls, err = NewPKI(dir); err != nil {
				return nil, err
			}
			extra = append(extra, fmt.Sprintf("listener %d 127.0.0.1\ncafile %s\ncertfile %s\nkeyfile %s\nrequire_certificate true\ntls_version tlsv1.2",
				b.tlsPort, b.tls.CA, b.tls.ServerCert, b.tls.ServerKey))
		}
	}
	if os.Geteuid() == 0 {
		// As root mosquitto switches to user "mosquitto", which cannot write
		// its database into a private directory.
		extra = append(extra, "user root")
	}
	b.conf = filepath.Join(b.dir, "mosquitto.conf")
	conf := fmt.Sprintf(`listener %d 127.0.0.1
allow_anonymous %s
persistence %s
persistence_location %s/
autosave_interval 1
max_inflight_messages 1000
max_queued_messages 1000000
log_dest stderr
log_type error
log_type warning
%s
`, b.port, anonymous, persistence, b.dir, strings.Join(extra, "\n"))
	if err := os.WriteFile(b.conf, []byte(conf), 0o600); err != nil {
		return nil, err
	}
	if err := b.start(); err != nil {
		return nil, err
	}
	return b, nil
}

// Dir returns the broker's private directory (config, persistence, log).
func (b *Broker) Dir() string { return b.dir }

// Addr returns host:port.
func (b *Broker) Addr() string { return fmt.Sprintf("127.0.0.1:%d", b.port) }

// TLSURL returns ssl://host:port of the TLS listener (Options.TLS).
func (b *Broker) TLSURL() string { return fmt.Sprintf("ssl://127.0.0.1:%d", b.tlsPort) }

// TLS returns the test PKI's files (Options.TLS).
func (b *Broker) TLS() TLSFiles { return b.tls }

// URL returns tcp://host:port.
func (b *Broker) URL() string { return "tcp://" + b.Addr() }

// Port returns the broker's port.
func (b *Broker) Port() int { return b.port }

func (b *Broker) start() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.cmd != nil {
		return errors.New("mosquittotest: already running")
	}
	logf, err := os.OpenFile(filepath.Join(b.dir, "mosquitto.log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	defer logf.Close()
	cmd := exec.Command(b.bin, "-c", b.conf)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("mosquittotest: start: %w", err)
	}
	b.cmd = cmd
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", b.Addr(), 200*time.Millisecond)
		if err == nil {
			c.Close()
			return nil
		}
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(filepath.Join(b.dir, "mosquitto.log"))
			return fmt.Errorf("mosquittotest: broker did not listen on %s: %v\n%s", b.Addr(), err, log)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Stop terminates the broker gracefully (SIGTERM: it saves its sessions).
// Stopping a stopped broker does nothing.
func (b *Broker) Stop() { b.signal(syscall.SIGTERM) }

// Kill stops the broker with SIGKILL (no save beyond the last autosave).
func (b *Broker) Kill() { b.signal(syscall.SIGKILL) }

func (b *Broker) signal(sig syscall.Signal) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.cmd == nil {
		return
	}
	_ = b.cmd.Process.Signal(sig)
	done := make(chan struct{})
	go func() { _ = b.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		_ = b.cmd.Process.Kill()
		<-done
	}
	b.cmd = nil
}

// Restart starts a stopped broker again on the same port with the same
// persistence, or stops and starts a running one. It panics if the broker
// cannot start again (a test cannot go on then).
func (b *Broker) Restart() {
	b.Stop()
	if err := b.start(); err != nil {
		panic(err)
	}
}

// Running reports whether the broker process is up.
func (b *Broker) Running() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.cmd != nil
}

// Log returns what the broker has logged so far.
func (b *Broker) Log() string {
	data, _ := os.ReadFile(filepath.Join(b.dir, "mosquitto.log"))
	return string(data)
}

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func FreePort(t testing.TB) int {
	t.Helper()
	p, err := freePort()
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
