//! Prompt intake and decoding speed of the embedded model on one file, with nothing else in
//! the process: three requests of about a thousand prompt tokens sharing their system prompt
//! (as a book's requests do), each decoding up to 256 tokens under a schema. Prints each
//! request's figures and the process's peak RSS.
//!
//! ```sh
//! CANDLE_NUM_THREADS=1 cargo run --release -p scriptorium-embedded --features model \
//!     --example speed -- path/to/model.gguf
//! ```

use scriptorium_common::model::LocalRequest;
use scriptorium_embedded::{EmbeddedModel, EmbeddedSettings};
use scriptorium_proto::v1::AgentKind;

fn peak_rss_mib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kib = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .unwrap_or(0);
    kib / 1024
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let path = std::env::args().nth(1).ok_or_else(|| anyhow::anyhow!("usage: speed FILE.gguf"))?;
    let started = std::time::Instant::now();
    let settings = EmbeddedSettings::new("speed", &path);
    let model = tokio::task::spawn_blocking(move || EmbeddedModel::load(settings)).await??;
    println!("loaded in {} ms, window {}", started.elapsed().as_millis(), model.window());
    let system = "You are a novelist. You write vivid, concrete prose in plain English. \
                  Answer with JSON only, matching the schema you are given."
        .repeat(4);
    let schema = serde_json::json!({
        "type": "object",
        "properties": {"text": {"type": "string", "minLength": 1, "maxLength": 2000}},
        "required": ["text"],
    });
    // SPEED_REPEAT: how many times the user message repeats its sentence (20: ~770 tokens).
    let repeat = std::env::var("SPEED_REPEAT").ok().and_then(|v| v.parse().ok()).unwrap_or(20);
    for (i, topic) in
        ["a lighthouse keeper", "a harbour market", "a storm at night"].iter().enumerate()
    {
        let user = format!(
            "Write the next scene about {topic}. {}",
            "The keeper climbs the stairs at dusk, counts the steps, trims the wick, \
             and looks out at the grey water where the fishing boats come home. "
                .repeat(repeat)
        );
        let g = model
            .generate(LocalRequest {
                kind: AgentKind::Chapter,
                system: &system,
                user: &user,
                seed: i as u64,
                schema: Some(&schema),
                max_tokens: 256,
                temperature: 0.7,
                top_p: 0.95,
            })
            .await?;
        let fed = g.prompt_tokens - g.reused_tokens;
        println!(
            "request {i}: {} prompt tokens ({} reused, {fed} fed in {} ms = {:.0} tok/s), {} decoded in {} ms = {:.1} tok/s{}",
            g.prompt_tokens,
            g.reused_tokens,
            g.prompt_ms,
            fed as f64 * 1000.0 / g.prompt_ms.max(1) as f64,
            g.completion_tokens,
            g.decode_ms,
            g.completion_tokens as f64 * 1000.0 / g.decode_ms.max(1) as f64,
            g.error.map(|e| format!(", error: {e}")).unwrap_or_default(),
        );
    }
    println!("peak RSS {} MiB", peak_rss_mib());
    Ok(())
}
