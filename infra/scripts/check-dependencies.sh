#!/usr/bin/env bash
# make lint: crates that must stay out of the dependency graph, each for the
# size and cold start of every function (see BENCHMARKS.md, "Package size"):
# a second TLS stack (aws-lc-rs; hyper 0.14 + rustls 0.21 via the SDK's
# legacy `rustls` feature) and S3's SigV4a crypto (p256). (tracing-subscriber's
# EnvFilter, with its regex engine, stays in the graph through lambda_runtime
# but is not called, so LTO drops it: no `regex-automata` path is left in
# the function binaries.)
set -euo pipefail
cd "$(dirname "$0")/../.."
status=0
for crate in aws-lc-rs aws-lc-sys hyper-rustls@0.24 rustls@0.21 p256; do
  if cargo tree --workspace --edges normal,build --target all --invert "$crate" >/dev/null 2>&1; then
    echo "check-dependencies: $crate is back in the dependency graph:" >&2
    cargo tree --workspace --edges normal,build --target all --invert "$crate" | head -12 >&2
    status=1
  fi
done
# The API's clients speak it through longrun-types alone: no AWS SDK, no
# Lambda runtime, no job type's crates (image, csv), no longrun crate but
# the wire types in their normal graph. longrun-types itself is serde only:
# not even tokio. longrun-core, what an app's job crate builds on, is free
# of every backend: no AWS SDK, no Lambda runtime, no job type's crates.
platform='aws-|aws_lambda_events|lambda_runtime|image |csv |csv-core '
ours='longrun-(core|aws|jobs|lambda|bootstrap) '
for crate in longrun-types longrun-client longrun-cli longrun-core; do
  case "$crate" in
    longrun-types) forbidden="^($platform|$ours|tokio )" ;;
    longrun-core) forbidden="^($platform|longrun-(aws|jobs|lambda|bootstrap) )" ;;
    *) forbidden="^($platform|$ours)" ;;
  esac
  # cargo tree must succeed: a failure is not an empty tree.
  tree=$(cargo tree -p "$crate" --edges normal --prefix none --format '{p}')
  heavy=$(grep -E "$forbidden" <<<"$tree" | sort -u || true)
  if [ -n "$heavy" ]; then
    echo "check-dependencies: $crate depends on crates it must not:" >&2
    echo "$heavy" | head -12 >&2
    status=1
  fi
done
exit "$status"
