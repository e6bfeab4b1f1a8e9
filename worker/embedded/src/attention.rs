//! Causal attention over a key/value cache held in `f16`, our own and **batch-invariant**: the
//! output of a query row depends on its position and the cache alone, bit for bit, never on how
//! many rows were fed with it. Each row is computed by the same instructions in the same order
//! whether it came in a 256-token prompt chunk or alone while decoding. So a prompt whose prefix
//! is already cached gets exactly the answer it would get from scratch, and the prefix can be
//! reused at any token, as llama.cpp's server reuses it (BENCHMARKS.md, issue 25). A matrix
//! library's product (what this replaced) picks its blocking by the shape, which changes the
//! sums' last bits, and a last bit can change a drawn token.
//!
//! `f16` keys and values (as llama.cpp keeps them) halve the cache's memory and the bytes a
//! decoded token reads at long context, where they weigh as much as the weights.

use half::f16;

/// The cache's number type.
pub(crate) type Half = f16;

/// The shape of the attention: `heads` query heads read `kv_heads` key/value heads of
/// `head_dim` values each (grouped-query: query head `h` reads kv head `h / (heads / kv_heads)`).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Shape {
    pub(crate) heads: usize,
    pub(crate) kv_heads: usize,
    pub(crate) head_dim: usize,
}

impl Shape {
    /// Values of one position's keys (or values).
    fn width(&self) -> usize {
        self.kv_heads * self.head_dim
    }
}

/// Below this many (row, head, key) triples a second thread costs more than it saves.
const THREADED: usize = 1 << 16;

/// Causal attention of the `n` query rows `q` (`[row][head][head_dim]`, at positions
/// `pos..pos + n`) over the cached `keys` and `values` (`[position][kv head][head_dim]`, which
/// already hold the rows' own): row `t` sees positions `0..=pos + t`. Returns `[row][head][head_dim]`.
pub(crate) fn attend(
    q: &[f32],
    keys: &[Half],
    values: &[Half],
    pos: usize,
    n: usize,
    s: Shape,
    threads: usize,
) -> Vec<f32> {
    let hd = s.head_dim;
    let len = pos + n;
    assert!(
        s.heads.is_multiple_of(s.kv_heads)
            && q.len() >= n * s.heads * hd
            && keys.len() >= len * s.width()
            && values.len() >= len * s.width()
    );
    let mut out = vec![0f32; n * s.heads * hd];
    let items = n * s.heads;
    let threads = if n > 1 && items * len >= THREADED { threads.clamp(1, items) } else { 1 };
    // Each (row, head) is computed alone into its own slice of `out`; threads take contiguous
    // runs of them, which changes nothing in any of them.
    let per = items.div_ceil(threads);
    std::thread::scope(|scope| {
        for (first, part) in out.chunks_mut(per * hd).enumerate().map(|(i, p)| (i * per, p)) {
            let mut run = move || {
                let mut scores = Vec::new();
                for (i, o) in part.chunks_exact_mut(hd).enumerate() {
                    let (t, h) = ((first + i) / s.heads, (first + i) % s.heads);
                    let kv = h / (s.heads / s.kv_heads) * hd;
                    let qh = &q[(t * s.heads + h) * hd..][..hd];
                    row(qh, keys, values, pos + t + 1, kv, s, &mut scores, o);
                }
            };
            if threads == 1 {
                run();
            } else {
                scope.spawn(run);
            }
        }
    });
    out
}

/// One query head of one row over the first `seen` positions of kv head offset `kv`, into `out`.
#[allow(clippy::too_many_arguments)]
fn row(
    q: &[f32],
    keys: &[Half],
    values: &[Half],
    seen: usize,
    kv: usize,
    s: Shape,
    scores: &mut Vec<f32>,
    out: &mut [f32],
) {
    let scale = 1.0 / (s.head_dim as f32).sqrt();
    #[cfg(target_arch = "x86_64")]
    if s.head_dim.is_multiple_of(8)
        && std::is_x86_feature_detected!("avx2")
        && std::is_x86_feature_detected!("fma")
        && std::is_x86_feature_detected!("f16c")
    {
        // SAFETY: the CPU has AVX2, FMA and F16C (checked above); the slices' lengths are
        // checked in `attend`.
        unsafe { avx2::row(q, keys, values, seen, kv, s.width(), scale, scores, out) };
        return;
    }
    let hd = s.head_dim;
    let width = s.width();
    scores.clear();
    scores.extend((0..seen).map(|j| {
        let k = &keys[j * width + kv..][..hd];
        q.iter().zip(k).map(|(a, b)| a * b.to_f32()).sum::<f32>() * scale
    }));
    let max = scores.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut sum = 0.0;
    for e in scores.iter_mut() {
        *e = (*e - max).exp();
        sum += *e;
    }
    out.fill(0.0);
    for (j, w) in scores.iter().enumerate() {
        for (o, v) in out.iter_mut().zip(&values[j * width + kv..][..hd]) {
            *o += w * v.to_f32();
        }
    }
    let inv = 1.0 / sum;
    out.iter_mut().for_each(|o| *o *= inv);
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use super::Half;
    use std::arch::x86_64::*;

    /// Eight `f16` at `p` as `f32`.
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn load8(p: *const Half) -> __m256 {
        // SAFETY: the caller's `p` points at eight readable values.
        unsafe { _mm256_cvtph_ps(_mm_loadu_si128(p.cast())) }
    }

    /// `e^x` of eight values at most 0, to within a few units in the last place (Cephes' `expf`
    /// polynomial): the softmax's exponentials were a fifth of a decoded token's time at 2,000
    /// tokens of context when taken one at a time.
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    pub(super) fn exp8(x: __m256) -> __m256 {
        let x = _mm256_max_ps(x, _mm256_set1_ps(-87.0));
        let n = _mm256_round_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(
            _mm256_mul_ps(x, _mm256_set1_ps(std::f32::consts::LOG2_E)),
        );
        let r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693_359_4), x);
        let r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.121_944_4e-4), r);
        let mut p = _mm256_set1_ps(1.987_569_1e-4);
        for c in [1.398_199_9e-3, 8.333_452e-3, 4.166_579_6e-2, 0.166_666_65, 0.5] {
            p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(c));
        }
        let p = _mm256_fmadd_ps(p, _mm256_mul_ps(r, r), _mm256_add_ps(r, _mm256_set1_ps(1.0)));
        let bits = _mm256_slli_epi32::<23>(_mm256_add_epi32(
            _mm256_cvtps_epi32(n),
            _mm256_set1_epi32(127),
        ));
        _mm256_mul_ps(p, _mm256_castsi256_ps(bits))
    }

    /// As `super::row`, eight values at a time. Every key's score is computed by the same
    /// instructions wherever it falls (four keys at a time, the last group padded with key 0),
    /// and the exponentials and sums run over the same groups of eight for a given `seen`.
    #[allow(clippy::too_many_arguments)]
    #[target_feature(enable = "avx2,fma,f16c")]
    pub(super) unsafe fn row(
        q: &[f32],
        keys: &[Half],
        values: &[Half],
        seen: usize,
        kv: usize,
        width: usize,
        scale: f32,
        scores: &mut Vec<f32>,
        out: &mut [f32],
    ) {
        let hd = q.len();
        let groups = seen.div_ceil(8) * 8;
        scores.clear();
        scores.resize(groups, 0.0);
        // SAFETY (this block and the ones below): positions below `seen` hold `width` values
        // each in `keys` and `values` (checked by `attend`), `kv + hd <= width`, `hd` is a
        // multiple of 8, and `scores` holds `groups >= seen` values.
        let scaled: Vec<__m256> = q
            .chunks_exact(8)
            .map(|c| unsafe { _mm256_mul_ps(_mm256_loadu_ps(c.as_ptr()), _mm256_set1_ps(scale)) })
            .collect();
        let base = keys.as_ptr().wrapping_add(kv);
        for j in (0..seen).step_by(4) {
            let key =
                |u: usize| if j + u < seen { base.wrapping_add((j + u) * width) } else { base };
            let k = [key(0), key(1), key(2), key(3)];
            let mut acc = [_mm256_setzero_ps(); 4];
            for (c, qc) in scaled.iter().enumerate() {
                for u in 0..4 {
                    acc[u] = _mm256_fmadd_ps(*qc, unsafe { load8(k[u].add(c * 8)) }, acc[u]);
                }
            }
            // [k0 k1 k0 k1 | k0 k1 k0 k1] pairs, then one sum per key in each half.
            let h = _mm256_hadd_ps(_mm256_hadd_ps(acc[0], acc[1]), _mm256_hadd_ps(acc[2], acc[3]));
            let four = _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps::<1>(h));
            let mut lanes = [0f32; 4];
            unsafe { _mm_storeu_ps(lanes.as_mut_ptr(), four) };
            let take = (seen - j).min(4);
            scores[j..j + take].copy_from_slice(&lanes[..take]);
        }
        let max = scores[..seen].iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let maxv = _mm256_set1_ps(max);
        for chunk in scores.chunks_exact_mut(8) {
            let e = exp8(_mm256_sub_ps(unsafe { _mm256_loadu_ps(chunk.as_ptr()) }, maxv));
            unsafe { _mm256_storeu_ps(chunk.as_mut_ptr(), e) };
        }
        // The padding after `seen` weighs nothing.
        scores[seen..].fill(0.0);
        let mut sumv = _mm256_setzero_ps();
        for chunk in scores.chunks_exact(8) {
            sumv = _mm256_add_ps(sumv, unsafe { _mm256_loadu_ps(chunk.as_ptr()) });
        }
        let mut lanes = [0f32; 8];
        unsafe { _mm256_storeu_ps(lanes.as_mut_ptr(), sumv) };
        let sum = lanes.iter().sum::<f32>();
        let vbase = values.as_ptr().wrapping_add(kv);
        match hd {
            64 => unsafe { weigh::<8>(&scores[..seen], vbase, width, out) },
            128 => unsafe { weigh::<16>(&scores[..seen], vbase, width, out) },
            _ => {
                out.fill(0.0);
                for (j, w) in scores[..seen].iter().enumerate() {
                    for (c, o) in out.chunks_exact_mut(8).enumerate() {
                        let v = unsafe { load8(vbase.add(j * width + c * 8)) };
                        let sum = _mm256_fmadd_ps(_mm256_set1_ps(*w), v, unsafe {
                            _mm256_loadu_ps(o.as_ptr())
                        });
                        unsafe { _mm256_storeu_ps(o.as_mut_ptr(), sum) };
                    }
                }
            }
        }
        let inv = 1.0 / sum;
        out.iter_mut().for_each(|o| *o *= inv);
    }

    /// `out = sum over j of weights[j] * value j`, `C` runs of eight values, the sums in registers.
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn weigh<const C: usize>(
        weights: &[f32],
        base: *const Half,
        width: usize,
        out: &mut [f32],
    ) {
        let mut acc = [_mm256_setzero_ps(); C];
        for (j, w) in weights.iter().enumerate() {
            let w = _mm256_set1_ps(*w);
            let v = base.wrapping_add(j * width);
            for (c, a) in acc.iter_mut().enumerate() {
                // SAFETY: value `j` holds `8 * C` values from `v` (the caller's bounds).
                *a = _mm256_fmadd_ps(w, unsafe { load8(v.add(c * 8)) }, *a);
            }
        }
        for (c, a) in acc.iter().enumerate() {
            // SAFETY: `out` holds `8 * C` values.
            unsafe { _mm256_storeu_ps(out.as_mut_ptr().add(c * 8), *a) };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shape(heads: usize, kv_heads: usize, head_dim: usize) -> Shape {
        Shape { heads, kv_heads, head_dim }
    }

    /// Attention written the plain way in `f64`, each kv head copied to its query heads.
    fn reference(
        q: &[f32],
        keys: &[Half],
        values: &[Half],
        pos: usize,
        n: usize,
        s: Shape,
    ) -> Vec<f32> {
        let hd = s.head_dim;
        let mut out = Vec::new();
        for t in 0..n {
            for h in 0..s.heads {
                let g = h * s.kv_heads / s.heads;
                let qh = &q[(t * s.heads + h) * hd..][..hd];
                let k = |j: usize| &keys[(j * s.kv_heads + g) * hd..][..hd];
                let v = |j: usize| &values[(j * s.kv_heads + g) * hd..][..hd];
                let scores: Vec<f64> = (0..=pos + t)
                    .map(|j| {
                        qh.iter()
                            .zip(k(j))
                            .map(|(a, b)| f64::from(*a) * f64::from(b.to_f32()))
                            .sum::<f64>()
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
                            .map(|(j, w)| w / total * f64::from(v(j)[i].to_f32()))
                            .sum::<f64>() as f32,
                    );
                }
            }
        }
        out
    }

    fn values(n: usize, seed: u32, spread: f32) -> Vec<f32> {
        (0..n)
            .map(|i| {
                let r = ((i as u32).wrapping_mul(2_654_435_761) ^ seed) % 1000;
                (r as f32 / 500.0 - 1.0) * spread
            })
            .collect()
    }

    fn halves(v: &[f32]) -> Vec<Half> {
        v.iter().map(|x| Half::from_f32(*x)).collect()
    }

    #[test]
    fn grouped_attention_matches_the_plain_one_and_a_row_never_depends_on_its_batch() {
        // Small heads (the plain path: 20 is no multiple of 8), SmolLM2's (nine heads on three
        // kv heads of 64) over a longer cache, and heads of 128; sharp scores (spread 3) too.
        for (s, pos, n, spread) in [
            (shape(6, 2, 20), 5, 4, 1.0),
            (shape(9, 3, 64), 70, 50, 1.0),
            (shape(9, 3, 64), 0, 37, 3.0),
            (shape(4, 1, 128), 9, 13, 1.0),
        ] {
            let total = pos + n;
            let keys = halves(&values(total * s.width(), 1, spread));
            let vals = halves(&values(total * s.width(), 2, 1.0));
            let q = values(n * s.heads * s.head_dim, 3, spread);
            let want = reference(&q, &keys, &vals, pos, n, s);
            let batch = attend(&q, &keys, &vals, pos, n, s, 1);
            assert_eq!(batch.len(), want.len());
            for (g, w) in batch.iter().zip(&want) {
                assert!((g - w).abs() < 1e-4, "{s:?}: {g} against {w}");
            }
            // Two threads, each row alone after the rows before it, and the batch cut in two:
            // the same bits.
            assert_eq!(attend(&q, &keys, &vals, pos, n, s, 2), batch, "{s:?}, two threads");
            let row = s.heads * s.head_dim;
            for t in 0..n {
                let one = attend(&q[t * row..(t + 1) * row], &keys, &vals, pos + t, 1, s, 1);
                assert_eq!(one, batch[t * row..(t + 1) * row], "{s:?}: row {t} alone");
            }
            let cut = n / 3;
            let mut parts = attend(&q[..cut * row], &keys, &vals, pos, cut, s, 1);
            parts.extend(attend(&q[cut * row..], &keys, &vals, pos + cut, n - cut, s, 2));
            assert_eq!(parts, batch, "{s:?}: cut after {cut} rows");
        }
    }

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn the_vector_exp_is_within_a_few_units_in_the_last_place() {
        use std::arch::x86_64::*;
        if !(std::is_x86_feature_detected!("avx2")
            && std::is_x86_feature_detected!("fma")
            && std::is_x86_feature_detected!("f16c"))
        {
            return;
        }
        let xs: Vec<f32> = (0..4000).map(|i| -(i as f32) * 0.0217).collect();
        for c in xs.chunks_exact(8) {
            let mut got = [0f32; 8];
            // SAFETY: the CPU has AVX2, FMA and F16C (checked above); eight values each way.
            unsafe { _mm256_storeu_ps(got.as_mut_ptr(), avx2::exp8(_mm256_loadu_ps(c.as_ptr()))) };
            for (x, g) in c.iter().zip(got) {
                let want = x.exp();
                assert!((g - want).abs() <= want * 4e-7 + 1e-37, "exp({x}) = {g}, not {want}");
            }
        }
    }
}
