#!/usr/bin/env bash
# The project's one test command: sets up what the tests need, then runs
# gofmt, go vet, staticcheck and the tests (with the race detector).
# Extra arguments are passed to `go test`, e.g. scripts/test.sh -run TestX -v
set -euo pipefail

# Pinned so results don't change under us; 2026.2.x is built for Go 1.26.
STATICCHECK_VERSION=v0.8.2

cd "$(dirname "${BASH_SOURCE[0]}")/.."

# A fresh machine has Go here but maybe not on PATH.
if ! command -v go >/dev/null && [[ -x /usr/local/go/bin/go ]]; then
	export PATH="/usr/local/go/bin:$PATH"
fi

step() { printf '\n==> %s\n' "$*"; }

# shellcheck source=scripts/pg.sh
source scripts/pg.sh
# shellcheck source=scripts/stripe-mock.sh
source scripts/stripe-mock.sh
# shellcheck source=scripts/chromium.sh
source scripts/chromium.sh

check_gofmt() {
	local unformatted
	unformatted=$(gofmt -l .)
	if [[ -n $unformatted ]]; then
		echo "these files need gofmt -w:" >&2
		echo "$unformatted" >&2
		return 1
	fi
}

# Every module of the workspace (go.work): the library and examples/. In
# workspace mode ./... at the root covers the root module alone.
mapfile -t packages < <(go list -m -f '{{.Path}}/...')

step "postgres"
ensure_test_database
echo "FREEMIUM_TEST_DATABASE_URL=$FREEMIUM_TEST_DATABASE_URL"

step "stripe-mock"
ensure_stripe_mock

step "chromium (browser test)"
ensure_chromium

step "gofmt -l"
check_gofmt

step "go vet"
go vet "${packages[@]}"

step "staticcheck $STATICCHECK_VERSION"
go run "honnef.co/go/tools/cmd/staticcheck@$STATICCHECK_VERSION" "${packages[@]}"

# Each benchmark once, small (-short), so that none rots unnoticed: they are
# measured for real with go test -bench (see README).
step "benchmarks, once each"
go test -short -count=1 -run '^$' -bench . -benchtime 1x "${packages[@]}"

# Last, so that CI reads its closing lines.
step "go test -race"
go test -race -count=1 "$@" "${packages[@]}"
