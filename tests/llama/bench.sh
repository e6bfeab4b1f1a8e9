#!/usr/bin/env bash
# The real-model benchmark of BENCHMARKS.md: llama-cpp-python serving SmolLM2-135M-Instruct (one
# slot, 4,096-token context: the window the engine plans a local server against, so the server
# refuses any prompt that does not fit) writes each brief given (default: examples/fantasy.toml)
# through the built-in `openai` provider, and prints calls, prompt and completion tokens as the
# server reported them (book.json usage), wall time, the dialect used, the requests the server
# refused (none expected), and the quality report.
#   bash tests/llama/bench.sh [BRIEF...]      (SCRIPTORIUM_BIN, default target/release/scriptorium,
#                                              built if missing)
set -euo pipefail
cd "$(dirname "$0")/../.."
eval "$(bash tests/llama/setup.sh)"
bin="${SCRIPTORIUM_BIN:-target/release/scriptorium}"
[ -x "$bin" ] || cargo build --release --locked
briefs=("$@"); [ ${#briefs[@]} -gt 0 ] || briefs=(examples/fantasy.toml)
work=$(mktemp -d); trap 'kill "$server" 2>/dev/null; cp "$work"/*.log "${BENCH_KEEP:-/tmp}/" 2>/dev/null; rm -rf "$work"' EXIT
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$LLAMA_PYTHON" -m llama_cpp.server --model "$LLAMA_GGUF" --host 127.0.0.1 --port "$port" \
  --n_ctx 4096 --n_threads 1 --n_threads_batch 1 >"$work/server.log" 2>&1 &
server=$!
for _ in $(seq 1 120); do curl -sf "http://127.0.0.1:$port/v1/models" >/dev/null && break; sleep 1; done
for brief in "${briefs[@]}"; do
  out="$work/$(basename "$brief" .toml)"
  start=$(date +%s)
  before=$(wc -l <"$work/server.log")
  status=0
  OPENAI_BASE_URL="http://127.0.0.1:$port/v1" OPENAI_API_KEY=sk-local-unused \
    "$bin" write "$brief" --provider openai --model smollm2 --out "$out" --no-cache \
    >"$work/write.log" 2>&1 || status=$?
  wall=$(( $(date +%s) - start ))
  # uvicorn's access log: a prompt over the window is answered 400 (context_length_exceeded).
  refused=$(tail -n +"$((before + 1))" "$work/server.log" | grep -c 'chat/completions HTTP/1.1" [45]' || true)
  book=$(find "$out" -name book.json 2>/dev/null | head -n 1 || true)
  if [ -z "$book" ]; then
    echo "$brief: no book after $wall s (exit $status); the write's last lines:"
    tail -n 5 "$work/write.log"
    continue
  fi
  python3 - "$book" "$brief" "$wall" "$status" <<'PY'
import json, sys
book, brief, wall, status = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
b = json.load(open(book))
u = b["usage"]
dialects = sorted({s.get("dialect", "") for s in b["steps"] if s.get("route")})
print(f"{brief}: {'done' if b.get('finished_ms') else 'unfinished'} (exit {status}), {u['calls']} calls, "
      f"{u['prompt_tokens']} prompt + {u['completion_tokens']} completion = "
      f"{u['prompt_tokens'] + u['completion_tokens']} tokens (server-reported), wall {wall} s, "
      f"dialects {dialects}")
if b.get("failure"):
    print("  failure:", b["failure"])
PY
  echo "  chat requests the server refused: $refused"
  dir=$(dirname "$book")
  "$bin" check "$dir" 2>/dev/null || true
  cp -r "$dir" "${BENCH_KEEP:-/tmp}/" 2>/dev/null || true
done
