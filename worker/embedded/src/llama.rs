//! The model's forward pass, our own rather than candle-transformers' `quantized_llama`, for
//! three reasons measured on SmolLM2-135M (BENCHMARKS.md, issue 25):
//! - keys and values are appended to a cache that grows with the context; candle's copies the
//!   whole cache for every token, then copies it three times over for grouped-query attention;
//! - the token embeddings stay quantised (candle keeps an f32 copy: 113 MiB for SmolLM2);
//! - a request reuses the keys and values of the prefix it shares with the one before (the
//!   system prompt and the chat template), as llama.cpp's server does: every step is
//!   batch-invariant (a token's numbers do not depend on the tokens fed with it), so a reused
//!   prefix gives the same answer, bit for bit, as one fed again.
//!
//! The weight products are [`QMatrix`]'s; candle only reads the file. The norms, the rotary
//! embedding are plain loops over `f32` slices; the attention is [`crate::attention`]'s.

use crate::attention::{Half, Shape, attend};
use crate::matrix::QMatrix;
use anyhow::{Context as _, anyhow, bail};
use candle_core::Device;
use candle_core::quantized::QTensor;
use candle_core::quantized::gguf_file::Content;
use std::io::{Read, Seek};

/// The longest context the cache is allowed to hold, whatever the file says: at 4,096 tokens
/// SmolLM2's cache takes 90 MiB of `f16`.
pub const MAX_WINDOW: usize = 4096;

/// The dimensions of a llama-architecture model.
#[derive(Debug, Clone, Copy)]
struct Dims {
    hidden: usize,
    heads: usize,
    kv_heads: usize,
    head_dim: usize,
    eps: f32,
    window: usize,
}

impl Dims {
    /// Floats of one position's keys (or values) in one layer.
    fn kv_width(&self) -> usize {
        self.kv_heads * self.head_dim
    }
}

struct Layer {
    q: QMatrix,
    k: QMatrix,
    v: QMatrix,
    o: QMatrix,
    gate: QMatrix,
    up: QMatrix,
    down: QMatrix,
    attn_norm: Vec<f32>,
    ffn_norm: Vec<f32>,
    /// `[position][kv head][head_dim]`: appending a position is a push.
    keys: Vec<Half>,
    values: Vec<Half>,
}

/// A llama-architecture model and the keys and values of the tokens it was last fed.
///
/// ```ignore
/// let mut model = scriptorium_embedded::Llama::open("SmolLM2-135M-Instruct.Q4_1.gguf".as_ref(), 4096)?;
/// let logits = model.forward(&[1, 2, 3])?; // the next token's, one per vocabulary entry
/// ```
pub struct Llama {
    embeddings: QMatrix,
    layers: Vec<Layer>,
    norm: Vec<f32>,
    /// `None`: tied to the embeddings (SmolLM2).
    output: Option<QMatrix>,
    dims: Dims,
    /// Threads of the larger products.
    threads: usize,
    /// `cos` and `sin` of each position's angles, `[position][head_dim / 2]`.
    cos: Vec<f32>,
    sin: Vec<f32>,
    /// The tokens whose keys and values the cache holds, in order.
    cached: Vec<u32>,
}

fn tensor<R: Read + Seek>(ct: &Content, r: &mut R, name: &str) -> anyhow::Result<QTensor> {
    ct.tensor(r, name, &Device::Cpu).map_err(|e| anyhow!("tensor {name}: {e}"))
}

fn floats<R: Read + Seek>(ct: &Content, r: &mut R, name: &str) -> anyhow::Result<Vec<f32>> {
    let t = tensor(ct, r, name)?.dequantize(&Device::Cpu)?;
    Ok(t.flatten_all()?.to_vec1::<f32>()?)
}

fn matrix<R: Read + Seek>(ct: &Content, r: &mut R, name: &str) -> anyhow::Result<QMatrix> {
    QMatrix::from_qtensor(&tensor(ct, r, name)?).map_err(|e| anyhow!("tensor {name}: {e}"))
}

impl Llama {
    /// Reads a llama-architecture GGUF file as it is (no Q8_0 copy); the cache may hold up to
    /// `window` tokens (at most [`MAX_WINDOW`]).
    pub fn open(path: &std::path::Path, window: usize) -> anyhow::Result<Llama> {
        let file =
            std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
        let mut r = std::io::BufReader::new(file);
        let ct = Content::read(&mut r)
            .map_err(|e| anyhow!("reading {} as GGUF: {e}", path.display()))?;
        Llama::load(&ct, &mut r, window)
    }

    /// Reads the weights of `ct` (a llama-architecture GGUF) from `r`; the cache may hold up
    /// to `window` tokens (at most [`MAX_WINDOW`]).
    pub(crate) fn load<R: Read + Seek>(
        ct: &Content,
        r: &mut R,
        window: usize,
    ) -> anyhow::Result<Llama> {
        let md = |key: &str| ct.metadata.get(key).with_context(|| format!("the file has no {key}"));
        let int = |key: &str| -> anyhow::Result<usize> {
            Ok(md(key)?.to_u32().map_err(|e| anyhow!("{key}: {e}"))? as usize)
        };
        if ct.metadata.get("llama.expert_count").and_then(|v| v.to_u32().ok()).unwrap_or(0) > 1 {
            bail!("mixture-of-experts models are not supported");
        }
        let heads = int("llama.attention.head_count")?;
        let kv_heads = int("llama.attention.head_count_kv")?;
        let hidden = int("llama.embedding_length")?;
        let blocks = int("llama.block_count")?;
        if heads == 0 || kv_heads == 0 || hidden % heads != 0 || heads % kv_heads != 0 {
            bail!(
                "llama.attention.head_count {heads} and head_count_kv {kv_heads} do not divide llama.embedding_length {hidden}"
            );
        }
        let head_dim = hidden / heads;
        let rope_dim = int("llama.rope.dimension_count").unwrap_or(head_dim);
        if rope_dim != head_dim || head_dim % 2 != 0 {
            bail!("llama.rope.dimension_count {rope_dim} is not the head size {head_dim}");
        }
        let eps = md("llama.attention.layer_norm_rms_epsilon")?
            .to_f32()
            .map_err(|e| anyhow!("llama.attention.layer_norm_rms_epsilon: {e}"))?;
        let base = ct
            .metadata
            .get("llama.rope.freq_base")
            .and_then(|v| v.to_f32().ok())
            .unwrap_or(10_000.0);
        let window = window.clamp(1, MAX_WINDOW);
        let dims = Dims { hidden, heads, kv_heads, head_dim, eps, window };
        let embeddings = matrix(ct, r, "token_embd.weight")?;
        let output = match ct.tensor_infos.contains_key("output.weight") {
            true => Some(matrix(ct, r, "output.weight")?),
            false => None,
        };
        let norm = floats(ct, r, "output_norm.weight")?;
        let mut layers = Vec::with_capacity(blocks);
        for i in 0..blocks {
            let name = |n: &str| format!("blk.{i}.{n}.weight");
            layers.push(Layer {
                q: matrix(ct, r, &name("attn_q"))?,
                k: matrix(ct, r, &name("attn_k"))?,
                v: matrix(ct, r, &name("attn_v"))?,
                o: matrix(ct, r, &name("attn_output"))?,
                gate: matrix(ct, r, &name("ffn_gate"))?,
                up: matrix(ct, r, &name("ffn_up"))?,
                down: matrix(ct, r, &name("ffn_down"))?,
                attn_norm: floats(ct, r, &name("attn_norm"))?,
                ffn_norm: floats(ct, r, &name("ffn_norm"))?,
                keys: Vec::new(),
                values: Vec::new(),
            });
        }
        let half = head_dim / 2;
        let mut cos = Vec::with_capacity(window * half);
        let mut sin = Vec::with_capacity(window * half);
        for p in 0..window {
            for i in 0..half {
                let theta = 1.0 / base.powf((2 * i) as f32 / head_dim as f32);
                let angle = p as f32 * theta;
                cos.push(angle.cos());
                sin.push(angle.sin());
            }
        }
        let threads = candle_core::utils::get_num_threads();
        Ok(Llama { embeddings, layers, norm, output, dims, threads, cos, sin, cached: Vec::new() })
    }

    /// The most tokens the cache holds.
    pub fn window(&self) -> usize {
        self.dims.window
    }

    /// How many leading tokens of `prompt` the cache already holds.
    pub fn shared_prefix(&self, prompt: &[u32]) -> usize {
        self.cached.iter().zip(prompt).take_while(|(a, b)| a == b).count()
    }

    /// Forgets every cached token after the first `len`.
    pub fn truncate(&mut self, len: usize) {
        let len = len.min(self.cached.len());
        self.cached.truncate(len);
        let width = self.dims.kv_width();
        for layer in &mut self.layers {
            layer.keys.truncate(len * width);
            layer.values.truncate(len * width);
        }
    }

    /// Feeds `tokens` after the cached ones and returns the logits of the next token. On an
    /// error the cache is as it was before the call.
    pub fn forward(&mut self, tokens: &[u32]) -> anyhow::Result<Vec<f32>> {
        let before = self.cached.len();
        let result = self.feed(tokens);
        if result.is_err() {
            self.truncate(before);
        }
        result
    }

    fn feed(&mut self, tokens: &[u32]) -> anyhow::Result<Vec<f32>> {
        let d = self.dims;
        let n = tokens.len();
        let pos = self.cached.len();
        if n == 0 {
            bail!("no tokens to feed");
        }
        if pos + n > d.window {
            bail!("{} tokens do not fit the window of {}", pos + n, d.window);
        }
        let mut x = Vec::with_capacity(n * d.hidden);
        for t in tokens {
            self.embeddings.row_into(*t as usize, &mut x)?;
        }
        let half = d.head_dim / 2;
        let angles =
            (&self.cos[pos * half..(pos + n) * half], &self.sin[pos * half..(pos + n) * half]);
        let th = self.threads;
        for layer in &mut self.layers {
            let h = rms_norm(&x, &layer.attn_norm, d.eps);
            let mut q = layer.q.matmul(&h, n, th);
            let mut k = layer.k.matmul(&h, n, th);
            let v = layer.v.matmul(&h, n, th);
            rope(&mut q, angles, d.head_dim);
            rope(&mut k, angles, d.head_dim);
            layer.keys.extend(k.iter().map(|x| Half::from_f32(*x)));
            layer.values.extend(v.iter().map(|x| Half::from_f32(*x)));
            let shape = Shape { heads: d.heads, kv_heads: d.kv_heads, head_dim: d.head_dim };
            let att = attend(&q, &layer.keys, &layer.values, pos, n, shape, th);
            add(&mut x, &layer.o.matmul(&att, n, th));
            let h = rms_norm(&x, &layer.ffn_norm, d.eps);
            let gate = layer.gate.matmul(&h, n, th);
            let up = layer.up.matmul(&h, n, th);
            let act: Vec<f32> =
                gate.iter().zip(&up).map(|(g, u)| g / (1.0 + (-g).exp()) * u).collect();
            add(&mut x, &layer.down.matmul(&act, n, th));
        }
        self.cached.extend_from_slice(tokens);
        let last = rms_norm(&x[(n - 1) * d.hidden..], &self.norm, d.eps);
        Ok(self.output.as_ref().unwrap_or(&self.embeddings).matmul(&last, 1, th))
    }
}

fn add(x: &mut [f32], y: &[f32]) {
    for (a, b) in x.iter_mut().zip(y) {
        *a += b;
    }
}

/// Each row of `x` (rows as long as `w`) scaled to unit root mean square, times `w`.
fn rms_norm(x: &[f32], w: &[f32], eps: f32) -> Vec<f32> {
    let mut out = Vec::with_capacity(x.len());
    for row in x.chunks_exact(w.len()) {
        let mean = row.iter().map(|v| v * v).sum::<f32>() / w.len() as f32;
        let scale = 1.0 / (mean + eps).sqrt();
        out.extend(row.iter().zip(w).map(|(v, w)| v * scale * w));
    }
    out
}

/// The rotary embedding of llama's GGUF files (pairs of neighbouring values rotated), applied in
/// place to rows of heads; row `t` is at the position of `angles`' row `t`.
fn rope(x: &mut [f32], (cos, sin): (&[f32], &[f32]), head_dim: usize) {
    let half = head_dim / 2;
    let row_len = x.len() / (cos.len() / half).max(1);
    for (t, row) in x.chunks_exact_mut(row_len).enumerate() {
        let (c, s) = (&cos[t * half..(t + 1) * half], &sin[t * half..(t + 1) * half]);
        for head in row.chunks_exact_mut(head_dim) {
            for (i, pair) in head.chunks_exact_mut(2).enumerate() {
                let (a, b) = (pair[0], pair[1]);
                pair[0] = a * c[i] - b * s[i];
                pair[1] = a * s[i] + b * c[i];
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rope_rotates_neighbouring_pairs_by_the_position_angle() {
        let head_dim = 4;
        // One row at one position: angles 0.5 (pair 0) and 0.25 (pair 1).
        let (cos, sin) = ([0.5f32.cos(), 0.25f32.cos()], [0.5f32.sin(), 0.25f32.sin()]);
        let mut x = vec![1.0, 0.0, 0.0, 2.0];
        rope(&mut x, (&cos, &sin), head_dim);
        let want = [0.5f32.cos(), 0.5f32.sin(), -2.0 * 0.25f32.sin(), 2.0 * 0.25f32.cos()];
        for (g, w) in x.iter().zip(want) {
            assert!((g - w).abs() < 1e-6, "{x:?}");
        }
    }

    #[test]
    fn rms_norm_scales_each_row_to_unit_root_mean_square() {
        let out = rms_norm(&[3.0, 4.0, 0.0, 2.0], &[1.0, 2.0], 0.0);
        let r = (12.5f32).sqrt();
        assert_eq!(out, vec![3.0 / r, 8.0 / r, 0.0, 2.0 * 2.0 / 2f32.sqrt()]);
    }
}
