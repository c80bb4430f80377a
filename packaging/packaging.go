// Package packaging holds what installs edgehook as a service. The systemd
// unit is embedded so that `edgehook service install` and the .deb package
// ship the same bytes.
//
// Beside it: build.sh (what `make package` runs: static binaries for amd64,
// arm64 and armhf GOARM=6, .deb packages through nfpm.yaml, .tar.gz
// archives), scripts/ (the Debian maintainer scripts), and tools/ (nfpm,
// pinned in a module of its own). packaging_test.go builds and proves all
// of it, down to installing the amd64 .deb with dpkg.
package packaging

import _ "embed"

// SystemdUnit is packaging/systemd/edgehook.service.
//
//go:embed systemd/edgehook.service
var SystemdUnit string
