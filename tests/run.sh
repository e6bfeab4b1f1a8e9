#!/usr/bin/env bash
# The whole test suite: installs nats-server (Debian package) when missing, then runs every
# test of the workspace. Each test suite starts its own nats-server on a free port.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v nats-server >/dev/null 2>&1 && [ ! -x /usr/sbin/nats-server ]; then
  echo "nats-server not found: installing the Debian package" >&2
  SUDO=""
  if [ "$(id -u)" != "0" ]; then SUDO="sudo"; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq nats-server >/dev/null
fi

cargo test --workspace --locked "$@"
