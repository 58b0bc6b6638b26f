#!/usr/bin/env bash
# Installs what building and testing the web page needs, idempotently (a stamp file records the
# inputs, so a second run is instant):
#   - the npm packages pinned by web/package-lock.json, into target/web-tools (`npm ci`): buf and
#     protoc-gen-es (code from the protos), Connect's gRPC-Web client, esbuild, google-proto-files
#     (google.rpc error details), playwright-core (drives the browser; downloads no browser);
#   - with --browser: Debian's `chromium` package, once, with apt-get (as root), unless
#     /usr/bin/chromium is already there.
# Called by scripts/build-web.sh and tests/browser.rs; safe to run by hand.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
dir="$root/target/web-tools"
mkdir -p "$root/target"
# One install at a time (test binaries and a manual rebuild may start together).
exec 9>"$root/target/web-tools.lock"
flock 9

if [ "${1:-}" = "--browser" ]; then
  "$root/scripts/apt-install.sh" chromium chromium
fi

stamp="$dir/.installed-$(cat "$root/web/package.json" "$root/web/package-lock.json" "$0" | sha256sum | cut -c1-12)"
if [ -f "$stamp" ]; then exit 0; fi
rm -rf "$dir"
mkdir -p "$dir"
cp "$root/web/package.json" "$root/web/package-lock.json" "$dir/"
(cd "$dir" && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
touch "$stamp"
