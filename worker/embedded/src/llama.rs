//! The model's forward pass, our own rather than candle-transformers' `quantized_llama`, for
//! three reasons measured on SmolLM2-135M (BENCHMARKS.md, issue 25):
//! - keys and values are appended to a cache that grows with the context; candle's copies the
//!   whole cache for every token, then copies it three times over for grouped-query attention;
//! - the token embeddings stay quantised (candle keeps an f32 copy: 113 MiB for SmolLM2);
//! - a request reuses the keys and values of the prefix it shares with the one before (the
//!   system prompt and the chat template), as llama.cpp's server does.
//!
//! The weight products are [`QMatrix`]'s; candle only reads the file. The norms, the rotary
//! embedding and the attention are plain loops over `f32` slices.

use crate::matrix::QMatrix;
use anyhow::{Context as _, anyhow, bail};
use candle_core::Device;
use candle_core::quantized::QTensor;
use candle_core::quantized::gguf_file::Content;
use std::io::{Read, Seek};

/// The longest context the cache is allowed to hold, whatever the file says: at 4,096 tokens
/// SmolLM2's cache takes 180 MiB of `f32`.
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
    keys: Vec<f32>,
    values: Vec<f32>,
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
            layer.keys.extend_from_slice(&k);
            layer.values.extend_from_slice(&v);
            let att = attend(&q, &layer.keys, &layer.values, pos, n, d, th);
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

/// Causal attention of `n` query rows (at positions `pos..pos + n`) over the cached keys and
/// values (which already hold them), grouped-query: query head `h` reads kv head
/// `h / (heads / kv_heads)`. The two products of each head (queries by keys, weights by
/// values) are matrix products read straight from the cache's layout by `gemm` (the crate
/// candle's own matmul uses), so a long prompt's attention runs at matrix speed, not one dot
/// product at a time.
fn attend(
    q: &[f32],
    keys: &[f32],
    values: &[f32],
    pos: usize,
    n: usize,
    d: Dims,
    threads: usize,
) -> Vec<f32> {
    let hd = d.head_dim;
    let width = d.kv_width();
    let group = d.heads / d.kv_heads;
    let len = pos + n;
    assert!(
        q.len() >= n * d.heads * hd && keys.len() >= len * width && values.len() >= len * width
    );
    let scale = 1.0 / (hd as f32).sqrt();
    let parallelism = if threads > 1 && n > 1 {
        gemm::Parallelism::Rayon(threads)
    } else {
        gemm::Parallelism::None
    };
    let mut out = vec![0f32; n * d.heads * hd];
    // One product per head over the `n` rows; when decoding (one row), one per kv head over
    // the rows of its query heads (`group` adjacent rows of q), so each key is read once.
    let (units, rows, row_stride) =
        if n == 1 { (d.kv_heads, group, hd) } else { (d.heads, n, d.heads * hd) };
    // `[row][key]`.
    let mut scores = vec![0f32; rows * len];
    for u in 0..units {
        let (kv, first_head) = if n == 1 { (u * hd, u * group) } else { ((u / group) * hd, u) };
        // SAFETY: the strides below stay inside the slices (checked above). Row `r` of this
        // product is query head `first_head + r` when decoding, else row `r` of head
        // `first_head`; its values start at q[first_head * hd + r * row_stride], and so do its
        // outputs in `out`. Key `j`, value `i` of the kv head is keys[j * width + kv + i] (and
        // so for values); `scores` holds rows x len.
        unsafe {
            // scores = scale * Q (rows x hd) . K^T (hd x len)
            gemm::gemm(
                rows,
                len,
                hd,
                scores.as_mut_ptr(),
                1,
                len as isize,
                false,
                q.as_ptr().add(first_head * hd),
                1,
                row_stride as isize,
                keys.as_ptr().add(kv),
                width as isize,
                1,
                0.0,
                scale,
                false,
                false,
                false,
                parallelism,
            );
        }
        for (r, row) in scores.chunks_exact_mut(len).enumerate() {
            // A row sees the keys up to its own position: pos + r of a prompt's rows, all of
            // them when decoding.
            let seen = if n == 1 { len } else { pos + r + 1 };
            let (seen, future) = row.split_at_mut(seen);
            future.fill(0.0);
            let max = seen.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            let mut sum = 0.0;
            for s in seen.iter_mut() {
                *s = (*s - max).exp();
                sum += *s;
            }
            let inv = 1.0 / sum;
            for s in seen.iter_mut() {
                *s *= inv;
            }
        }
        // SAFETY: as above.
        unsafe {
            // out (rows x hd) = weights (rows x len) . V (len x hd)
            gemm::gemm(
                rows,
                hd,
                len,
                out.as_mut_ptr().add(first_head * hd),
                1,
                row_stride as isize,
                false,
                scores.as_ptr(),
                1,
                len as isize,
                values.as_ptr().add(kv),
                1,
                width as isize,
                0.0,
                1.0,
                false,
                false,
                false,
                parallelism,
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dims(heads: usize, kv_heads: usize, head_dim: usize) -> Dims {
        Dims { hidden: heads * head_dim, heads, kv_heads, head_dim, eps: 1e-5, window: 64 }
    }

    /// Attention written the plain way, each kv head copied to its query heads.
    fn reference(
        q: &[f32],
        keys: &[f32],
        values: &[f32],
        pos: usize,
        n: usize,
        d: Dims,
    ) -> Vec<f32> {
        let hd = d.head_dim;
        let mut out = Vec::new();
        for t in 0..n {
            for h in 0..d.heads {
                let g = h * d.kv_heads / d.heads;
                let qh = &q[(t * d.heads + h) * hd..][..hd];
                let k = |j: usize| &keys[(j * d.kv_heads + g) * hd..][..hd];
                let v = |j: usize| &values[(j * d.kv_heads + g) * hd..][..hd];
                let scores: Vec<f64> = (0..=pos + t)
                    .map(|j| {
                        qh.iter().zip(k(j)).map(|(a, b)| f64::from(a * b)).sum::<f64>()
                            / (hd as f64).sqrt()
                    })
                    .collect();
                let max = scores.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                let e: Vec<f64> = scores.iter().map(|s| (s - max).exp()).collect();
                let total: f64 = e.iter().sum();
                for i in 0..hd {
                    out.push(
                        e.iter()
                            .enumerate()
                            .map(|(j, w)| w / total * f64::from(v(j)[i]))
                            .sum::<f64>() as f32,
                    );
                }
            }
        }
        out
    }

    fn values(n: usize, seed: u32) -> Vec<f32> {
        (0..n)
            .map(|i| (((i as u32).wrapping_mul(2_654_435_761) ^ seed) % 1000) as f32 / 500.0 - 1.0)
            .collect()
    }

    #[test]
    fn grouped_attention_matches_the_plain_one_with_and_without_a_cached_prefix() {
        // Small heads, and SmolLM2's (nine heads on three kv heads of 64) over a longer cache.
        for (d, pos, n) in
            [(dims(6, 2, 20), 5, 4), (dims(9, 3, 64), 70, 50), (dims(9, 3, 64), 0, 50)]
        {
            let total = pos + n;
            let keys = values(total * d.kv_width(), 1);
            let vals = values(total * d.kv_width(), 2);
            let q = values(n * d.heads * d.head_dim, 3);
            let want = reference(&q, &keys, &vals, pos, n, d);
            for threads in [1, 2] {
                let got = attend(&q, &keys, &vals, pos, n, d, threads);
                assert_eq!(got.len(), want.len());
                for (g, w) in got.iter().zip(&want) {
                    assert!((g - w).abs() < 1e-4, "{threads} threads: {g} against {w}");
                }
            }
            // Each query row alone, fed after the rows before it were cached, gives its row.
            let row = d.heads * d.head_dim;
            for t in 0..n {
                let one = attend(&q[t * row..(t + 1) * row], &keys, &vals, pos + t, 1, d, 1);
                for (g, w) in one.iter().zip(&want[t * row..(t + 1) * row]) {
                    assert!((g - w).abs() < 1e-4, "row {t} alone: {g} against {w}");
                }
            }
        }
    }

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
