# Shared by the scripts in infra/scripts: the project venv, the emulators and
# waiting for ports. Source it; it defines functions only.

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
VENV="$ROOT/.venv"
PY="$VENV/bin/python"

# Fake credentials and a region for the emulator, unless the caller set them.
use_emulator_credentials() {
  export AWS_ACCESS_KEY_ID="${AWS_ACCESS_KEY_ID:-test}"
  export AWS_SECRET_ACCESS_KEY="${AWS_SECRET_ACCESS_KEY:-test}"
  export AWS_REGION="${AWS_REGION:-us-east-1}"
  export AWS_DEFAULT_REGION="$AWS_REGION"
}

free_port() {
  "$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# wait_for_url URL SECONDS [any]: until URL answers 2xx (with "any": any
# HTTP status at all), or fail.
wait_for_url() {
  "$PY" - "$1" "$2" "${3:-2xx}" <<'PY'
import sys, time, urllib.error, urllib.request
url, limit, accept = sys.argv[1], float(sys.argv[2]), sys.argv[3]
deadline = time.time() + limit
while time.time() < deadline:
    try:
        with urllib.request.urlopen(url, timeout=2) as r:
            if accept == "any" or 200 <= r.status < 300:
                sys.exit(0)
    except urllib.error.HTTPError:
        if accept == "any":
            sys.exit(0)
    except Exception:
        pass
    time.sleep(0.2)
print(f"{url} did not answer within {limit:.0f}s", file=sys.stderr)
sys.exit(1)
PY
}

# wait_for_answer URL SECONDS: until URL answers HTTP at all (any status), or fail.
wait_for_answer() {
  wait_for_url "$1" "$2" any
}

# start_moto PORT LOGFILE: starts moto server in the background; sets MOTO_PID.
start_moto() {
  # moto with DynamoDB requests applied whole: infra/scripts/moto_server.py.
  "$PY" "$ROOT/infra/scripts/moto_server.py" -H 127.0.0.1 -p "$1" >"$2" 2>&1 &
  MOTO_PID=$!
  wait_for_url "http://127.0.0.1:$1/moto-api/" 30
}
