#!/usr/bin/env bash
# make bench: release builds, the emulator, then longrun-bench; writes the
# results between the markers in BENCHMARKS.md (and to .local/bench.md).
set -euo pipefail
source "$(dirname "$0")/common.sh"
cd "$ROOT"
use_emulator_credentials
mkdir -p .local

# The one function binary (every function plays it) and the hello world for the cold starts, the bench itself.
cargo build --release --bins -p longrun-bench -p longrun-hello -p longrun-bootstrap

if [ -z "${AWS_ENDPOINT_URL:-}" ]; then
  moto_port=$(free_port)
  start_moto "$moto_port" .local/bench-moto.log
  trap 'kill "$MOTO_PID" 2>/dev/null || true' EXIT
  export AWS_ENDPOINT_URL="http://127.0.0.1:$moto_port"
fi

# BENCH_ONLY=time, resume or quota: only that part, spliced into its own section.
if [ "${BENCH_ONLY:-}" != "time" ] && [ "${BENCH_ONLY:-}" != "resume" ] && [ "${BENCH_ONLY:-}" != "quota" ]; then
out=.local/bench.md
{
  echo "## \`make bench\` run of $(date -u +%Y-%m-%d)"
  echo
  echo "Machine: $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)), $(free -g | awk '/Mem:/ {print $2}') GiB;" \
       "emulator: moto $("$PY" -c 'import moto; print(moto.__version__)'); $(rustc --version)."
  echo
  ./target/release/longrun-bench
  echo "### Function binaries (release profile, $(rustc -vV | awk '/host/ {print $2}'))"
  echo
  echo "| binary | size | gzip -9 (≈ zip) |"
  echo "| --- | --- | --- |"
  for bin in hello bootstrap; do
    size=$(stat -c %s "target/release/$bin")
    zipped=$(gzip -9 -c "target/release/$bin" | wc -c)
    echo "| $bin | $(( size / 1024 )) KiB | $(( zipped / 1024 )) KiB |"
  done
  echo
} | tee "$out"

if [ -z "${BENCH_ONLY:-}" ]; then
  "$PY" infra/scripts/splice-benchmarks.py bench "$out"
fi
fi

# Start lateness of jobs at a time and schedule ticks (a stack of its own).
if [ -z "${BENCH_ONLY:-}" ] || [ "${BENCH_ONLY}" = "time" ]; then
  time_out=.local/bench-time.md
  {
    echo "## Start lateness, \`make bench\` run of $(date -u +%Y-%m-%d) (moto $("$PY" -c 'import moto; print(moto.__version__)'))"
    echo
    BENCH_ONLY=time ./target/release/longrun-bench
  } | tee "$time_out"
  "$PY" infra/scripts/splice-benchmarks.py time "$time_out"
fi
# A large report in one invocation and through short ones.
if [ -z "${BENCH_ONLY:-}" ] || [ "${BENCH_ONLY}" = "resume" ]; then
  resume_out=.local/bench-resume.md
  {
    echo "## Reports that resume, \`make bench\` run of $(date -u +%Y-%m-%d) (moto $("$PY" -c 'import moto; print(moto.__version__)'))"
    echo
    BENCH_ONLY=resume ./target/release/longrun-bench
  } | tee "$resume_out"
  "$PY" infra/scripts/splice-benchmarks.py resume "$resume_out"
fi
# Submit with the owner quota on against its floor (a stack of its own).
if [ -z "${BENCH_ONLY:-}" ] || [ "${BENCH_ONLY}" = "quota" ]; then
  quota_out=.local/bench-quota.md
  {
    echo "## Submit with the quota on, \`make bench\` run of $(date -u +%Y-%m-%d) (moto $("$PY" -c 'import moto; print(moto.__version__)'))"
    echo
    BENCH_ONLY=quota ./target/release/longrun-bench
  } | tee "$quota_out"
  "$PY" infra/scripts/splice-benchmarks.py quota "$quota_out"
fi
echo "BENCHMARKS.md updated"
