#!/usr/bin/env bash
# The whole test suite: installs the Debian packages and the local model server the tests need
# when missing, then runs every test of the workspace. Each test suite starts its own
# nats-server on a free port, and the real-model test its own llama-cpp-python server.
set -euo pipefail
cd "$(dirname "$0")/.."

# Debian packages the tests need: nats-server for every distributed test, chromium and
# chromium-driver for the dashboard test (tests/operators.rs fails, never skips, without them),
# epubcheck for the EPUB test (tests/epub.rs fails, never skips, without it; its jar is run
# with java, so the binfmt support /usr/bin/epubcheck relies on is not needed).
missing=()
if ! command -v nats-server >/dev/null 2>&1 && [ ! -x /usr/sbin/nats-server ]; then missing+=(nats-server); fi
[ -x /usr/bin/chromium ] || missing+=(chromium)
[ -x /usr/bin/chromedriver ] || missing+=(chromium-driver)
[ -f /usr/share/java/epubcheck.jar ] || missing+=(epubcheck)
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing missing Debian packages: ${missing[*]}" >&2
  SUDO=""
  if [ "$(id -u)" != "0" ]; then SUDO="sudo"; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# The real local model of tests/real_model.rs: llama-cpp-python's server and SmolLM2-135M,
# installed outside the checkout and cached (the first run compiles llama.cpp: minutes).
bash tests/llama/setup.sh >/dev/null

cargo test --workspace --locked "$@"
