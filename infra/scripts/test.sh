#!/usr/bin/env bash
# make test: unit tests, contract tests on the emulator, and end-to-end tests
# over HTTP through the local runtime. Starts and stops its own emulator
# (moto; or uses AWS_ENDPOINT_URL when given) and its own local runtime.
set -euo pipefail
source "$(dirname "$0")/common.sh"
cd "$ROOT"
use_emulator_credentials
mkdir -p .local
# test-localstack.sh runs this script as its lane: its name and start time.
lane="${TEST_LANE:-make test}"
started="${TEST_STARTED:-$(date +%s)}"

cargo build --workspace --all-targets

# The browser tests drive Debian's Chromium (headless), directly and
# through its chromedriver; as root with apt-get (CI, a fresh machine) they
# are installed here when missing, else those tests fail saying so.
# LONGRUN_CHROMIUM and LONGRUN_CHROMEDRIVER name others.
if [ -z "${LONGRUN_CHROMIUM:-}" ] && { ! command -v chromium >/dev/null 2>&1 || ! command -v chromedriver >/dev/null 2>&1; } &&
  [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "$lane: no chromium or chromedriver; the browser tests need them: installing Debian's chromium and chromium-driver (apt-get, as root)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -q chromium chromium-driver >.local/apt-chromium.log 2>&1 ||
    { apt-get update -q >>.local/apt-chromium.log 2>&1 && apt-get install -y -q chromium chromium-driver >>.local/apt-chromium.log 2>&1; } ||
    tail -n 20 .local/apt-chromium.log
fi
LONGRUN_CHROMIUM="${LONGRUN_CHROMIUM:-$(command -v chromium || echo chromium)}"
LONGRUN_CHROMEDRIVER="${LONGRUN_CHROMEDRIVER:-$(command -v chromedriver || echo chromedriver)}"
export LONGRUN_CHROMIUM LONGRUN_CHROMEDRIVER

pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
}
trap cleanup EXIT

if [ -z "${AWS_ENDPOINT_URL:-}" ]; then
  moto_port=$(free_port)
  start_moto "$moto_port" .local/test-moto.log
  pids+=("$MOTO_PID")
  export AWS_ENDPOINT_URL="http://127.0.0.1:$moto_port"
fi

# Short leases, heartbeats, backoffs and reconciler period, so failure
# recovery happens in seconds; the end-to-end tests start extra runtimes
# (to kill them, or with faults) with the same settings.
export LONGRUN_TEST_OVERRIDES="EnableSleepJob=true LeaseSeconds=4 HeartbeatSeconds=1 RetryBaseSeconds=1 \
RetryMaxSeconds=2 EnqueueGraceSeconds=3 ReconcilerSchedule=rate(2 seconds) \
SchedulerSchedule=rate(1 second) ScheduleMinIntervalSeconds=1 \
WebhookAllowInsecureTargets=true WebhookRetrySchedule=1,1"
# Callers: real JWTs by default (LONGRUN_TEST_AUTH=jwt), signed with the
# test key in tests/fixtures/jwt and verified by every local runtime the
# suite starts (--jwks), as API Gateway's authorizer would; or, with
# LONGRUN_TEST_AUTH=names (the LocalStack lane), each caller's bare name as
# its token, as `make dev` takes it.
auth="${LONGRUN_TEST_AUTH:-jwt}"
runtime_auth=()
if [ "$auth" = jwt ]; then
  export LONGRUN_JWKS="$ROOT/tests/fixtures/jwt/jwks.json"
  export LONGRUN_JWT_KEY="$ROOT/tests/fixtures/jwt/test-signing-key.pem"
  export LONGRUN_JWT_KID=longrun-test-1
  export LONGRUN_JWT_ISSUER=https://issuer.longrun.test
  export LONGRUN_JWT_AUDIENCE=longrun-e2e
  LONGRUN_TEST_OVERRIDES="$LONGRUN_TEST_OVERRIDES JwtIssuer=$LONGRUN_JWT_ISSUER JwtAudience=$LONGRUN_JWT_AUDIENCE"
  runtime_auth=(--jwks "$LONGRUN_JWKS")
fi
export LONGRUN_LOCAL_BIN="$ROOT/target/debug/longrun-local"
export LONGRUN_ADMIN_BIN="$ROOT/target/debug/longrun-admin"
export LONGRUN_CLI_BIN="$ROOT/target/debug/longrun"
export LONGRUN_TEMPLATE="$ROOT/template.yaml"
export LONGRUN_SOAK_REPORT="$ROOT/.local/soak-report.txt"
rm -f "$LONGRUN_SOAK_REPORT"
api_port=$(free_port)
stack="longrun-test-$(date +%s)"
# shellcheck disable=SC2086 # the overrides are separate words on purpose
./target/debug/longrun-local --port "$api_port" --stack "$stack" "${runtime_auth[@]}" \
  --parameter-overrides $LONGRUN_TEST_OVERRIDES >.local/test-runtime.log 2>&1 &
pids+=("$!")
if ! wait_for_url "http://127.0.0.1:$api_port/_local/health" 60; then
  tail -n 50 .local/test-runtime.log
  exit 1
fi
export LONGRUN_API_URL="http://127.0.0.1:$api_port"
eval "$("$PY" - "$LONGRUN_API_URL" <<'PY'
import json, sys, urllib.request
refs = json.load(urllib.request.urlopen(sys.argv[1] + "/_local/resources"))["refs"]
print(f"export LONGRUN_JOBS_TABLE={refs['JobsTable']} LONGRUN_JOBS_BUCKET={refs['JobsBucket']}")
PY
)"

status=0
cargo test --workspace --no-fail-fast -- --include-ignored 2>&1 | tee .local/test-output.log || status=$?
if [ "$status" -ne 0 ]; then
  echo "--- last lines of the local runtime's log (.local/test-runtime.log) ---"
  tail -n 80 .local/test-runtime.log
fi
[ -f "$LONGRUN_SOAK_REPORT" ] && cat "$LONGRUN_SOAK_REPORT"

# Fuzz the running API against the OpenAPI document it serves (Schemathesis,
# pinned in infra/requirements-emulator.txt): schema-valid and invalid
# requests to every operation, plus stateful sequences along the document's
# links (submit, then get or cancel the job it made). Every check but three:
# see docs/development.md, Tests. Bounded by --max-examples per operation,
# and by a hard timeout. A fixed seed (SCHEMATHESIS_SEED) makes CI repeat
# the same cases; set another one, or "random", to explore further.
# SCHEMATHESIS_EXTRA_ARGS adds options.
# The bearer token of the caller named $1.
caller_token() {
  if [ "$auth" = jwt ]; then
    ./target/debug/longrun-local token --key "$LONGRUN_JWT_KEY" --kid "$LONGRUN_JWT_KID" \
      --issuer "$LONGRUN_JWT_ISSUER" --audience "$LONGRUN_JWT_AUDIENCE" "$1"
  else
    echo "$1"
  fi
}

# make smoke's check, as a caller of this runtime would run it against a deployed stack.
smoke_status=0
./target/debug/longrun-smoke --api "$LONGRUN_API_URL" --token "$(caller_token "smoke-$stack")" \
  --other-token "$(caller_token "smoke-other-$stack")" $([ "$auth" = jwt ] || echo --names) \
  >.local/smoke.log 2>&1 || smoke_status=$?
if [ "$smoke_status" -ne 0 ]; then cat .local/smoke.log; status=1; fi
echo "smoke: $(tail -n 1 .local/smoke.log) (.local/smoke.log)"

# Clients generated from the contract, used against this runtime.
clients_status=0
infra/scripts/clients.sh "$LONGRUN_API_URL" "$(caller_token "clients-$stack")" >.local/clients.log 2>&1 || clients_status=$?
if [ "$clients_status" -ne 0 ]; then cat .local/clients.log; status=1; fi
echo "$(tail -n 1 .local/clients.log) (.local/clients.log)"

fuzz_token=$(caller_token schemathesis)
# With real tokens the runtime refuses unauthenticated requests as API
# Gateway does, so Schemathesis's ignored_auth check runs too.
fuzz_excluded=positive_data_acceptance,unsupported_method
if [ "$auth" != jwt ]; then fuzz_excluded="ignored_auth,$fuzz_excluded"; fi
fuzz_status=0
fuzz_seed="${SCHEMATHESIS_SEED:-204641732539029144003440337815481505217}"
seed_args=()
if [ "$fuzz_seed" != random ]; then seed_args=(--seed "$fuzz_seed"); fi
# shellcheck disable=SC2086 # the extra arguments are separate words on purpose
timeout 150 "$VENV/bin/schemathesis" run "$LONGRUN_API_URL/openapi.yaml" --url "$LONGRUN_API_URL" \
  --header "Authorization: Bearer $fuzz_token" \
  --checks all --exclude-checks "$fuzz_excluded" \
  --max-examples 20 --max-response-time 25 --request-timeout 25 \
  --no-color "${seed_args[@]}" ${SCHEMATHESIS_EXTRA_ARGS:-} >.local/schemathesis.log 2>&1 || fuzz_status=$?
fuzz_cases=$(grep -a -A1 '^Test cases:' .local/schemathesis.log | tail -n 1 | sed 's/^ *//' || true)
if [ "$fuzz_status" -ne 0 ]; then
  cat .local/schemathesis.log
  if [ "$fuzz_status" -eq 124 ]; then echo "schemathesis: stopped after 150s"; fi
  status=1
fi
echo "schemathesis: $([ "$fuzz_status" -eq 0 ] && echo passed || echo "FAILED (exit $fuzz_status)"): ${fuzz_cases:-no test cases} (.local/schemathesis.log)"
echo "$lane: $(( $(date +%s) - started ))s wall time (callers: $auth)"
# One closing line over every test binary: "tests: N passed, N failed".
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($i ~ /^passed/) p += $(i-1); if ($i ~ /^failed/) f += $(i-1) } }
     END { printf "tests: %d passed, %d failed\n", p, f }' .local/test-output.log
exit "$status"
