// Command edgehook bridges MQTT sensor readings to signed webhooks through
// rules, and signed webhooks to MQTT commands. See README.md and PRODUCT.md.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime"
	"runtime/debug"
	"strings"
	"syscall"

	"github.com/edgehook/edgehook/bridge"
	"github.com/edgehook/edgehook/bridge/sdnotify"
	"github.com/edgehook/edgehook/rules"
)

// Exit codes (PRODUCT.md §1).
const (
	exitOK      = 0
	exitFailure = 1
	exitUsage   = 2
	exitConfig  = 78
)

// version and buildCommit are set at build time:
// -ldflags "-X main.version=v1.2.3 -X main.buildCommit=0123456789ab".
// Without buildCommit, the commit comes from Go's VCS stamp, if any.
var (
	version     = "dev"
	buildCommit = ""
)

func main() {
	os.Exit(run(context.Background(), os.Args[1:], os.Stdout, os.Stderr))
}

// env is the process environment, passed down instead of read globally.
type env struct {
	stdout, stderr io.Writer
	getenv         func(string) (string, bool)
	logLevel       string
	logFormat      string
}

const usage = `edgehook: MQTT readings → rules → signed webhooks, and signed webhooks → MQTT commands

Usage:
  edgehook run -c FILE          run the daemon in the foreground
  edgehook check -c FILE        validate the config and every rule file (exit 78 if invalid)
  edgehook test-rule -c FILE --topic T --payload P [--at TIME] ... [--readings FILE|-] [--until TIME] [-v]
                                run readings through the rules offline and say what each rule decided and why
  edgehook demo                 the whole loop on an embedded broker, narrated
  edgehook sign   [--secret-file F | -c FILE --route NAME] [--curl URL] < body
                                print the headers (or a curl command) that sign a body
  edgehook verify [--secret-file F | -c FILE --route NAME] -H 'webhook-id: …' … < body
                                check a signature: prints valid (exit 0) or invalid (exit 1)
  edgehook service install|uninstall|start|stop|restart|status [--root DIR]
                                run edgehook as a hardened systemd service
  edgehook deadletters list | retry ID... | retry --all | delete ID... | delete --all [--endpoint NAME]
                                inspect, re-queue or discard dead letters through the running daemon
  edgehook version              version, commit, Go version, platform

Global flags (anywhere on the line):
  --log-level debug|info|warn|error   (env EDGEHOOK_LOG_LEVEL, default info)
  --log-format text|json              (env EDGEHOOK_LOG_FORMAT, default text)

The config defaults to /etc/edgehook/edgehook.toml (env EDGEHOOK_CONFIG).
`

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	e := &env{stdout: stdout, stderr: stderr, getenv: os.LookupEnv}
	e.logLevel, _ = e.getenv("EDGEHOOK_LOG_LEVEL")
	e.logFormat, _ = e.getenv("EDGEHOOK_LOG_FORMAT")
	rest, err := e.globalFlags(args)
	if err != nil {
		fmt.Fprintln(stderr, "edgehook:", err)
		return exitUsage
	}
	if len(rest) == 0 {
		fmt.Fprint(stderr, usage)
		return exitUsage
	}
	cmd, cargs := rest[0], rest[1:]
	switch cmd {
	case "run":
		return e.cmdRun(ctx, cargs)
	case "check":
		return e.cmdCheck(cargs)
	case "demo":
		return e.cmdDemo(ctx, cargs)
	case "sign":
		return e.cmdSign(cargs)
	case "test-rule":
		return e.cmdTestRule(cargs)
	case "service":
		return e.cmdService(cargs)
	case "deadletters":
		return e.cmdDeadletters(ctx, cargs)
	case "verify":
		return e.cmdVerify(cargs)
	case "version", "--version", "-version":
		fmt.Fprintln(stdout, versionLine())
		return exitOK
	}
	if isHelp(cmd) {
		fmt.Fprint(stdout, usage)
		return exitOK
	}
	fmt.Fprintf(stderr, "edgehook: unknown command %q\n\n%s", cmd, usage)
	return exitUsage
}

// globalFlags removes --log-level and --log-format (in any position) from args.
func (e *env) globalFlags(args []string) ([]string, error) {
	var rest []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		name, val, hasVal := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if !strings.HasPrefix(a, "-") || (name != "log-level" && name != "log-format") {
			rest = append(rest, a)
			continue
		}
		if !hasVal {
			if i+1 >= len(args) {
				return nil, fmt.Errorf("flag --%s needs a value", name)
			}
			i++
			val = args[i]
		}
		if name == "log-level" {
			e.logLevel = val
		} else {
			e.logFormat = val
		}
	}
	return rest, nil
}

// logger builds the slog logger: text or JSON on stderr; under journald
// (JOURNAL_STREAM set) text without timestamps, since the journal adds them.
func (e *env) logger() (*slog.Logger, error) {
	var level slog.Level
	switch strings.ToLower(e.logLevel) {
	case "", "info":
		level = slog.LevelInfo
	case "debug":
		level = slog.LevelDebug
	case "warn", "warning":
		level = slog.LevelWarn
	case "error":
		level = slog.LevelError
	default:
		return nil, fmt.Errorf("invalid log level %q (want debug, info, warn or error)", e.logLevel)
	}
	opts := &slog.HandlerOptions{Level: level}
	switch strings.ToLower(e.logFormat) {
	case "", "text":
		if _, journald := e.getenv("JOURNAL_STREAM"); journald {
			opts.ReplaceAttr = func(groups []string, a slog.Attr) slog.Attr {
				if len(groups) == 0 && a.Key == slog.TimeKey {
					return slog.Attr{}
				}
				return a
			}
		}
		return slog.New(slog.NewTextHandler(e.stderr, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(e.stderr, opts)), nil
	}
	return nil, fmt.Errorf("invalid log format %q (want text or json)", e.logFormat)
}

// configFlag registers -c/--config on fs with the default from EDGEHOOK_CONFIG.
func (e *env) configFlag(fs *flag.FlagSet) *string {
	def := "/etc/edgehook/edgehook.toml"
	if v, ok := e.getenv("EDGEHOOK_CONFIG"); ok && v != "" {
		def = v
	}
	p := fs.String("c", def, "config file")
	fs.StringVar(p, "config", def, "config file (same as -c)")
	return p
}

func (e *env) flagSet(name string) *flag.FlagSet {
	fs := flag.NewFlagSet("edgehook "+name, flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	return fs
}

// parseExit is the exit code after a flag parse error: 0 when help was asked
// for (the flag package has printed it), 2 otherwise.
func parseExit(err error) int {
	if errors.Is(err, flag.ErrHelp) {
		return exitOK
	}
	return exitUsage
}

// isHelp reports whether arg asks for help.
func isHelp(arg string) bool {
	return arg == "-h" || arg == "-help" || arg == "--help" || arg == "help"
}

// loadConfig loads and prints every problem, returning the exit code to use on failure.
func (e *env) loadConfig(path string) (*bridge.Config, *rules.Set, int) {
	cfg, set, err := bridge.Load(path, e.getenv)
	if err != nil {
		for _, line := range strings.Split(err.Error(), "\n") {
			fmt.Fprintln(e.stderr, line)
		}
		return nil, nil, exitConfig
	}
	return cfg, set, exitOK
}

func (e *env) cmdCheck(args []string) int {
	fs := e.flagSet("check")
	path := e.configFlag(fs)
	if err := fs.Parse(args); err != nil {
		return parseExit(err)
	}
	cfg, rs, code := e.loadConfig(*path)
	if code != exitOK {
		return code
	}
	fmt.Fprintf(e.stdout, "%s: OK (%d rules in %d files, %d endpoints, %d inbound routes)\n",
		*path, len(rs.Rules()), len(cfg.RuleFiles), len(cfg.Endpoints), len(cfg.Inbound))
	return exitOK
}

func (e *env) cmdRun(ctx context.Context, args []string) int {
	fs := e.flagSet("run")
	path := e.configFlag(fs)
	if err := fs.Parse(args); err != nil {
		return parseExit(err)
	}
	log, err := e.logger()
	if err != nil {
		fmt.Fprintln(e.stderr, "edgehook:", err)
		return exitUsage
	}
	cfg, rs, code := e.loadConfig(*path)
	if code != exitOK {
		return code
	}
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	if addr, ok := e.getenv("EDGEHOOK_PPROF"); ok && addr != "" {
		if err := servePprof(ctx, addr); err != nil {
			fmt.Fprintln(e.stderr, "edgehook: EDGEHOOK_PPROF:", err)
			return exitUsage
		}
		log.Warn("profiling endpoints enabled (EDGEHOOK_PPROF)", "addr", addr)
	}
	b := bridge.New(cfg, rs, log, buildVersion())
	b.Loader = func() (*bridge.Config, *rules.Set, error) { return bridge.Load(*path, e.getenv) }
	sd := sdnotify.FromEnv(e.getenv, os.Getpid())
	b.Notify, b.Watchdog = sd.Notify, sd.WatchdogInterval()
	go func() {
		for range hup {
			b.Reload()
		}
	}()
	if err := b.Run(ctx); err != nil {
		log.Error("edgehook failed", "err", err)
		var ce *bridge.ConfigError
		if errors.As(err, &ce) {
			return exitConfig
		}
		return exitFailure
	}
	return exitOK
}

func buildVersion() bridge.Version {
	return bridge.Version{Version: version, Commit: commit(), Platform: platform()}
}

func commit() string {
	if buildCommit != "" {
		return buildCommit
	}
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" && len(s.Value) >= 12 {
				return s.Value[:12]
			}
		}
	}
	return "unknown"
}

// versionLine is what `edgehook version` prints, on one line so scripts can grep it.
func versionLine() string {
	return fmt.Sprintf("edgehook %s commit=%s %s", version, commit(), platform())
}

// platform is "go1.26.8 linux/arm GOARM=6", for the status page.
func platform() string {
	return runtime.Version() + " " + runtime.GOOS + "/" + arch()
}

// arch is GOARCH with its level (GOARM=6, GOAMD64=v1, GOARM64=v8.0).
func arch() string {
	arch := runtime.GOARCH
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			if (s.Key == "GOARM" && runtime.GOARCH == "arm") || (s.Key == "GOAMD64" && runtime.GOARCH == "amd64") ||
				(s.Key == "GOARM64" && runtime.GOARCH == "arm64") {
				arch += " " + s.Key + "=" + s.Value
			}
		}
	}
	return arch
}
