#!/usr/bin/env bash
# Installs Debian's redis-server package once, with apt-get (as root), unless redis-server is
# already on the PATH. Called by tests/replicas.rs; safe to run by hand. The tests start their
# own redis-server processes on loopback ports and stop them by PID.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
mkdir -p "$root/target"
# One install at a time (several test binaries may start together).
exec 9>"$root/target/redis-setup.lock"
flock 9
"$root/scripts/apt-install.sh" redis-server redis-server
