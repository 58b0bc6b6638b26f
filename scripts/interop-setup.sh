#!/usr/bin/env bash
# Installs the interop test tools into target/interop (idempotent, no system installs):
#   - grpcurl 1.8.6 and a Python gRPC toolchain (grpcio-tools, grpcio-status) in a venv, from PyPI;
#   - buf (for `buf lint`), from the npm registry.
# Called by tests/interop.rs; safe to run by hand.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
dir="$root/target/interop"
stamp="$dir/.installed-$(sha256sum "$root/tests/interop/requirements.txt" "$0" | sha256sum | cut -c1-12)"
if [ -f "$stamp" ]; then exit 0; fi
rm -rf "$dir"
mkdir -p "$dir"
python3 -m venv "$dir/venv"
"$dir/venv/bin/pip" install --quiet --disable-pip-version-check -r "$root/tests/interop/requirements.txt"
npm install --prefix "$dir/node" --no-audit --no-fund --loglevel=error @bufbuild/buf@1.75.0 >/dev/null
touch "$stamp"
