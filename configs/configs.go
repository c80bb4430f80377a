// Package configs holds the example configurations. They are embedded so the
// binary can run `edgehook demo` and `edgehook service install` from any
// directory, and a test loads every one of them with the real loader.
package configs

import _ "embed"

// Demo is configs/demo.toml, the configuration `edgehook demo` runs.
//
//go:embed demo.toml
var Demo []byte

// Main is configs/edgehook.toml, the annotated default configuration that
// the package and `edgehook service install` put in /etc/edgehook.
//
//go:embed edgehook.toml
var Main []byte

// Defaults is configs/default.env, installed as /etc/default/edgehook.
//
//go:embed default.env
var Defaults []byte
