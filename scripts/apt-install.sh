#!/usr/bin/env bash
# apt-install.sh PACKAGE COMMAND: installs Debian's PACKAGE once, with apt-get (as root), unless
# COMMAND is already on the PATH. Used by the test set-up scripts (redis-setup.sh,
# web-tools.sh); they hold a lock so parallel test binaries install once.
set -euo pipefail
package=$1
command=$2
if command -v "$command" >/dev/null 2>&1; then exit 0; fi
if [ "$(id -u)" != 0 ]; then
  echo "apt-install: $command is missing; install Debian's $package package (apt-get install $package)" >&2
  exit 1
fi
echo "apt-install: installing Debian's $package (once)" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/dev/null
apt-get install -y -qq --no-install-recommends "$package" >/dev/null
