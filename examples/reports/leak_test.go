package main

import (
	"testing"

	"github.com/freemiumkit/freemium/internal/testenv"
)

// TestMain fails the package's tests if any goroutine outlives them: the
// delivery loop (Gate.Start/Stop), the servers and the browser.
func TestMain(m *testing.M) { testenv.Main(m) }
