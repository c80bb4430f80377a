package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/kardianos/service"

	"github.com/edgehook/edgehook/configs"
	"github.com/edgehook/edgehook/packaging"
)

// Where a service installation puts things (inside --root).
const (
	binPath          = "/usr/bin/edgehook"
	unitPath         = "/etc/systemd/system/edgehook.service" // where kardianos/service writes it
	packagedUnitPath = "/lib/systemd/system/edgehook.service" // where the .deb puts it
	confDir          = "/etc/edgehook"
	defaultsPath     = "/etc/default/edgehook"
)

const serviceUsage = `usage: edgehook service install|uninstall|start|stop|restart|status [--root DIR]

install    copies this binary to /usr/bin/edgehook, creates the system user
           "edgehook", writes /etc/edgehook/edgehook.toml (if missing) and the
           hardened systemd unit, enables and starts it
uninstall  stops and disables the service and removes its unit; the config in
           /etc/edgehook and the state in /var/lib/edgehook stay
start, stop, restart, status   control the installed service

--root DIR stages install/uninstall into DIR instead of / (no systemctl, no
user): for packaging and for reviewing what would be installed.
If the .deb package is installed, manage the service with systemctl instead.
`

// noop satisfies kardianos/service's Interface: systemd starts
// `edgehook run` itself (ExecStart), so the library only installs and controls.
type noop struct{}

func (noop) Start(service.Service) error { return nil }
func (noop) Stop(service.Service) error  { return nil }

// cmdService installs and controls the systemd service with
// kardianos/service, using our own hardened unit (packaging/systemd).
func (e *env) cmdService(args []string) int {
	if len(args) == 0 || isHelp(args[0]) {
		fmt.Fprint(e.stderr, serviceUsage)
		if len(args) > 0 {
			return exitOK
		}
		return exitUsage
	}
	action := args[0]
	fs := e.flagSet("service " + action)
	root := fs.String("root", "/", "install into this directory instead of / (no systemctl)")
	if err := fs.Parse(args[1:]); err != nil {
		return parseExit(err)
	}
	staged := filepath.Clean(*root) != "/"
	var err error
	switch action {
	case "install":
		err = e.serviceInstall(*root, staged)
	case "uninstall":
		err = e.serviceUninstall(*root, staged)
	case "start", "stop", "restart", "status":
		if staged {
			err = errors.New("--root only applies to install and uninstall")
			break
		}
		err = e.serviceControl(action)
	default:
		fmt.Fprint(e.stderr, serviceUsage)
		return exitUsage
	}
	if err != nil {
		fmt.Fprintln(e.stderr, "edgehook service "+action+":", err)
		return exitFailure
	}
	return exitOK
}

func systemdRunning() bool {
	_, err := os.Stat("/run/systemd/system")
	return err == nil
}

// kservice returns the kardianos/service handle for our unit.
func kservice() (service.Service, error) {
	if !systemdRunning() {
		return nil, errors.New("systemd is not running on this machine; use --root DIR to stage the files, or run `edgehook run` under your own supervisor")
	}
	return service.New(noop{}, &service.Config{
		Name:        "edgehook",
		DisplayName: "edgehook",
		Description: "MQTT readings to signed webhooks, and signed webhooks to MQTT",
		Executable:  binPath,
		Arguments:   []string{"run", "-c", confDir + "/edgehook.toml"},
		Option:      service.KeyValue{"SystemdScript": packaging.SystemdUnit},
	})
}

func (e *env) serviceInstall(root string, staged bool) error {
	at := func(p string) string { return filepath.Join(root, p) }
	for _, p := range []string{packagedUnitPath, "/usr" + packagedUnitPath} {
		if _, err := os.Stat(at(p)); err == nil {
			return fmt.Errorf("%s is installed by the edgehook package; manage it with `systemctl start|stop|status edgehook` (and uninstall the package to switch to a manual install)", p)
		}
	}
	if !staged {
		if os.Geteuid() != 0 {
			return errors.New("installing a system service needs root: sudo edgehook service install")
		}
		if !systemdRunning() {
			return errors.New("systemd is not running on this machine; use --root DIR to stage the files")
		}
	}
	// The binary: the unit runs /usr/bin/edgehook, the same bytes as the package's unit.
	self, err := os.Executable()
	if err != nil {
		return err
	}
	if resolved, err := filepath.EvalSymlinks(self); err == nil {
		self = resolved
	}
	if self != at(binPath) {
		if err := copyFile(self, at(binPath), 0o755); err != nil {
			return fmt.Errorf("copying the binary to %s: %w", binPath, err)
		}
		fmt.Fprintf(e.stdout, "copied %s to %s\n", self, binPath)
	}
	if !staged {
		if err := exec.Command("id", "edgehook").Run(); err != nil {
			out, err := exec.Command("useradd", "--system", "--user-group", "--home-dir", "/var/lib/edgehook",
				"--no-create-home", "--shell", "/usr/sbin/nologin", "edgehook").CombinedOutput()
			if err != nil {
				return fmt.Errorf("creating the system user edgehook: %v: %s", err, out)
			}
			fmt.Fprintln(e.stdout, "created the system user edgehook")
		}
	}
	if err := os.MkdirAll(at(confDir+"/rules.d"), 0o755); err != nil {
		return err
	}
	cfg := at(confDir + "/edgehook.toml")
	if _, err := os.Stat(cfg); errors.Is(err, os.ErrNotExist) {
		if err := os.WriteFile(cfg, configs.Main, 0o640); err != nil {
			return err
		}
		if !staged {
			_ = exec.Command("chgrp", "edgehook", cfg).Run() // the service reads it as group edgehook
		}
		fmt.Fprintf(e.stdout, "wrote %s (edit it, then: edgehook check -c %s)\n", confDir+"/edgehook.toml", confDir+"/edgehook.toml")
	}
	if _, err := os.Stat(at(defaultsPath)); errors.Is(err, os.ErrNotExist) {
		if err := os.MkdirAll(filepath.Dir(at(defaultsPath)), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(at(defaultsPath), configs.Defaults, 0o644); err != nil {
			return err
		}
	}
	if staged {
		if err := os.MkdirAll(filepath.Dir(at(unitPath)), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(at(unitPath), []byte(packaging.SystemdUnit), 0o644); err != nil {
			return err
		}
		fmt.Fprintf(e.stdout, "staged the service in %s\n", root)
		return nil
	}
	if _, err := os.Stat(unitPath); err == nil {
		// Installed before: this is an update. Refresh the unit, restart
		// on the new binary.
		if err := os.WriteFile(unitPath, []byte(packaging.SystemdUnit), 0o644); err != nil {
			return err
		}
		for _, args := range [][]string{{"daemon-reload"}, {"restart", "edgehook.service"}} {
			if out, err := exec.Command("systemctl", args...).CombinedOutput(); err != nil {
				return fmt.Errorf("systemctl %s: %v: %s", strings.Join(args, " "), err, out)
			}
		}
		fmt.Fprintln(e.stdout, "edgehook was already installed: updated the unit and restarted it on the new binary")
		return nil
	}
	s, err := kservice()
	if err != nil {
		return err
	}
	if err := s.Install(); err != nil {
		return err
	}
	if err := s.Start(); err != nil {
		return fmt.Errorf("installed, but starting failed (see journalctl -u edgehook): %w", err)
	}
	fmt.Fprintln(e.stdout, "edgehook is installed and running: systemctl status edgehook; logs: journalctl -u edgehook")
	fmt.Fprintln(e.stdout, "status: curl http://127.0.0.1:8321/readyz")
	return nil
}

func (e *env) serviceUninstall(root string, staged bool) error {
	if staged {
		if err := os.Remove(filepath.Join(root, unitPath)); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
		fmt.Fprintf(e.stdout, "removed the staged unit from %s\n", root)
		return nil
	}
	if _, err := os.Stat(packagedUnitPath); err == nil {
		return errors.New("edgehook is installed by its package; remove the package instead (apt remove edgehook)")
	}
	s, err := kservice()
	if err != nil {
		return err
	}
	_ = s.Stop()
	if err := s.Uninstall(); err != nil {
		return err
	}
	fmt.Fprintln(e.stdout, "edgehook's service is removed; /etc/edgehook, /var/lib/edgehook and /usr/bin/edgehook are kept")
	return nil
}

func (e *env) serviceControl(action string) error {
	s, err := kservice()
	if err != nil {
		return err
	}
	if action == "status" {
		st, err := s.Status()
		if errors.Is(err, service.ErrNotInstalled) {
			fmt.Fprintln(e.stdout, "not installed")
			return nil
		}
		if err != nil {
			return err
		}
		fmt.Fprintln(e.stdout, map[service.Status]string{service.StatusRunning: "running", service.StatusStopped: "stopped"}[st])
		return nil
	}
	return service.Control(s, action)
}

func copyFile(src, dst string, mode os.FileMode) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	tmp := dst + ".new"
	out, err := os.OpenFile(tmp, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, mode)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		os.Remove(tmp)
		return err
	}
	if err := out.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, dst) // replacing a running binary is safe this way
}
