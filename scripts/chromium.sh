#!/usr/bin/env bash
# Sourced by scripts/test.sh: make sure Debian's Chromium is there for the
# demo's browser test (examples/reports), installing it when we are root on
# Debian, and keep the test's screenshots in .test-output/.

ensure_chromium() {
	export FREEMIUM_TEST_OUTPUT=${FREEMIUM_TEST_OUTPUT:-$PWD/.test-output}
	mkdir -p "$FREEMIUM_TEST_OUTPUT"
	if command -v chromium >/dev/null; then
		echo "chromium: $(command -v chromium)"
		return
	fi
	if [[ $(id -u) -ne 0 ]] || ! command -v apt-get >/dev/null; then
		echo "chromium is missing and cannot be installed here (needs root on Debian); the browser test will say so" >&2
		return
	fi
	echo "chromium: installing Debian's package"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	apt-get install -y -qq chromium >/dev/null
	echo "chromium: $(command -v chromium)"
}
