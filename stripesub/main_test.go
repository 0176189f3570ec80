package stripesub_test

import (
	"testing"

	"github.com/freemiumkit/freemium/internal/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }
