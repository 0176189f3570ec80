package freemium_test

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// Every Go block of the README is code that compiles: the body of an
// Example (or a declaration) in this module, so that it cannot rot. Blocks
// are compared without comments and whitespace.
func TestReadmeCodeCompiles(t *testing.T) {
	readme, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	var sources strings.Builder
	for _, pattern := range []string{"*.go", "*/*.go"} {
		files, err := filepath.Glob(pattern)
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range files {
			b, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			sources.WriteString(squeeze(string(b)))
		}
	}
	blocks := regexp.MustCompile("(?s)```go\n(.*?)```").FindAllStringSubmatch(string(readme), -1)
	if len(blocks) < 5 {
		t.Fatalf("the README has %d Go blocks; the test expects its examples", len(blocks))
	}
	for _, b := range blocks {
		if !strings.Contains(sources.String(), squeeze(b[1])) {
			t.Errorf("this README block is in no Go file of the module: copy it from an Example, or make it one:\n%s", b[1])
		}
	}
}

// squeeze drops // comments and all white space.
func squeeze(src string) string {
	src = regexp.MustCompile(`(?m)//[^\n]*$`).ReplaceAllString(src, "")
	return strings.Join(strings.Fields(src), "")
}
