package main

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package's tests if any goroutine outlives them: the
// delivery loop (Gate.Start/Stop), the servers and the browser.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
