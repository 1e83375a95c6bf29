#!/usr/bin/env bash
# make dev: the emulator (moto, unless AWS_ENDPOINT_URL points elsewhere),
# the resources from template.yaml, and the local runtime serving the API.
# Extra arguments go to longrun-local (e.g. --parameter-overrides K=V).
set -euo pipefail
source "$(dirname "$0")/common.sh"
cd "$ROOT"
use_emulator_credentials
PORT="${PORT:-3000}"
mkdir -p .local
if [ -z "${AWS_ENDPOINT_URL:-}" ]; then
  MOTO_PORT="${MOTO_PORT:-5000}"
  start_moto "$MOTO_PORT" .local/moto.log
  trap 'kill "$MOTO_PID" 2>/dev/null || true' EXIT
  export AWS_ENDPOINT_URL="http://127.0.0.1:$MOTO_PORT"
  echo "moto server on $AWS_ENDPOINT_URL (log: .local/moto.log)"
fi
./target/debug/longrun-local --port "$PORT" --parameter-overrides EnableSleepJob=true "$@"
