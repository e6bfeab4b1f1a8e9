//! The model's one thread: requests wait in a queue and are decoded one at a time, each token
//! drawn from the tokens its grammar (the request's schema, compiled by llguidance) allows.

use crate::gguf::Loaded;
use crate::llama::Llama;
use anyhow::Context as _;
use llguidance::api::TopLevelGrammar;
use llguidance::{Matcher, ParserFactory};
use serde_json::Value;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;
use toktrie::{SimpleVob, TokEnv};

/// Prompt tokens fed to the model per forward pass (bounds the activations' memory). Every step
/// of the forward pass is batch-invariant, so where the chunks fall changes no bit of an answer,
/// and a prompt's prefix cached from any earlier request (its prompt or its answer) is reused
/// at any token: an answer never depends on the requests before it.
const PROMPT_CHUNK: usize = 256;

/// One request for the model thread.
pub(crate) struct Job {
    pub(crate) prompt: String,
    pub(crate) schema: Option<Value>,
    pub(crate) max_tokens: u32,
    pub(crate) temperature: f32,
    pub(crate) top_p: f32,
    pub(crate) seed: u64,
    /// When the request entered the queue.
    pub(crate) sent: Instant,
    pub(crate) reply: tokio::sync::oneshot::Sender<Generated>,
}

/// What the model wrote for one request.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Generated {
    /// The answer.
    pub text: String,
    /// Prompt tokens, chat template included.
    pub prompt_tokens: u64,
    /// Tokens decoded.
    pub completion_tokens: u64,
    /// The answer stopped at its token limit before its grammar was complete.
    pub truncated: bool,
    /// Why the model could not answer, if it could not.
    pub error: Option<String>,
    /// Milliseconds the request waited in the queue.
    pub queued_ms: u64,
    /// Leading prompt tokens whose keys and values were kept from the request before (the
    /// system prompt, the chat template, the brief): not fed again.
    pub reused_tokens: u64,
    /// Milliseconds of prompt intake.
    pub prompt_ms: u64,
    /// Milliseconds of decoding.
    pub decode_ms: u64,
}

/// Decoding counters of the model, for its tokens per second.
#[derive(Debug, Default)]
pub(crate) struct Stats {
    tokens: AtomicU64,
    micros: AtomicU64,
}

impl Stats {
    pub(crate) fn tokens_per_second(&self) -> f64 {
        let micros = self.micros.load(Ordering::Relaxed);
        if micros == 0 {
            return 0.0;
        }
        self.tokens.load(Ordering::Relaxed) as f64 * 1e6 / micros as f64
    }
}

struct Engine {
    model: Llama,
    tokenizer: tokenizers::Tokenizer,
    factory: ParserFactory,
    env: TokEnv,
    eos: Vec<u32>,
    stats: Arc<Stats>,
}

/// Starts the model's thread; requests sent on the returned queue are answered in order.
pub(crate) fn start(
    loaded: Loaded,
    stats: Arc<Stats>,
) -> anyhow::Result<std::sync::mpsc::Sender<Job>> {
    let Loaded { model, tokenizer, eos, .. } = loaded;
    let env = crate::gguf::tok_env(&tokenizer, &eos).context("the grammar's token trie")?;
    let mut factory = ParserFactory::new_simple(&env).context("the grammar compiler")?;
    factory.quiet();
    let mut engine = Engine { model, tokenizer, factory, env, eos, stats };
    let (tx, rx) = std::sync::mpsc::channel::<Job>();
    std::thread::Builder::new()
        .name("embedded-model".into())
        .spawn(move || {
            while let Ok(job) = rx.recv() {
                if job.reply.is_closed() {
                    continue;
                }
                let queued_ms = job.sent.elapsed().as_millis() as u64;
                let mut g = engine.run(&job).unwrap_or_else(|e| Generated {
                    error: Some(format!("{e:#}")),
                    ..Default::default()
                });
                g.queued_ms = queued_ms;
                let decode_tps = if g.decode_ms > 0 {
                    g.completion_tokens as f64 * 1000.0 / g.decode_ms as f64
                } else {
                    0.0
                };
                tracing::info!(
                    prompt_tokens = g.prompt_tokens,
                    reused_tokens = g.reused_tokens,
                    completion_tokens = g.completion_tokens,
                    queued_ms = g.queued_ms,
                    prompt_ms = g.prompt_ms,
                    decode_ms = g.decode_ms,
                    decode_tps = format!("{decode_tps:.1}"),
                    truncated = g.truncated,
                    error = g.error.as_deref().unwrap_or(""),
                    "embedded answer"
                );
                let _ = job.reply.send(g);
            }
        })
        .context("starting the model thread")?;
    Ok(tx)
}

impl Engine {
    fn run(&mut self, job: &Job) -> anyhow::Result<Generated> {
        let encoding = self
            .tokenizer
            .encode(job.prompt.as_str(), false)
            .map_err(|e| anyhow::anyhow!("tokenizing the prompt: {e}"))?;
        let prompt: Vec<u32> = encoding.get_ids().to_vec();
        let window = self.model.window();
        if prompt.is_empty() {
            anyhow::bail!("an empty prompt");
        }
        if prompt.len() + 1 >= window {
            anyhow::bail!("the prompt takes {} tokens, over the window of {window}", prompt.len());
        }
        let mut matcher = match &job.schema {
            Some(schema) => {
                let grammar = TopLevelGrammar::from_json_schema(schema.clone());
                let parser = self.factory.create_parser(grammar).context("compiling the schema")?;
                Some(Matcher::new(Ok(parser)))
            }
            None => None,
        };
        let started = Instant::now();
        // The cache keeps what this prompt shares with the last request; one token at least
        // is fed, for the logits after it.
        let reused = self.model.shared_prefix(&prompt).min(prompt.len() - 1);
        self.model.truncate(reused);
        let mut logits = None;
        for chunk in prompt[reused..].chunks(PROMPT_CHUNK) {
            logits = Some(self.model.forward(chunk)?);
        }
        let prompt_ms = started.elapsed().as_millis() as u64;
        let decode_started = Instant::now();
        let mut logits = logits.context("an empty prompt")?;
        let mut rng = SplitMix(job.seed);
        let mut out: Vec<u32> = Vec::new();
        let room = (job.max_tokens as usize).min(window - 1 - prompt.len());
        let mut truncated = true;
        let mut decoded = 0u64;
        while out.len() < room {
            if job.reply.is_closed() {
                anyhow::bail!("the request was dropped");
            }
            let mask = match &mut matcher {
                Some(m) => {
                    if m.is_stopped() {
                        truncated = false;
                        break;
                    }
                    Some(m.compute_mask().map_err(|e| anyhow::anyhow!("{e}"))?)
                }
                None => None,
            };
            let token = sample(&mut logits, mask.as_ref(), &out, job, &mut rng);
            if self.eos.contains(&token) {
                truncated = false;
                break;
            }
            let mut feed = vec![token];
            if let Some(m) = &mut matcher {
                m.consume_token(token).map_err(|e| anyhow::anyhow!("{e}"))?;
                // Tokens the grammar forces (key names, punctuation) go in one pass.
                feed.extend(m.consume_ff_tokens());
            }
            feed.truncate(room - out.len());
            out.extend(&feed);
            decoded += feed.len() as u64;
            if matcher.as_ref().is_some_and(Matcher::is_stopped) {
                truncated = false;
                break;
            }
            if out.len() >= room {
                break;
            }
            logits = self.model.forward(&feed)?;
        }
        let decode_ms = decode_started.elapsed().as_millis() as u64;
        self.stats.tokens.fetch_add(decoded, Ordering::Relaxed);
        self.stats.micros.fetch_add(decode_started.elapsed().as_micros() as u64, Ordering::Relaxed);
        crate::metrics::decoded(prompt.len() as u64, decoded, decode_started.elapsed());
        let trie = self.env.tok_trie();
        let bytes: Vec<u8> = out
            .iter()
            .filter(|t| !trie.is_special_token(**t))
            .flat_map(|t| trie.token(*t).iter().copied())
            .collect();
        Ok(Generated {
            text: String::from_utf8_lossy(&bytes).into_owned(),
            prompt_tokens: prompt.len() as u64,
            completion_tokens: out.len() as u64,
            truncated,
            error: None,
            queued_ms: 0,
            reused_tokens: reused as u64,
            prompt_ms,
            decode_ms,
        })
    }
}

/// The sampling a llama.cpp server applies unless told otherwise (llama-cpp-python's server
/// defaults): a small model without them loops ("lit lit lit ...") and wanders into the long
/// tail of its vocabulary.
const TOP_K: usize = 40;
/// Tokens less likely than this share of the likeliest one are dropped.
const MIN_P: f32 = 0.05;
/// Logits of tokens among the last [`PENALTY_LAST_N`] decoded are divided (when positive) or
/// multiplied (when negative) by this.
const REPEAT_PENALTY: f32 = 1.1;
/// How many of the latest tokens the repeat penalty looks at.
const PENALTY_LAST_N: usize = 64;

/// A token from `logits` among those `mask` allows, after the repeat penalty over `recent`
/// (the tokens decoded so far): the most likely at temperature 0, else drawn (seeded) as
/// llama.cpp draws it: the [`TOP_K`] likeliest, then the smallest set holding `top_p` of their
/// mass, then those at least [`MIN_P`] as likely as the first, then the temperature.
fn sample(
    logits: &mut [f32],
    mask: Option<&SimpleVob>,
    recent: &[u32],
    job: &Job,
    rng: &mut SplitMix,
) -> u32 {
    let mut penalised = std::collections::HashSet::new();
    for &t in &recent[recent.len().saturating_sub(PENALTY_LAST_N)..] {
        if penalised.insert(t)
            && let Some(l) = logits.get_mut(t as usize)
        {
            *l = if *l > 0.0 { *l / REPEAT_PENALTY } else { *l * REPEAT_PENALTY };
        }
    }
    if let Some(mask) = mask {
        for (i, l) in logits.iter_mut().enumerate() {
            if !mask.is_allowed(i as u32) {
                *l = f32::NEG_INFINITY;
            }
        }
    }
    let best =
        logits.iter().enumerate().max_by(|a, b| a.1.total_cmp(b.1)).map_or(0, |(i, _)| i as u32);
    if job.temperature <= 0.0 {
        return best;
    }
    let mut cands: Vec<(u32, f32)> = logits
        .iter()
        .enumerate()
        .filter(|(_, l)| l.is_finite())
        .map(|(i, l)| (i as u32, *l))
        .collect();
    if cands.is_empty() {
        return best;
    }
    // The likeliest first (ties by token id, so the order is the same on every run).
    let k = TOP_K.min(cands.len());
    cands.select_nth_unstable_by(k - 1, |a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    cands.truncate(k);
    cands.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    let max = cands[0].1;
    let probs: Vec<f32> = cands.iter().map(|c| (c.1 - max).exp()).collect();
    let total: f32 = probs.iter().sum();
    let top_p = if job.top_p > 0.0 && job.top_p < 1.0 { job.top_p } else { 1.0 };
    let mut kept = 0.0;
    let mut n = 0;
    for p in &probs {
        if n > 0 && (kept >= top_p * total || *p < MIN_P * probs[0]) {
            break;
        }
        kept += p;
        n += 1;
    }
    let t = job.temperature;
    let weights: Vec<f32> = cands[..n].iter().map(|c| ((c.1 - max) / t).exp()).collect();
    let mut r = rng.next_f32() * weights.iter().sum::<f32>();
    for (c, w) in cands[..n].iter().zip(&weights) {
        r -= w;
        if r <= 0.0 {
            return c.0;
        }
    }
    cands[n - 1].0
}

/// A small seeded generator (SplitMix64): the same seed draws the same answer.
struct SplitMix(u64);

impl SplitMix {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn next_f32(&mut self) -> f32 {
        (self.next_u64() >> 40) as f32 / (1u64 << 24) as f32
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(temperature: f32, top_p: f32) -> Job {
        Job {
            prompt: String::new(),
            schema: None,
            max_tokens: 1,
            temperature,
            top_p,
            seed: 0,
            sent: Instant::now(),
            reply: tokio::sync::oneshot::channel().0,
        }
    }

    #[test]
    fn sampling_keeps_to_the_mask_and_the_seed() {
        let mut mask = SimpleVob::alloc(4);
        mask.allow_token(1);
        mask.allow_token(2);
        let logits = [9.0, 1.0, 2.0, 9.0];
        assert_eq!(
            sample(&mut logits.clone(), Some(&mask), &[], &job(0.0, 1.0), &mut SplitMix(1)),
            2
        );
        let draws = |seed| {
            let mut rng = SplitMix(seed);
            (0..50)
                .map(|_| sample(&mut logits.clone(), Some(&mask), &[], &job(1.0, 1.0), &mut rng))
                .collect::<Vec<_>>()
        };
        let a = draws(7);
        assert!(a.iter().all(|t| *t == 1 || *t == 2), "{a:?}");
        assert!(a.contains(&1) && a.contains(&2), "{a:?}");
        assert_eq!(a, draws(7), "same seed, same draws");
        // A small top_p keeps only the likeliest allowed token.
        let mut rng = SplitMix(3);
        assert!((0..20).all(|_| sample(
            &mut logits.clone(),
            Some(&mask),
            &[],
            &job(1.0, 0.1),
            &mut rng
        ) == 2));
    }

    #[test]
    fn recent_tokens_are_penalised_and_the_unlikely_tail_is_never_drawn() {
        // Token 2 leads by a little; once it was just decoded, token 1 does.
        let logits = [0.0, 5.0, 5.05, 1.0];
        assert_eq!(sample(&mut logits.clone(), None, &[], &job(0.0, 1.0), &mut SplitMix(1)), 2);
        assert_eq!(sample(&mut logits.clone(), None, &[2], &job(0.0, 1.0), &mut SplitMix(1)), 1);
        // A negative logit is made smaller, not larger.
        let negative = [-1.0, -1.05, -9.0];
        assert_eq!(sample(&mut negative.clone(), None, &[0], &job(0.0, 1.0), &mut SplitMix(1)), 1);
        // Token 0 is e^-4 (under 5%) as likely as token 1: min-p drops it at any temperature.
        let tail = [5.0, 9.0, 8.5];
        let mut rng = SplitMix(11);
        let draws: Vec<u32> = (0..200)
            .map(|_| sample(&mut tail.clone(), None, &[], &job(2.0, 1.0), &mut rng))
            .collect();
        assert!(!draws.contains(&0) && draws.contains(&1) && draws.contains(&2), "{draws:?}");
    }
}
