#!/usr/bin/env bash
# Installs the Node example's packages (examples/node/package-lock.json) into
# target/node-example, idempotently (a stamp file records the inputs). Called by tests/clients.rs.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
dir="$root/target/node-example"
mkdir -p "$root/target"
exec 9>"$root/target/node-example.lock"
flock 9
stamp="$dir/.installed-$(cat "$root/examples/node/package.json" "$root/examples/node/package-lock.json" "$0" | sha256sum | cut -c1-12)"
if [ -f "$stamp" ]; then exit 0; fi
rm -rf "$dir"
mkdir -p "$dir"
cp "$root/examples/node/package.json" "$root/examples/node/package-lock.json" "$dir/"
(cd "$dir" && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
touch "$stamp"
