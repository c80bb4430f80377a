# edgehook. `make test` is what CI runs (through .ci/run).
GO       ?= go
VERSION  ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS  := -s -w -X main.version=$(VERSION)
FUZZTIME ?= 30s
SUDO     := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: all build test deps lint fuzz bench cross demo clean

all: build

build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o edgehook ./cmd/edgehook

# deps installs what the integration tests need: a real mosquitto broker.
deps:
	@if command -v mosquitto >/dev/null 2>&1 || [ -x /usr/sbin/mosquitto ]; then :; else \
		echo "installing mosquitto (integration tests start their own broker)"; \
		$(SUDO) apt-get update -q && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -q --no-install-recommends mosquitto; \
	fi

# test runs every test, integration tests included, with the race detector.
test: deps
	$(GO) vet ./...
	@test -z "$$(gofmt -l .)" || { echo "gofmt needed:"; gofmt -l .; exit 1; }
	$(GO) test -race -count=1 -timeout 15m ./...

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

# cross builds the static binaries for every target.
cross:
	@mkdir -p dist
	CGO_ENABLED=0 GOOS=linux GOARCH=amd64 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o dist/edgehook-linux-amd64 ./cmd/edgehook
	CGO_ENABLED=0 GOOS=linux GOARCH=arm64 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o dist/edgehook-linux-arm64 ./cmd/edgehook
	CGO_ENABLED=0 GOOS=linux GOARCH=arm GOARM=6 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o dist/edgehook-linux-armv6 ./cmd/edgehook
	@ls -l dist/

demo:
	$(GO) run ./cmd/edgehook demo

clean:
	rm -rf edgehook dist bench/out
