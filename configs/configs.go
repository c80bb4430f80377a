// Package configs holds the example configurations. They are embedded so the
// binary can run `edgehook demo` from any directory, and a test loads every
// one of them with the real loader.
package configs

import _ "embed"

// Demo is configs/demo.toml, the configuration `edgehook demo` runs.
//
//go:embed demo.toml
var Demo []byte
