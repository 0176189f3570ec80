#!/usr/bin/env bash
# Sourced by scripts/test.sh: install stripe-mock at the version that serves
# Stripe API 2023-10-16 (the version stripe-go v76 pins), start it on
# loopback only, export FREEMIUM_TEST_STRIPE_URL, and stop it when the
# calling shell exits.

STRIPE_MOCK_VERSION=v0.183.0

# free_port prints the first port from $1 upwards that nothing listens on.
free_port() {
	local port=$1
	while (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; do
		port=$((port + 1))
	done
	echo "$port"
}

ensure_stripe_mock() {
	if [[ -n ${FREEMIUM_TEST_STRIPE_URL:-} ]]; then
		echo "stripe-mock: using $FREEMIUM_TEST_STRIPE_URL"
		return
	fi
	local gobin bin http_port https_port log
	gobin=$(go env GOPATH)/bin
	GOBIN=$gobin go install "github.com/stripe/stripe-mock@$STRIPE_MOCK_VERSION"
	bin=$gobin/stripe-mock
	http_port=$(free_port 12111)
	https_port=$(free_port $((http_port + 1)))
	log=$(mktemp -t stripe-mock.XXXXXX.log)
	"$bin" -http-addr "127.0.0.1:$http_port" -https-addr "127.0.0.1:$https_port" >"$log" 2>&1 &
	STRIPE_MOCK_PID=$!
	trap 'kill "$STRIPE_MOCK_PID" 2>/dev/null || true' EXIT

	# Wait until it accepts connections: at most 30s, in 0.1s steps.
	local i
	for ((i = 0; i < 300; i++)); do
		if (exec 3<>"/dev/tcp/127.0.0.1/$http_port") 2>/dev/null; then
			export FREEMIUM_TEST_STRIPE_URL=http://127.0.0.1:$http_port
			echo "stripe-mock $STRIPE_MOCK_VERSION: $FREEMIUM_TEST_STRIPE_URL (pid $STRIPE_MOCK_PID)"
			return
		fi
		if ! kill -0 "$STRIPE_MOCK_PID" 2>/dev/null; then
			break
		fi
		sleep 0.1
	done
	echo "stripe-mock did not start; its log:" >&2
	cat "$log" >&2
	return 1
}
