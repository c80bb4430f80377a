package packaging

import (
	"bytes"
	"debug/elf"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/edgehook/edgehook/bridge/mosquittotest"
)

// required reports whether CI asked that nothing be skipped.
func required() bool { return os.Getenv("EDGEHOOK_REQUIRE_MOSQUITTO") == "1" }

// need finds a tool; without it the test skips, or fails in CI.
func need(t *testing.T, tool, pkg string) string {
	t.Helper()
	p, err := exec.LookPath(tool)
	if err == nil {
		return p
	}
	if required() {
		t.Fatalf("%s is missing (make deps installs the Debian package %s)", tool, pkg)
	}
	t.Skipf("SKIPPED: %s is not installed (Debian package %s; make deps installs it)", tool, pkg)
	return ""
}

func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// target is one release target of packaging/build.sh.
type target struct {
	deb     string      // Debian architecture
	machine elf.Machine // ELF machine of its binary
	qemu    []string    // how to run it here (nil: natively)
	arch    string      // what `edgehook version` says
}

var targets = []target{
	{deb: "amd64", machine: elf.EM_X86_64, arch: " linux/amd64"},
	{deb: "arm64", machine: elf.EM_AARCH64, qemu: []string{"qemu-aarch64-static"}, arch: " linux/arm64"},
	// The Pi Zero and Pi 1 have an ARM1176 (ARMv6): run the armhf binary on
	// that very CPU model, where a GOARM=7 binary refuses to start.
	{deb: "armhf", machine: elf.EM_ARM, qemu: []string{"qemu-arm-static", "-cpu", "arm1176"}, arch: " linux/arm GOARM=6"},
}

// TestPackages builds every release artifact with packaging/build.sh (what
// `make package` runs) and proves them: static binaries for the right
// machine that run (under qemu-user for arm, on an ARMv6 CPU model for
// armhf); .deb packages with the documented layout, conffiles and
// maintainer scripts and the very unit `edgehook service install` writes;
// .tar.gz archives; and, as root, the amd64 .deb installed with dpkg -i,
// its config checked by the service user, the installed unit verified,
// reinstalled over an edited config, removed and purged.
func TestPackages(t *testing.T) {
	if testing.Short() {
		t.Skip("builds every target: not with -short")
	}
	need(t, "dpkg-deb", "dpkg")
	need(t, "git", "git")
	out := t.TempDir()
	start := time.Now()
	cmd := exec.Command("./build.sh", out)
	cmd.Env = append(os.Environ(), "VERSION=v0.9.0-test")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build.sh: %v\n%s", err, b)
	}
	t.Logf("build.sh: %v", time.Since(start).Round(time.Second))
	unit, err := os.ReadFile("systemd/edgehook.service")
	if err != nil {
		t.Fatal(err)
	}

	for _, tg := range targets {
		t.Run(tg.deb, func(t *testing.T) {
			bin := filepath.Join(out, "linux-"+tg.deb, "edgehook")
			checkStatic(t, bin, tg.machine)
			st, _ := os.Stat(bin)
			t.Logf("binary linux-%s: %d bytes (%.1f MiB)", tg.deb, st.Size(), float64(st.Size())/(1<<20))

			// It runs, and says what it was built for.
			var runner []string
			if tg.qemu != nil {
				need(t, tg.qemu[0], "qemu-user-static")
				runner = tg.qemu
			}
			on := func(args ...string) *exec.Cmd {
				argv := append(append(append([]string{}, runner...), bin), args...)
				return exec.Command(argv[0], argv[1:]...)
			}
			ver, err := on("version").CombinedOutput()
			if err != nil || !strings.Contains(string(ver), tg.arch) || !regexp.MustCompile(`^edgehook v0\.9\.0-test commit=[0-9a-f]{12} `).Match(ver) {
				t.Errorf("edgehook version on %s: %v %q, want %q", tg.deb, err, ver, tg.arch)
			}
			if tg.deb == "armhf" {
				if !strings.Contains(run(t, "go", "version", "-m", bin), "GOARM=6") {
					t.Error("the armhf binary was not built with GOARM=6")
				}
				// The CPU model tells them apart: a GOARM=7 build dies there
				// with "Illegal instruction", as it would on a Pi Zero.
				v7 := filepath.Join(t.TempDir(), "edgehook-armv7")
				build := exec.Command("go", "build", "-trimpath", "-o", v7, "../cmd/edgehook")
				build.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH=arm", "GOARM=7")
				if out, err := build.CombinedOutput(); err != nil {
					t.Fatalf("building GOARM=7: %v\n%s", err, out)
				}
				argv := append(append([]string{}, runner...), v7, "version")
				if err := exec.Command(argv[0], argv[1:]...).Run(); err == nil {
					t.Error("a GOARM=7 binary ran on the ARMv6 CPU model: the check above proves nothing")
				}
			}
			// A real command too: check the shipped config (with the example rules).
			cfg := filepath.Join(t.TempDir(), "edgehook.toml")
			conf, _ := os.ReadFile("../configs/edgehook.toml")
			rules, _ := filepath.Abs("../configs/rules")
			conf = bytes.Replace(conf, []byte(`"/etc/edgehook/rules.d/*.toml"`), []byte(strconv.Quote(rules+"/*.toml")), 1)
			conf = append(conf, "\n[[endpoint]]\nname = \"home-assistant\"\nurl = \"http://127.0.0.1:8123/api/webhook/x\"\nsigning = \"none\"\n"...)
			os.WriteFile(cfg, conf, 0o600)
			if out, err := on("check", "-c", cfg).CombinedOutput(); err != nil {
				t.Errorf("edgehook check on %s: %v\n%s", tg.deb, err, out)
			}

			deb := only(t, filepath.Join(out, "edgehook_0.9.0+test_"+tg.deb+".deb"))
			st, _ = os.Stat(deb)
			t.Logf(".deb %s: %d bytes (%.1f MiB)", filepath.Base(deb), st.Size(), float64(st.Size())/(1<<20))
			checkDeb(t, deb, tg.deb, unit)

			tgz := only(t, filepath.Join(out, "edgehook-v0.9.0-test-linux-"+tg.deb+".tar.gz"))
			list := run(t, "tar", "-tzf", tgz)
			for _, f := range []string{"edgehook", "edgehook.toml", "edgehook.default", "edgehook.service", "README.md", "rules/thermostat-heating.toml"} {
				if !strings.Contains(list, "edgehook-v0.9.0-test-linux-"+tg.deb+"/"+f+"\n") {
					t.Errorf("%s lacks %s:\n%s", filepath.Base(tgz), f, list)
				}
			}
		})
	}
	t.Run("dpkg-install", func(t *testing.T) { installDeb(t, filepath.Join(out, "edgehook_0.9.0+test_amd64.deb"), unit) })
}

func only(t *testing.T, path string) string {
	t.Helper()
	if _, err := os.Stat(path); err != nil {
		matches, _ := filepath.Glob(filepath.Join(filepath.Dir(path), "*"))
		t.Fatalf("%s was not built; there is: %v", filepath.Base(path), matches)
	}
	return path
}

// checkStatic asserts a binary is for machine and statically linked (no
// program interpreter, no dynamic section).
func checkStatic(t *testing.T, bin string, machine elf.Machine) {
	t.Helper()
	f, err := elf.Open(bin)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if f.Machine != machine {
		t.Errorf("%s is for %v, want %v", bin, f.Machine, machine)
	}
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP || p.Type == elf.PT_DYNAMIC {
			t.Errorf("%s is dynamically linked (%v)", bin, p.Type)
		}
	}
}

// checkDeb inspects a .deb with dpkg-deb --info/--contents.
func checkDeb(t *testing.T, deb, arch string, unit []byte) {
	t.Helper()
	info := run(t, "dpkg-deb", "--info", deb)
	for _, want := range []string{"Package: edgehook", "Architecture: " + arch, "Version: 0.9.0+test", "conffiles", "preinst", "postinst", "prerm", "postrm"} {
		if !strings.Contains(info, want) {
			t.Errorf("dpkg-deb --info %s lacks %q:\n%s", filepath.Base(deb), want, info)
		}
	}
	conffiles := run(t, "sh", "-c", "dpkg-deb --ctrl-tarfile "+deb+" | tar -xOf - ./conffiles")
	for _, want := range []string{"/etc/edgehook/edgehook.toml", "/etc/default/edgehook", "/etc/edgehook/rules.d/README"} {
		if !strings.Contains(conffiles, want+"\n") {
			t.Errorf("conffiles lacks %s:\n%s", want, conffiles)
		}
	}
	contents := run(t, "dpkg-deb", "--contents", deb)
	for _, re := range []string{
		`-rwxr-xr-x root/root .* \./usr/bin/edgehook\n`,
		`-rw-r----- root/root .* \./etc/edgehook/edgehook\.toml\n`,
		`drwxr-xr-x root/root .* \./etc/edgehook/rules\.d/\n`,
		`drwx------ root/root .* \./var/lib/edgehook/\n`,
		`-rw-r--r-- root/root .* \./lib/systemd/system/edgehook\.service\n`,
		`\./usr/share/doc/edgehook/examples/rules/thermostat-heating\.toml\n`,
	} {
		if !regexp.MustCompile(re).MatchString(contents) {
			t.Errorf("dpkg-deb --contents %s: no line matching %s:\n%s", filepath.Base(deb), re, contents)
		}
	}
	got := run(t, "sh", "-c", "dpkg-deb --fsys-tarfile "+deb+" | tar -xOf - ./lib/systemd/system/edgehook.service")
	if got != string(unit) {
		t.Error("the packaged unit differs from packaging/systemd/edgehook.service")
	}
}

// sudo runs a command as root: directly when we are root, else through
// sudo -n.
func sudo(t *testing.T, args ...string) (string, error) {
	t.Helper()
	if os.Geteuid() != 0 {
		args = append([]string{"sudo", "-n"}, args...)
	}
	out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
	return string(out), err
}

func mustSudo(t *testing.T, args ...string) string {
	t.Helper()
	out, err := sudo(t, args...)
	if err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

// installDeb installs the amd64 package on this machine with dpkg -i, checks
// what it set up, and removes it again.
func installDeb(t *testing.T, deb string, unit []byte) {
	need(t, "dpkg", "dpkg")
	if _, err := sudo(t, "true"); err != nil {
		if required() {
			t.Fatal("installing the .deb needs root (or passwordless sudo)")
		}
		t.Skip("SKIPPED: installing the .deb needs root (or passwordless sudo)")
	}
	if out, _ := exec.Command("dpkg-query", "-W", "-f", "${Status}", "edgehook").CombinedOutput(); strings.Contains(string(out), "installed") {
		t.Skip("SKIPPED: an edgehook package is installed on this machine; not touching it")
	}
	if _, err := os.Stat("/usr/bin/edgehook"); err == nil {
		t.Skip("SKIPPED: /usr/bin/edgehook exists and is not from the package; not touching it")
	}
	t.Cleanup(func() { sudo(t, "dpkg", "--purge", "edgehook") })

	mustSudo(t, "dpkg", "-i", deb)
	// The system user, and ownership of config and state.
	if _, err := exec.Command("getent", "passwd", "edgehook").Output(); err != nil {
		t.Fatal("no system user edgehook after install")
	}
	stat := strings.TrimSpace(mustSudo(t, "stat", "-c", "%U:%G %a", "/etc/edgehook/edgehook.toml", "/var/lib/edgehook", "/etc/edgehook/rules.d"))
	if want := "root:edgehook 640\nedgehook:edgehook 700\nroot:root 755"; stat != want {
		t.Errorf("ownership after install:\n%s\nwant:\n%s", stat, want)
	}
	installed, _ := os.ReadFile("/lib/systemd/system/edgehook.service")
	if !bytes.Equal(installed, unit) {
		t.Error("/lib/systemd/system/edgehook.service is not the unit from packaging/")
	}
	// The service user can read and check the installed config.
	check := []string{"setpriv", "--reuid=edgehook", "--regid=edgehook", "--init-groups", "/usr/bin/edgehook", "check", "-c", "/etc/edgehook/edgehook.toml"}
	if out, err := sudo(t, check...); err != nil || !strings.Contains(out, "OK") {
		t.Errorf("edgehook check of the installed config as user edgehook: %v\n%s", err, out)
	}
	if _, err := exec.LookPath("systemd-analyze"); err == nil {
		if out, err := sudo(t, "systemd-analyze", "verify", "/lib/systemd/system/edgehook.service"); err != nil || strings.TrimSpace(out) != "" {
			t.Errorf("systemd-analyze verify of the installed unit: %v\n%s", err, out)
		}
		sec, _ := sudo(t, "systemd-analyze", "security", "--offline=yes", "/lib/systemd/system/edgehook.service")
		if m := regexp.MustCompile(`Overall exposure level for edgehook.service: ([0-9.]+)`).FindStringSubmatch(sec); m != nil {
			t.Logf("systemd-analyze security of the installed unit: exposure %s", m[1])
			if v, _ := strconv.ParseFloat(m[1], 64); v > 2.0 {
				t.Errorf("exposure %s, want 2.0 or better", m[1])
			}
		} else {
			t.Errorf("systemd-analyze security gave no exposure:\n%s", sec)
		}
	} else if required() {
		t.Fatal("systemd-analyze is missing (make deps installs systemd)")
	}
	// Enabled on the first install (deb-systemd-helper and systemctl enable
	// work without a running systemd).
	const wants = "/etc/systemd/system/multi-user.target.wants/edgehook.service"
	_, helper := exec.LookPath("deb-systemd-helper")
	_, systemctl := exec.LookPath("systemctl")
	if helper == nil || systemctl == nil {
		if _, err := os.Lstat(wants); err != nil {
			t.Errorf("not enabled after the first install: %v", err)
		}
	}
	if _, err := os.Stat("/run/systemd/system"); err != nil {
		t.Log("systemd is not running here: start on install, try-restart on upgrade and stop on remove are not exercised")
	}
	idleRSS(t)

	// An administrator's edit survives a reinstall (conffile), and so does
	// the state directory.
	mustSudo(t, "sh", "-c", `echo '# edited by the admin' >> /etc/edgehook/edgehook.toml && touch /var/lib/edgehook/keep`)
	mustSudo(t, "dpkg", "-i", "--force-confold", deb)
	if conf := mustSudo(t, "cat", "/etc/edgehook/edgehook.toml"); !strings.Contains(conf, "edited by the admin") {
		t.Error("reinstalling replaced the administrator's edited edgehook.toml")
	}

	// Remove keeps conffiles and state; purge removes them.
	mustSudo(t, "dpkg", "-r", "edgehook")
	if _, err := os.Stat("/usr/bin/edgehook"); !os.IsNotExist(err) {
		t.Error("/usr/bin/edgehook is still there after dpkg -r")
	}
	if _, err := sudo(t, "test", "-f", "/etc/edgehook/edgehook.toml"); err != nil {
		t.Error("dpkg -r removed the config (it should stay until purge)")
	}
	if helper == nil {
		// As dh_installsystemd: masked while removed, the enablement remembered.
		if dst, err := os.Readlink("/etc/systemd/system/edgehook.service"); err != nil || dst != "/dev/null" {
			t.Errorf("not masked after dpkg -r: %q %v", dst, err)
		}
	}
	// Installed again after a removal: enabled again (as on a first
	// install), the state kept.
	mustSudo(t, "dpkg", "-i", deb)
	if helper == nil || systemctl == nil {
		if _, err := os.Lstat(wants); err != nil {
			t.Errorf("not enabled when installed again after dpkg -r: %v", err)
		}
	}
	if _, err := sudo(t, "test", "-e", "/var/lib/edgehook/keep"); err != nil {
		t.Error("the state directory did not survive dpkg -r and a new install")
	}
	if _, err := sudo(t, "test", "-e", "/var/lib/edgehook/.package-removed"); err == nil {
		t.Error("the removal mark is still there after the new install")
	}
	// An administrator's disable survives an upgrade.
	if helper == nil && systemctl == nil {
		mustSudo(t, "systemctl", "disable", "edgehook.service")
		mustSudo(t, "dpkg", "-i", deb)
		if _, err := os.Lstat(wants); err == nil {
			t.Error("an upgrade re-enabled a service the administrator disabled")
		}
	}
	// An administrator who deleted the config does not break an upgrade.
	mustSudo(t, "rm", "/etc/edgehook/edgehook.toml")
	mustSudo(t, "dpkg", "-i", "--force-confold", deb)
	mustSudo(t, "dpkg", "--purge", "edgehook")
	for _, p := range []string{"/etc/edgehook/edgehook.toml", "/var/lib/edgehook", "/lib/systemd/system/edgehook.service", "/etc/default/edgehook", wants,
		"/etc/systemd/system/edgehook.service"} {
		if _, err := os.Lstat(p); !os.IsNotExist(err) {
			t.Errorf("%s is still there after dpkg --purge", p)
		}
	}
}

// idleRSS runs the installed binary as the service user against a real
// mosquitto, with the installed config on a free port and a temporary store,
// waits until /readyz says it is connected, and reports its resident memory
// (a figure for the closing note).
func idleRSS(t *testing.T) {
	if mosquittotest.Binary() == "" {
		if required() {
			t.Error("mosquitto is missing: idle RSS not measured (make deps installs it)")
		}
		t.Log("no mosquitto: idle RSS not measured")
		return
	}
	broker := mosquittotest.Start(t)
	// Not t.TempDir: its parent is private, and the daemon runs as edgehook.
	dir, err := os.MkdirTemp("", "edgehook-rss-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sudo(t, "rm", "-rf", dir) })
	os.Chmod(dir, 0o755)
	state := filepath.Join(dir, "state")
	mustSudo(t, "install", "-d", "-o", "edgehook", "-g", "edgehook", "-m", "0750", state)
	listen := fmt.Sprintf("127.0.0.1:%d", mosquittotest.FreePort(t))
	conf := mustSudo(t, "cat", "/etc/edgehook/edgehook.toml")
	conf = strings.Replace(conf, `"tcp://127.0.0.1:1883"`, strconv.Quote(broker.URL()), 1)
	conf = strings.Replace(conf, `"127.0.0.1:8321"`, strconv.Quote(listen), 1)
	conf = strings.Replace(conf, `dir = "/var/lib/edgehook"`, fmt.Sprintf("dir = %q", state), 1)
	cfg := filepath.Join(dir, "edgehook.toml")
	os.WriteFile(cfg, []byte(conf), 0o644)

	args := []string{"setpriv", "--reuid=edgehook", "--regid=edgehook", "--init-groups", "/usr/bin/edgehook", "run", "-c", cfg}
	if os.Geteuid() != 0 {
		args = append([]string{"sudo", "-n"}, args...)
	}
	d := exec.Command(args[0], args[1:]...)
	var logs bytes.Buffer // read only after Wait
	d.Stderr = &logs
	d.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := d.Start(); err != nil {
		t.Fatal(err)
	}
	stop := func() string {
		d.Process.Signal(syscall.SIGTERM)
		d.Wait()
		return logs.String()
	}
	ready := false
	for deadline := time.Now().Add(20 * time.Second); !ready && time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if resp, err := http.Get("http://" + listen + "/readyz"); err == nil {
			resp.Body.Close()
			ready = resp.StatusCode == http.StatusOK
		}
	}
	if !ready {
		t.Fatalf("the installed daemon, run as edgehook, never got ready:\n%s", stop())
	}
	time.Sleep(2 * time.Second) // idle
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", d.Process.Pid))
	logText := stop()
	if os.Geteuid() != 0 {
		t.Log("idle RSS measured only as root (sudo adds a process in between)")
		return
	}
	if err != nil {
		t.Fatalf("reading the daemon's memory: %v\n%s", err, logText)
	}
	m := regexp.MustCompile(`VmRSS:\s+(\d+) kB`).FindSubmatch(status)
	if m == nil {
		t.Fatalf("no VmRSS in /proc/%d/status", d.Process.Pid)
	}
	kb, _ := strconv.Atoi(string(m[1]))
	t.Logf("idle RSS of the installed daemon (user edgehook, connected, no rules): %d kB (%.1f MiB)", kb, float64(kb)/1024)
}
