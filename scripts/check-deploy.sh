#!/usr/bin/env bash
# Offline checks of Dockerfile and deploy/kubernetes against the gateway binary
# (scripts/deploy_check.py says what is checked). Installs its tools on first use, idempotently,
# into target/deploy-tools/venv from PyPI; nothing system-wide, no kubectl, no Docker.
#   scripts/check-deploy.sh target/debug/openai-grpc-gateway [--allow-missing-flag NAME]... [--no-smoke]
# Exit 0: every check passed; 1: the failures are listed at the end; 2: usage error.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
dir="$root/target/deploy-tools"
req="$root/scripts/deploy-requirements.txt"
mkdir -p "$root/target"
# One installer at a time (parallel test runs).
exec 9>"$root/target/.deploy-tools.lock"
flock 9
stamp="$dir/.installed-$(sha256sum "$req" "$0" | sha256sum | cut -c1-12)"
if [ ! -f "$stamp" ]; then
  rm -rf "$dir"
  mkdir -p "$dir"
  python3 -m venv "$dir/venv"
  "$dir/venv/bin/pip" install --quiet --disable-pip-version-check --no-deps -r "$req"
  "$dir/venv/bin/pip" check --disable-pip-version-check >/dev/null
  touch "$stamp"
fi
flock -u 9
exec "$dir/venv/bin/python" "$root/scripts/deploy_check.py" "$@"
