#!/usr/bin/env bash
# After `sam build`: the function bootstrap (one binary, which SAM builds
# once when every function shares its code and metadata) and its zipped size (what
# Lambda stores and loads), written between the package markers in BENCHMARKS.md.
set -euo pipefail
cd "$(dirname "$0")/../.."
out=.local/package.md
mkdir -p .local
{
  echo "### Deployment packages (\`make package\`, arm64, $(date -u +%Y-%m-%d))"
  echo
  echo "| function | bootstrap | zipped |"
  echo "| --- | --- | --- |"
  for dir in .aws-sam/build/*/; do
    dir=${dir%/}
    [ -f "$dir/bootstrap" ] || continue
    name=$(basename "$dir" | sed "s/-Shared$/ (shared by every function with the same code: the one binary)/")
    size=$(stat -c %s "$dir/bootstrap")
    zipped=$(cd "$dir" && python3 -c 'import io, sys, zipfile
buf = io.BytesIO()
with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as z:
    z.write("bootstrap")
print(len(buf.getvalue()))')
    echo "| $name | $(( size / 1024 )) KiB | $(( zipped / 1024 )) KiB |"
  done
  echo
} | tee "$out"
python3 infra/scripts/splice-benchmarks.py package "$out"
