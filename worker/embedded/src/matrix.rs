//! Quantised weight matrices and their product with activations, our own. Two formats, runs of
//! 32 values each: Q8_0 (a scale and 32 signed bytes) and Q4_1 (a scale, a minimum and 32
//! four-bit values), the formats SmolLM2's GGUF files ship in; any other is quantised to Q8_0
//! at load. Why not candle's: its Q8_0 dot product converts both block scales from `f16`
//! through a function call per block, and it has no vectorised Q4_1 kernel at all (11.6 tokens/s),
//! so the file had to be widened to Q8_0, half as many bytes again per token. Here scales are
//! `f32` from the load on, activations are quantised once per row, four weight rows share each
//! activation load, and Q4_1 is read as the file has it (BENCHMARKS.md, issue 25).

use anyhow::bail;
use candle_core::Device;
use candle_core::quantized::{GgmlDType, QTensor};

/// Values per block.
const BLOCK: usize = 32;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    /// `scales[b] * q` for signed bytes `q` in -127..=127; 32 bytes a block.
    Q8_0,
    /// `scales[b] * q + mins[b]` for `q` in 0..=15; 16 bytes a block, value `j` in the low
    /// half of byte `j` and value `j + 16` in its high half (ggml's layout).
    Q4_1,
}

impl Format {
    fn block_bytes(self) -> usize {
        match self {
            Format::Q8_0 => 32,
            Format::Q4_1 => 16,
        }
    }
}

/// Weight rows the kernel computes together.
const TILE: usize = 4;

/// A weight matrix of `rows` rows of `cols` values, stored with zero rows after them up to a
/// whole number of tiles.
pub(crate) struct QMatrix {
    rows: usize,
    cols: usize,
    format: Format,
    /// `[row][block]`.
    scales: Vec<f32>,
    /// `[row][block]`, Q4_1 only.
    mins: Vec<f32>,
    /// `[row][block][block_bytes]`.
    quants: Vec<u8>,
}

/// Rows of activations in Q8_0, with each block's sum (scale times the sum of its bytes).
struct QRows {
    cols: usize,
    scales: Vec<f32>,
    sums: Vec<f32>,
    quants: Vec<i8>,
}

impl QRows {
    fn of(x: &[f32], cols: usize) -> QRows {
        let mut rows = QRows {
            cols,
            scales: Vec::with_capacity(x.len() / BLOCK),
            sums: Vec::with_capacity(x.len() / BLOCK),
            quants: Vec::with_capacity(x.len()),
        };
        for run in x.chunks_exact(BLOCK) {
            let (d, start) = (quantize_run(run, &mut rows.quants), rows.quants.len() - BLOCK);
            let total: i32 = rows.quants[start..].iter().map(|q| i32::from(*q)).sum();
            rows.scales.push(d);
            rows.sums.push(d * total as f32);
        }
        rows
    }
}

/// Quantises 32 values to signed bytes in -127..=127, appended; returns the scale.
fn quantize_run(run: &[f32], quants: &mut Vec<i8>) -> f32 {
    let amax = run.iter().fold(0f32, |m, v| m.max(v.abs()));
    let d = amax / 127.0;
    let inv = if d > 0.0 { 1.0 / d } else { 0.0 };
    quants.extend(run.iter().map(|v| (v * inv).round().clamp(-127.0, 127.0) as i8));
    d
}

fn f16_at(b: &[u8], at: usize) -> f32 {
    half::f16::from_le_bytes([b[at], b[at + 1]]).to_f32()
}

impl QMatrix {
    /// The matrix of a two-dimensional tensor: Q8_0 and Q4_1 blocks taken as they are, any
    /// other type dequantised and quantised to Q8_0.
    pub(crate) fn from_qtensor(t: &QTensor) -> anyhow::Result<QMatrix> {
        let (rows, cols) = t.shape().dims2()?;
        if cols % BLOCK != 0 {
            bail!("rows of {cols} values are not runs of {BLOCK}");
        }
        let blocks = rows * cols / BLOCK;
        let format = match t.dtype() {
            GgmlDType::Q4_1 => Format::Q4_1,
            _ => Format::Q8_0,
        };
        let mut m = QMatrix {
            rows,
            cols,
            format,
            scales: Vec::with_capacity(blocks),
            mins: Vec::new(),
            quants: Vec::with_capacity(blocks * format.block_bytes()),
        };
        let file_block = match t.dtype() {
            GgmlDType::Q8_0 => 34,
            GgmlDType::Q4_1 => 20,
            _ => 0,
        };
        if file_block == 0 {
            let values = t.dequantize(&Device::Cpu)?.flatten_all()?.to_vec1::<f32>()?;
            let mut q = Vec::with_capacity(values.len());
            for run in values.chunks_exact(BLOCK) {
                m.scales.push(quantize_run(run, &mut q));
            }
            m.quants = q.into_iter().map(|v| v as u8).collect();
            m.pad();
            return Ok(m);
        }
        let data = t.data()?;
        if data.len() != blocks * file_block {
            bail!("{} bytes for {blocks} blocks of {:?}", data.len(), t.dtype());
        }
        for b in data.chunks_exact(file_block) {
            m.scales.push(f16_at(b, 0));
            match format {
                // -128 would overflow the kernel's sign trick; -127 is as near as it gets.
                Format::Q8_0 => m.quants.extend(b[2..].iter().map(|q| (*q as i8).max(-127) as u8)),
                Format::Q4_1 => {
                    m.mins.push(f16_at(b, 2));
                    m.quants.extend_from_slice(&b[4..]);
                }
            }
        }
        m.pad();
        Ok(m)
    }

    /// Zero rows up to a whole number of tiles, so that the kernel never takes a partial one.
    fn pad(&mut self) {
        let blocks = self.rows.div_ceil(TILE) * TILE * self.cols / BLOCK;
        self.scales.resize(blocks, 0.0);
        if self.format == Format::Q4_1 {
            self.mins.resize(blocks, 0.0);
        }
        self.quants.resize(blocks * self.format.block_bytes(), 0);
    }

    /// Row `r` as floats (an embedding lookup), appended to `out`.
    pub(crate) fn row_into(&self, r: usize, out: &mut Vec<f32>) -> anyhow::Result<()> {
        if r >= self.rows {
            bail!("row {r} of {}", self.rows);
        }
        let kb = self.cols / BLOCK;
        let bytes = self.format.block_bytes();
        for b in r * kb..(r + 1) * kb {
            let (d, q) = (self.scales[b], &self.quants[b * bytes..(b + 1) * bytes]);
            match self.format {
                Format::Q8_0 => out.extend(q.iter().map(|v| d * f32::from(*v as i8))),
                Format::Q4_1 => {
                    let m = self.mins[b];
                    out.extend(q.iter().map(|v| d * f32::from(v & 0x0F) + m));
                    out.extend(q.iter().map(|v| d * f32::from(v >> 4) + m));
                }
            }
        }
        Ok(())
    }

    /// `x` (`m` rows of `cols` values) times this matrix transposed: `m` rows of `rows` values.
    /// Large products are split over `threads` threads by weight rows.
    pub(crate) fn matmul(&self, x: &[f32], m: usize, threads: usize) -> Vec<f32> {
        let xq = QRows::of(x, self.cols);
        let mut out = vec![0f32; m * self.rows];
        // Below about a million products a thread costs more than it saves.
        let threads = if m * self.rows * self.cols < (1 << 20) { 1 } else { threads.max(1) };
        // Weight rows per thread, in whole tiles.
        let per = self.rows.div_ceil(threads).div_ceil(TILE) * TILE;
        if threads == 1 || per >= self.rows {
            self.rows_range(&xq, m, 0, self.rows, &mut out);
            return out;
        }
        // Each thread computes its own columns of every output row, in a buffer of its own.
        let parts: Vec<(usize, Vec<f32>)> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..self.rows)
                .step_by(per)
                .map(|start| {
                    let end = (start + per).min(self.rows);
                    let xq = &xq;
                    s.spawn(move || {
                        let mut part = vec![0f32; m * self.rows];
                        self.rows_range(xq, m, start, end, &mut part);
                        (start, part)
                    })
                })
                .collect();
            handles.into_iter().filter_map(|h| h.join().ok()).collect()
        });
        for (start, part) in parts {
            let end = (start + per).min(self.rows);
            for i in 0..m {
                let row = i * self.rows;
                out[row + start..row + end].copy_from_slice(&part[row + start..row + end]);
            }
        }
        out
    }

    /// Output columns `start..end` of every row.
    fn rows_range(&self, xq: &QRows, m: usize, start: usize, end: usize, out: &mut [f32]) {
        #[cfg(target_arch = "x86_64")]
        if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
            // SAFETY: `rows_avx2` asks for AVX2 and FMA, and the CPU has both (checked above).
            unsafe { self.rows_avx2(xq, m, start, end, out) };
            return;
        }
        for r in start..end {
            for i in 0..m {
                out[i * self.rows + r] = self.dot_any(r, xq, i);
            }
        }
    }

    /// One weight row by one activation row, in plain integer arithmetic.
    fn dot_any(&self, r: usize, xq: &QRows, i: usize) -> f32 {
        let kb = self.cols / BLOCK;
        let bytes = self.format.block_bytes();
        let mut sum = 0f32;
        for b in 0..kb {
            let w = &self.quants[(r * kb + b) * bytes..][..bytes];
            let x = &xq.quants[i * xq.cols + b * BLOCK..][..BLOCK];
            let at = r * kb + b;
            let dx = xq.scales[i * kb + b];
            sum += match self.format {
                Format::Q8_0 => {
                    let dot: i32 =
                        w.iter().zip(x).map(|(a, b)| i32::from(*a as i8) * i32::from(*b)).sum();
                    self.scales[at] * dx * dot as f32
                }
                Format::Q4_1 => {
                    let (lo, hi) = x.split_at(BLOCK / 2);
                    let dot: i32 = w
                        .iter()
                        .zip(lo.iter().zip(hi))
                        .map(|(q, (l, h))| {
                            i32::from(q & 0x0F) * i32::from(*l) + i32::from(q >> 4) * i32::from(*h)
                        })
                        .sum();
                    self.scales[at] * dx * dot as f32 + self.mins[at] * xq.sums[i * kb + b]
                }
            };
        }
        sum
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    fn rows_avx2(&self, xq: &QRows, m: usize, start: usize, end: usize, out: &mut [f32]) {
        match self.format {
            Format::Q8_0 => self.tiles_avx2::<false>(xq, m, start, end, out),
            Format::Q4_1 => self.tiles_avx2::<true>(xq, m, start, end, out),
        }
    }

    /// The kernel of one format (`Q4`: Q4_1, else Q8_0), a tile of weight rows at a time.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    fn tiles_avx2<const Q4: bool>(
        &self,
        xq: &QRows,
        m: usize,
        start: usize,
        end: usize,
        out: &mut [f32],
    ) {
        use std::arch::x86_64::*;
        let kb = self.cols / BLOCK;
        let bytes = self.format.block_bytes();
        let ones = _mm256_set1_epi16(1);
        let low = _mm256_set1_epi8(0x0F);
        // Q4_1: a tile's values widened to a byte each, once for all the activation rows.
        let mut wide = vec![0u8; if Q4 { TILE * self.cols } else { 0 }];
        // Tiles start at multiples of TILE and the rows are padded to whole tiles.
        let end = end.div_ceil(TILE) * TILE;
        let tile_bytes = TILE * kb * bytes;
        for r in (start..end).step_by(TILE) {
            // The next tile's weights are asked for now, while this one is computed: one thread
            // reading a stream waits on memory far more than it computes.
            let next = self.quants.as_ptr().wrapping_add((r + TILE) * kb * bytes);
            for line in (0..tile_bytes).step_by(64) {
                // A prefetch is a hint: it never faults, whatever the address.
                _mm_prefetch::<_MM_HINT_T0>(next.wrapping_add(line).cast());
            }
            if Q4 {
                let packed = &self.quants[r * kb * bytes..(r + TILE) * kb * bytes];
                for (src, dst) in packed.chunks_exact(16).zip(wide.chunks_exact_mut(BLOCK)) {
                    // SAFETY: 16 bytes read from `src`, 32 written to `dst` (their lengths).
                    unsafe {
                        let p = _mm_loadu_si128(src.as_ptr().cast());
                        let v = _mm256_inserti128_si256(
                            _mm256_castsi128_si256(p),
                            _mm_srli_epi16(p, 4),
                            1,
                        );
                        _mm256_storeu_si256(dst.as_mut_ptr().cast(), _mm256_and_si256(v, low));
                    }
                }
            }
            let weights: &[u8] =
                if Q4 { &wide } else { &self.quants[r * self.cols..(r + TILE) * self.cols] };
            let scales = &self.scales[r * kb..(r + TILE) * kb];
            for i in 0..m {
                let x = &xq.quants[i * xq.cols..(i + 1) * xq.cols];
                let xs = &xq.scales[i * kb..(i + 1) * kb];
                let mut acc = [_mm256_setzero_ps(); TILE];
                for b in 0..kb {
                    // SAFETY: `x` holds `kb` blocks of 32 bytes; an unaligned load.
                    let xv = unsafe { _mm256_loadu_si256(x.as_ptr().add(b * BLOCK).cast()) };
                    // Q8_0: |x| as unsigned bytes, and each weight takes x's sign (maddubs
                    // multiplies unsigned bytes by signed ones; |w|, |x| <= 127 cannot saturate).
                    let ax = _mm256_sign_epi8(xv, xv);
                    for (t, acc) in acc.iter_mut().enumerate() {
                        let w = &weights[(t * kb + b) * BLOCK..][..BLOCK];
                        // SAFETY: 32 bytes at `w` (the slice is 32 long).
                        let wv = unsafe { _mm256_loadu_si256(w.as_ptr().cast()) };
                        let p = if Q4 {
                            _mm256_maddubs_epi16(wv, xv)
                        } else {
                            _mm256_maddubs_epi16(ax, _mm256_sign_epi8(wv, xv))
                        };
                        let p = _mm256_cvtepi32_ps(_mm256_madd_epi16(p, ones));
                        let scale = _mm256_set1_ps(scales[t * kb + b] * xs[b]);
                        *acc = _mm256_fmadd_ps(p, scale, *acc);
                    }
                }
                for (t, acc) in acc.iter().enumerate() {
                    if r + t >= self.rows {
                        break;
                    }
                    let mut lanes = [0f32; 8];
                    // SAFETY: eight floats into an array of eight.
                    unsafe { _mm256_storeu_ps(lanes.as_mut_ptr(), *acc) };
                    let mut sum = lanes.iter().sum::<f32>();
                    if Q4 {
                        let mins = &self.mins[(r + t) * kb..(r + t + 1) * kb];
                        let sums = &xq.sums[i * kb..(i + 1) * kb];
                        sum += mins.iter().zip(sums).map(|(a, b)| a * b).sum::<f32>();
                    }
                    out[i * self.rows + r + t] = sum;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Tensor;

    fn values(n: usize, seed: u32) -> Vec<f32> {
        (0..n)
            .map(|i| ((i as u32).wrapping_mul(2_654_435_761) ^ seed) % 2001)
            .map(|v| v as f32 / 1000.0 - 1.0)
            .collect()
    }

    fn check(dtype: GgmlDType, tolerance: f32) {
        // 13 rows: three tiles of four and one of one; 96 columns: three blocks.
        let (rows, cols, m) = (13, 96, 3);
        let w = values(rows * cols, 7);
        let t = Tensor::from_vec(w.clone(), (rows, cols), &Device::Cpu).unwrap();
        let mat = QMatrix::from_qtensor(&QTensor::quantize(&t, dtype).unwrap()).unwrap();
        // Rows of the table, dequantised, are the weights.
        let mut table = Vec::new();
        for r in 0..rows {
            mat.row_into(r, &mut table).unwrap();
        }
        for (g, e) in table.iter().zip(&w) {
            assert!((g - e).abs() < tolerance, "{dtype:?}: {g} against {e}");
        }
        assert!(mat.row_into(rows, &mut table).is_err());
        let x = values(m * cols, 3);
        let exact: Vec<f32> = (0..m)
            .flat_map(|i| {
                let (table, x) = (&table, &x);
                (0..rows).map(move |r| {
                    (0..cols).map(|c| table[r * cols + c] * x[i * cols + c]).sum::<f32>()
                })
            })
            .collect();
        let got = mat.matmul(&x, m, 1);
        for (g, e) in got.iter().zip(&exact) {
            assert!((g - e).abs() < 0.05, "{dtype:?}: {g} against {e}");
        }
        // The vectorised kernel and the plain one agree.
        let xq = QRows::of(&x, cols);
        for i in 0..m {
            for r in 0..rows {
                let plain = mat.dot_any(r, &xq, i);
                assert!((got[i * rows + r] - plain).abs() < 1e-4, "{dtype:?}: {plain}");
            }
        }
        // Any split over threads gives the same products (over a million, so it is taken).
        let m = (1 << 20) / (rows * cols) + 1;
        let x = values(m * cols, 5);
        assert_eq!(mat.matmul(&x, m, 1), mat.matmul(&x, m, 3), "{dtype:?}");
    }

    #[test]
    fn products_match_the_dequantised_weights_in_each_format() {
        check(GgmlDType::Q8_0, 0.01);
        check(GgmlDType::Q4_1, 0.07);
        // Formats without a kernel of their own are held as Q8_0.
        check(GgmlDType::Q4_0, 0.15);
    }
}
