#!/usr/bin/env bash
# Makes sure a local Postgres with the test role and database exists, and
# exports FREEMIUM_TEST_DATABASE_URL pointing at it.
#
#   eval "$(scripts/pg.sh)"   # set the URL in your shell
#   scripts/test.sh sources this file and calls ensure_test_database.
#
# If FREEMIUM_TEST_DATABASE_URL is already set it is used as is.
# Otherwise this needs root on Debian: it installs Postgres with apt if it is
# missing, and starts (or creates) a cluster managed by postgresql-common.
# A cluster that was already running is left alone; one started here is left
# running afterwards, so the next run is fast.

PG_TEST_ROLE=freemium_test
PG_TEST_PASSWORD=freemium_test
PG_TEST_DB=freemium_test
PG_READY_TRIES=60 # seconds to wait for the server to accept connections

pg_log() { echo "pg: $*" >&2; }
# Exits: this file is run directly or sourced by scripts (set -e), never
# sourced into an interactive shell.
pg_die() {
	echo "pg: error: $*" >&2
	exit 1
}

# The server binaries, not just the client (psql may be installed alone).
pg_server_installed() {
	command -v pg_lsclusters >/dev/null && compgen -G '/usr/lib/postgresql/*/bin/postgres' >/dev/null
}

pg_install() {
	command -v apt-get >/dev/null || pg_die "Postgres is not installed and this is not Debian (no apt-get); set FREEMIUM_TEST_DATABASE_URL"
	pg_log "installing postgresql with apt-get"
	# Installing may try to start the service; in containers policy-rc.d
	# forbids that, which is fine: we start the cluster ourselves below.
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq </dev/null
	apt-get install -y -qq --no-install-recommends postgresql </dev/null >/dev/null
}

# Prints "version name port status" of one cluster: an online one if there
# is one, else the first. Prints nothing if there are no clusters.
pg_pick_cluster() {
	local clusters
	clusters=$(pg_lsclusters -h | awk '{print $1, $2, $3, $4}')
	{ grep ' online' <<<"$clusters" || true; echo "$clusters"; } | sed '/^$/d' | head -n 1
}

# Creates cluster "main" for the newest installed server version. Debian's
# package normally does this on install, unless create_main_cluster is off.
pg_create_cluster() {
	local ver
	ver=$(compgen -G '/usr/lib/postgresql/*/bin/postgres' | cut -d/ -f5 | sort -V | tail -n 1)
	pg_log "creating cluster $ver/main"
	pg_createcluster "$ver" main >/dev/null
}

pg_wait_ready() {
	local port=$1 i
	for ((i = 0; i < PG_READY_TRIES; i++)); do
		pg_isready -q -h 127.0.0.1 -p "$port" && return 0
		sleep 1
	done
	pg_die "Postgres on 127.0.0.1:$port not ready after ${PG_READY_TRIES}s"
}

# Runs psql as the postgres superuser over the Unix socket (peer auth).
# cd / so psql does not warn that it cannot read the caller's directory.
pg_superuser_psql() {
	local port=$1
	shift
	(cd / && runuser -u postgres -- psql -X -q -v ON_ERROR_STOP=1 -p "$port" -d postgres "$@")
}

# Idempotent: creates the role and database, or fixes them up if they exist.
pg_create_role_and_db() {
	local port=$1
	pg_superuser_psql "$port" <<SQL
DO \$\$
BEGIN
	CREATE ROLE $PG_TEST_ROLE LOGIN PASSWORD '$PG_TEST_PASSWORD';
EXCEPTION WHEN duplicate_object THEN
	ALTER ROLE $PG_TEST_ROLE LOGIN PASSWORD '$PG_TEST_PASSWORD';
END
\$\$;
SELECT 'CREATE DATABASE $PG_TEST_DB OWNER $PG_TEST_ROLE'
WHERE NOT EXISTS (SELECT 1 FROM pg_database WHERE datname = '$PG_TEST_DB')
\gexec
ALTER DATABASE $PG_TEST_DB OWNER TO $PG_TEST_ROLE;
SQL
}

ensure_test_database() {
	if [[ -n ${FREEMIUM_TEST_DATABASE_URL:-} ]]; then
		pg_log "using FREEMIUM_TEST_DATABASE_URL from the environment"
		return 0
	fi
	# Installing, starting clusters and running psql as postgres need root.
	[[ $EUID -eq 0 ]] || pg_die "FREEMIUM_TEST_DATABASE_URL is not set and we are not root, so cannot set up a local Postgres"

	if ! pg_server_installed; then
		pg_install
	fi

	local cluster ver name port status
	cluster=$(pg_pick_cluster)
	if [[ -z $cluster ]]; then
		pg_create_cluster
		cluster=$(pg_pick_cluster)
	fi
	read -r ver name port status <<<"$cluster"

	if [[ $status != online* ]]; then
		pg_log "starting cluster $ver/$name on port $port"
		# It fails if someone else started it meanwhile; pg_wait_ready
		# below is the real check either way.
		pg_ctlcluster "$ver" "$name" start || pg_log "pg_ctlcluster start failed; already running?"
	fi
	pg_wait_ready "$port"
	pg_create_role_and_db "$port"

	# Debian's pg_hba.conf allows password (scram-sha-256) logins over TCP
	# from 127.0.0.1, so the role's password is all the test code needs.
	export FREEMIUM_TEST_DATABASE_URL="postgres://$PG_TEST_ROLE:$PG_TEST_PASSWORD@127.0.0.1:$port/$PG_TEST_DB?sslmode=disable"
	pg_log "using $ver/$name on port $port"
}

# Run directly: set up, then print an export line for eval.
if [[ ${BASH_SOURCE[0]} == "$0" ]]; then
	set -euo pipefail
	ensure_test_database
	printf 'export FREEMIUM_TEST_DATABASE_URL=%q\n' "$FREEMIUM_TEST_DATABASE_URL"
fi
