package configfile_test

import (
	"net/http"
	"os"
	"path/filepath"
	"testing"

	"github.com/freemiumkit/freemium"
	"github.com/freemiumkit/freemium/configfile"
)

// FuzzParse: any input is an error, or a Config that New accepts once
// a Store is set and whose Gated patterns the middleware takes.
func FuzzParse(f *testing.F) {
	fixtures, err := filepath.Glob(filepath.Join("testdata", "config", "*"))
	if err != nil {
		f.Fatal(err)
	}
	for _, name := range fixtures {
		data, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Add([]byte("{type: freemium}"))
	f.Add([]byte("a: &a [*a]"))
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := configfile.Parse(data)
		if err != nil {
			return
		}
		cfg.Store = freemium.NewMemoryStore()
		g, err := freemium.New(cfg)
		if err != nil {
			t.Fatalf("New refused a parsed Config: %v\ninput:\n%s", err, data)
		}
		g.Middleware(freemium.MiddlewareOptions{UserID: func(*http.Request) (string, error) { return "u", nil }})
	})
}
