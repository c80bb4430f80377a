# edgehook. `make test` is what CI runs (through .ci/run).
GO       ?= go
VERSION  ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT   ?= $(shell git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)
LDFLAGS  := -s -w -X main.version=$(VERSION) -X main.buildCommit=$(COMMIT)
FUZZTIME ?= 30s
SUDO     := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: all build test deps lint fuzz bench package demo clean

all: build

build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o edgehook ./cmd/edgehook

# deps installs what the tests need, from Debian: a real mosquitto broker
# (integration tests start their own), chromium (the status page is tested in
# a headless browser), systemd-analyze (the unit is verified and rated) and
# qemu-user-static (the arm binaries are run). Only what is missing.
DEB_DEPS := mosquitto:mosquitto chromium:chromium systemd-analyze:systemd \
	qemu-arm-static:qemu-user-static qemu-aarch64-static:qemu-user-static dpkg-deb:dpkg git:git
deps:
	@missing=""; for pair in $(DEB_DEPS); do tool=$${pair%%:*}; pkg=$${pair#*:}; \
		command -v $$tool >/dev/null 2>&1 || [ -x /usr/sbin/$$tool ] || missing="$$missing $$pkg"; \
	done; \
	case "$$missing" in *chromium*) missing="$$missing fonts-dejavu-core";; esac; \
	if [ -n "$$missing" ]; then \
		pkgs=$$(printf '%s\n' $$missing | sort -u | tr '\n' ' '); \
		echo "installing the test dependencies: $$pkgs"; \
		$(SUDO) apt-get update -q && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -q --no-install-recommends $$pkgs; \
	fi

# test runs every test, integration tests included, with the race detector.
test: deps
	$(GO) vet ./...
	@test -z "$$(gofmt -l .)" || { echo "gofmt needed:"; gofmt -l .; exit 1; }
	@mkdir -p test-artifacts
	$(GO) test -race -count=1 -timeout 15m -artifacts -outputdir $(CURDIR)/test-artifacts ./...
	@echo "test artifacts (status page screenshots): test-artifacts/_artifacts/"

lint:
	$(GO) vet ./...
	gofmt -l .
	$(GO) run honnef.co/go/tools/cmd/staticcheck@latest ./...
	$(GO) run golang.org/x/vuln/cmd/govulncheck@latest ./...

# fuzz runs every fuzz target for FUZZTIME each (crashers land in testdata/fuzz).
fuzz:
	@for pkg in $$($(GO) list ./...); do \
		for f in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz'); do \
			echo "== $$pkg $$f"; \
			$(GO) test $$pkg -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) -fuzzminimizetime 5s || exit 1; \
		done; \
	done

# bench measures throughput, latency, CPU and memory against a baseline bridge
# (see bench/README.md). It needs mosquitto, like the tests.
bench: deps
	$(GO) run ./bench $(BENCHFLAGS)
	$(GO) test -run '^$$' -bench . -benchmem ./rules ./bridge/...

# package builds the release artifacts into dist/: static binaries
# (dist/linux-{amd64,arm64,armhf}/edgehook), .deb
# packages (nfpm) and .tar.gz archives for linux amd64, arm64 and armhf
# (GOARM=6, for every Raspberry Pi). See packaging/build.sh.
package:
	rm -rf dist
	GO=$(GO) VERSION=$(VERSION) ./packaging/build.sh dist

demo:
	$(GO) run ./cmd/edgehook demo

clean:
	rm -rf edgehook dist bench/out test-artifacts
