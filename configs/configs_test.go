package configs_test

import (
	"os"
	"testing"

	"github.com/edgehook/edgehook/bridge"
	"github.com/edgehook/edgehook/configs"
)

// Every example configuration loads with the real loader.
func TestExamplesLoad(t *testing.T) {
	env := func(string) (string, bool) { return "", false }
	for _, f := range []string{"edgehook.toml", "demo.toml"} {
		if _, _, err := bridge.Load(f, env); err != nil {
			t.Errorf("%s: %v", f, err)
		}
	}
	// The embedded demo config is the file on disk.
	onDisk, err := os.ReadFile("demo.toml")
	if err != nil {
		t.Fatal(err)
	}
	if string(onDisk) != string(configs.Demo) {
		t.Error("embedded demo config differs from demo.toml")
	}
}
