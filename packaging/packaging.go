// Package packaging holds what installs edgehook as a service. The systemd
// unit is embedded so that `edgehook service install` and the .deb package
// ship the same bytes.
package packaging

import _ "embed"

// SystemdUnit is packaging/systemd/edgehook.service.
//
//go:embed systemd/edgehook.service
var SystemdUnit string
