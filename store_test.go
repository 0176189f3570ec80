package freemium_test

import (
	"testing"

	"github.com/freemiumkit/freemium"
	"github.com/freemiumkit/freemium/freemiumtest"
	"github.com/freemiumkit/freemium/internal/testenv"
)

func TestMemoryStore(t *testing.T) {
	freemiumtest.RunStoreTests(t, func(*testing.T) freemium.Store { return freemium.NewMemoryStore() })
}

func TestPostgresStore(t *testing.T) {
	freemiumtest.RunStoreTests(t, func(t *testing.T) freemium.Store { return testenv.PostgresStore(t) })
}
