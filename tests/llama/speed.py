# llama.cpp (llama-cpp-python) speed on the prompts of worker/embedded/examples/speed.rs, for
# BENCHMARKS.md: $LLAMA_PYTHON tests/llama/speed.py "$LLAMA_GGUF" REPEAT (the example's SPEED_REPEAT).
import sys, llama_cpp, resource
path, repeat = sys.argv[1], int(sys.argv[2])
llm = llama_cpp.Llama(model_path=path, n_threads=1, n_threads_batch=1, n_ctx=4096, verbose=False)
system = ("You are a novelist. You write vivid, concrete prose in plain English. "
          "Answer with JSON only, matching the schema you are given.") * 4
for i, topic in enumerate(["a lighthouse keeper", "a harbour market", "a storm at night"]):
    user = f"Write the next scene about {topic}. " + ("The keeper climbs the stairs at dusk, counts the steps, trims the wick, and looks out at the grey water where the fishing boats come home. " * repeat)
    prompt = f"<|im_start|>system\n{system}<|im_end|>\n<|im_start|>user\n{user}<|im_end|>\n<|im_start|>assistant\n"
    llama_cpp.llama_perf_context_reset(llm.ctx)
    out = llm.create_completion(prompt, max_tokens=256, temperature=0.7, top_p=0.95, seed=i)
    p = llama_cpp.llama_perf_context(llm.ctx)
    print(f"request {i}: {out['usage']['prompt_tokens']} prompt tokens, {p.n_p_eval} fed in {p.t_p_eval_ms:.0f} ms = {p.n_p_eval*1000/max(p.t_p_eval_ms,1e-9):.0f} tok/s, "
          f"{p.n_eval} decoded in {p.t_eval_ms:.0f} ms = {p.n_eval*1000/max(p.t_eval_ms,1e-9):.1f} tok/s")
print(f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024} MiB")
