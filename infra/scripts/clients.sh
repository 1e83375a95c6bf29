#!/usr/bin/env bash
# Clients generated from the contract (docs/openapi.yaml), as a caller in
# another language would make them, then used: the Python client by
# openapi-python-client (pinned in clients/python/requirements.txt; any
# warning fails, so no response goes untyped) runs clients/python/try_client.py
# against the running API at $1 with the bearer token $2 (submit, wait,
# download, a typed problem); the TypeScript types by openapi-typescript
# (pinned in clients/typescript/package-lock.json) must pass `tsc --noEmit`
# with clients/typescript/check.ts. Output in .local/clients/.
set -euo pipefail
source "$(dirname "$0")/common.sh"
cd "$ROOT"
api="$1"
token="$2"
out=.local/clients
mkdir -p "$out"

venv=.venv-clients
if [ ! -f "$venv/.installed" ] || [ clients/python/requirements.txt -nt "$venv/.installed" ]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check -r clients/python/requirements.txt
  touch "$venv/.installed"
fi
rm -rf "$out/python"
PATH="$ROOT/$venv/bin:$PATH" "$venv/bin/openapi-python-client" generate --path docs/openapi.yaml \
  --meta none --output-path "$out/python/longrun_client" >"$out/python-generate.log" 2>&1
if grep -qi "warning" "$out/python-generate.log"; then
  cat "$out/python-generate.log"
  echo "clients: openapi-python-client warned: part of the contract is not in the client"
  exit 1
fi
PYTHONPATH="$out/python" "$venv/bin/python" clients/python/try_client.py "$api" "$token"

(
  cd clients/typescript
  [ node_modules/.package-lock.json -nt package-lock.json ] || npm ci --no-audit --no-fund --loglevel=error
  npx --no-install openapi-typescript ../../docs/openapi.yaml -o generated/api.d.ts
  npx --no-install tsc --noEmit -p .
)
echo "clients: the Python client ran against the API, and tsc accepts the TypeScript types"
