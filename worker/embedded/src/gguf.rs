//! The GGUF file: its weights (re-quantised to Q8_0 once, the result cached beside the file),
//! its context length, and the tokenizer rebuilt from its own metadata.

use crate::chat::ChatTemplate;
use crate::llama::Llama;
use anyhow::{Context as _, bail};
use candle_core::Device;
use candle_core::quantized::gguf_file::{self, Content, Value};
use candle_core::quantized::{GgmlDType, QTensor};
use serde_json::json;
use std::collections::HashMap;
use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};

/// A model read from its file, ready for the decoding thread.
pub(crate) struct Loaded {
    pub(crate) model: Llama,
    pub(crate) tokenizer: tokenizers::Tokenizer,
    pub(crate) template: ChatTemplate,
    pub(crate) context_length: u64,
    pub(crate) eos: Vec<u32>,
}

/// Where the Q8_0 copy of `path` is kept: beside it, `<stem>.q8_0.gguf`.
pub fn q8_cache_path(path: &Path) -> PathBuf {
    let stem =
        path.file_stem().map_or_else(|| "model".into(), |s| s.to_string_lossy().into_owned());
    path.with_file_name(format!("{stem}.q8_0.gguf"))
}

fn read_content(path: &Path) -> anyhow::Result<(Content, BufReader<File>)> {
    let file = File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut reader = BufReader::new(file);
    let content = Content::read(&mut reader)
        .map_err(|e| anyhow::anyhow!("{e}"))
        .with_context(|| format!("reading {} as GGUF", path.display()))?;
    Ok((content, reader))
}

/// Whether a tensor of `dtype` is worth converting once on disk: block-quantised formats the
/// model has no kernel of its own for (they would be converted to Q8_0 at every load). Q8_0
/// and Q4_1 (`matrix`'s kernels) and float tensors stay as they are.
fn slow(dtype: GgmlDType) -> bool {
    !matches!(
        dtype,
        GgmlDType::Q8_0 | GgmlDType::Q4_1 | GgmlDType::F32 | GgmlDType::F16 | GgmlDType::BF16
    )
}

/// Reads `path`; with `requantize`, its Q8_0 copy (made now when missing). The context is at
/// most `window` tokens (and the file's own).
pub(crate) fn load(path: &Path, requantize: bool, window: Option<u64>) -> anyhow::Result<Loaded> {
    let (content, reader) = read_content(path)?;
    let (content, mut reader) =
        if requantize && content.tensor_infos.values().any(|t| slow(t.ggml_dtype)) {
            let cached = q8_cache_path(path);
            if !cached.exists() {
                convert(path, content, reader, &cached)?;
            }
            read_content(&cached)?
        } else {
            (content, reader)
        };
    let md = &content.metadata;
    let arch = md.get("general.architecture").and_then(|v| v.to_string().ok()).cloned();
    if arch.as_deref() != Some("llama") {
        bail!(
            "architecture {:?} is not supported (the embedded model runs llama-architecture GGUF files: SmolLM2, Llama, TinyLlama, ...)",
            arch.unwrap_or_default()
        );
    }
    let context_length =
        md.get("llama.context_length").and_then(|v| v.to_u32().ok()).map_or(2048, u64::from);
    let (tokenizer, eos) = tokenizer(md)?;
    let template = ChatTemplate::of(
        md.get("tokenizer.chat_template").and_then(|v| v.to_string().ok()).map(String::as_str),
        &tokenizer,
    )?;
    let window = window.unwrap_or(context_length).min(context_length);
    let model = Llama::load(&content, &mut reader, usize::try_from(window).unwrap_or(usize::MAX))
        .context("loading the weights")?;
    let context_length = model.window() as u64;
    Ok(Loaded { model, tokenizer, template, context_length, eos })
}

/// Writes the Q8_0 copy of `path` to `out` (through a temporary file renamed into place, so a
/// crash never leaves half a model behind).
fn convert(
    path: &Path,
    content: Content,
    mut reader: BufReader<File>,
    out: &Path,
) -> anyhow::Result<()> {
    let started = std::time::Instant::now();
    tracing::info!(from = %path.display(), to = %out.display(), "re-quantising the model to Q8_0 (once)");
    let mut names: Vec<&String> = content.tensor_infos.keys().collect();
    names.sort();
    let mut tensors: Vec<(String, QTensor)> = Vec::with_capacity(names.len());
    for name in names {
        let qt = content
            .tensor(&mut reader, name, &Device::Cpu)
            .map_err(|e| anyhow::anyhow!("tensor {name}: {e}"))?;
        let dims = qt.shape().dims().to_vec();
        let convertible =
            slow(qt.dtype()) && dims.last().is_some_and(|d| d % GgmlDType::Q8_0.block_size() == 0);
        let qt = if convertible {
            let t = qt.dequantize(&Device::Cpu).map_err(|e| anyhow::anyhow!("{e}"))?;
            QTensor::quantize(&t, GgmlDType::Q8_0).map_err(|e| anyhow::anyhow!("{e}"))?
        } else {
            qt
        };
        tensors.push((name.clone(), qt));
    }
    let mut metadata: Vec<(&String, &Value)> = content.metadata.iter().collect();
    metadata.sort_by(|a, b| a.0.cmp(b.0));
    let tmp = out.with_extension(format!("tmp{}", std::process::id()));
    let written = (|| -> anyhow::Result<()> {
        let mut w = std::io::BufWriter::new(
            File::create(&tmp).with_context(|| format!("creating {}", tmp.display()))?,
        );
        let md: Vec<(&str, &Value)> = metadata.iter().map(|(k, v)| (k.as_str(), *v)).collect();
        let ts: Vec<(&str, &QTensor)> = tensors.iter().map(|(k, t)| (k.as_str(), t)).collect();
        gguf_file::write(&mut w, &md, &ts).map_err(|e| anyhow::anyhow!("{e}"))?;
        std::io::Write::flush(&mut w)?;
        std::fs::rename(&tmp, out).with_context(|| format!("renaming to {}", out.display()))?;
        Ok(())
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written?;
    tracing::info!(to = %out.display(), ms = started.elapsed().as_millis() as u64, "model re-quantised");
    Ok(())
}

/// A metadata array of strings.
fn strings<'a>(md: &'a HashMap<String, Value>, key: &str) -> anyhow::Result<Vec<&'a str>> {
    let v = md.get(key).with_context(|| format!("the file has no {key}"))?;
    let items = v.to_vec().map_err(|e| anyhow::anyhow!("{key}: {e}"))?;
    items
        .iter()
        .map(|s| s.to_string().map(String::as_str).map_err(|e| anyhow::anyhow!("{key}: {e}")))
        .collect()
}

/// The tokenizer the model was trained with, rebuilt from `tokenizer.ggml.*`: its vocabulary,
/// merges, token types (control tokens are special, so `<|im_start|>` is one token) and the
/// pre-tokenizer of its family (`tokenizer.ggml.pre`: SmolLM splits digits one per token).
/// Returns the tokenizer and the end-of-sequence tokens.
pub(crate) fn tokenizer(
    md: &HashMap<String, Value>,
) -> anyhow::Result<(tokenizers::Tokenizer, Vec<u32>)> {
    let model = md.get("tokenizer.ggml.model").and_then(|v| v.to_string().ok());
    if model.map(String::as_str) != Some("gpt2") {
        bail!("tokenizer {model:?} is not supported (byte-level BPE, \"gpt2\", is)");
    }
    let tokens = strings(md, "tokenizer.ggml.tokens")?;
    let merges = strings(md, "tokenizer.ggml.merges")?;
    let types: Vec<i32> = match md.get("tokenizer.ggml.token_type").map(|v| v.to_vec()) {
        Some(Ok(v)) => v.iter().map(|t| t.to_i32().unwrap_or(1)).collect(),
        _ => vec![1; tokens.len()],
    };
    let vocab: serde_json::Map<String, serde_json::Value> =
        tokens.iter().enumerate().map(|(i, t)| (t.to_string(), json!(i))).collect();
    // Control (3) and user-defined (4) tokens are matched whole in the text, before BPE.
    let added: Vec<serde_json::Value> = tokens
        .iter()
        .zip(&types)
        .enumerate()
        .filter(|(_, (_, ty))| matches!(**ty, 3 | 4))
        .map(|(i, (t, ty))| {
            json!({"id": i, "content": t, "single_word": false, "lstrip": false, "rstrip": false,
                   "normalized": false, "special": *ty == 3})
        })
        .collect();
    let byte_level = json!({"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": true});
    let pre = md.get("tokenizer.ggml.pre").and_then(|v| v.to_string().ok()).map(String::as_str);
    let pre_tokenizer = match pre {
        Some("smollm") => json!({"type": "Sequence", "pretokenizers": [
            {"type": "Digits", "individual_digits": true}, byte_level]}),
        Some("llama-bpe") | Some("llama3") => json!({"type": "Sequence", "pretokenizers": [
            {"type": "Split", "pattern": {"Regex": LLAMA3_SPLIT}, "behavior": "Isolated", "invert": false},
            {"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": false}]}),
        _ => byte_level.clone(),
    };
    let spec = json!({
        "version": "1.0",
        "truncation": null,
        "padding": null,
        "added_tokens": added,
        "normalizer": null,
        "pre_tokenizer": pre_tokenizer,
        "post_processor": null,
        "decoder": {"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": true, "use_regex": true},
        "model": {"type": "BPE", "dropout": null, "unk_token": null, "continuing_subword_prefix": null,
                  "end_of_word_suffix": null, "fuse_unk": false, "byte_fallback": false,
                  "ignore_merges": false, "vocab": vocab, "merges": merges},
    });
    let tokenizer = tokenizers::Tokenizer::from_bytes(spec.to_string().as_bytes())
        .map_err(|e| anyhow::anyhow!("building the tokenizer from the file's vocabulary: {e}"))?;
    let id = |key: &str| md.get(key).and_then(|v| v.to_u32().ok());
    let mut eos: Vec<u32> = id("tokenizer.ggml.eos_token_id").into_iter().collect();
    // Chat models end a turn with their end-of-turn token: both stop an answer.
    for t in ["<|im_end|>", "<|eot_id|>", "<|end_of_text|>", "<|endoftext|>"] {
        if let Some(i) = tokens.iter().position(|x| *x == t)
            && !eos.contains(&(i as u32))
        {
            eos.push(i as u32);
        }
    }
    if eos.is_empty() {
        bail!("the file names no end-of-sequence token (tokenizer.ggml.eos_token_id)");
    }
    Ok((tokenizer, eos))
}

/// Llama 3's pre-tokenizer split.
const LLAMA3_SPLIT: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

/// The grammar's view of the tokenizer: every token's bytes (byte-level BPE strings mapped
/// back to bytes; control tokens marked special), prompts tokenized by the tokenizer itself.
struct GgufTokEnv {
    trie: toktrie::TokTrie,
    tokenizer: tokenizers::Tokenizer,
}

impl toktrie::TokenizerEnv for GgufTokEnv {
    fn tok_trie(&self) -> &toktrie::TokTrie {
        &self.trie
    }

    fn tokenize_bytes(&self, s: &[u8]) -> Vec<toktrie::TokenId> {
        let text = String::from_utf8_lossy(s);
        self.tokenizer
            .encode(text.as_ref(), false)
            .map(|e| e.get_ids().to_vec())
            .unwrap_or_else(|_| self.trie.greedy_tokenize(s))
    }
}

/// GPT-2's byte-level alphabet, character to byte: printable bytes stand for themselves, the
/// others for the characters from U+0100 on, in order.
fn byte_level_chars() -> HashMap<char, u8> {
    let mut map = HashMap::new();
    let mut next = 0x100u32;
    for b in 0..=255u8 {
        let printable = matches!(b, 33..=126 | 161..=172 | 174..=255);
        let c = if printable {
            char::from(b)
        } else {
            next += 1;
            char::from_u32(next - 1).unwrap_or(char::REPLACEMENT_CHARACTER)
        };
        map.insert(c, b);
    }
    map
}

/// The token trie llguidance masks with, for `tokenizer` ending answers with `eos`.
pub(crate) fn tok_env(
    tokenizer: &tokenizers::Tokenizer,
    eos: &[u32],
) -> anyhow::Result<toktrie::TokEnv> {
    let chars = byte_level_chars();
    let size = tokenizer.get_vocab_size(true);
    let added = tokenizer.get_added_tokens_decoder();
    let mut words: Vec<Vec<u8>> = Vec::with_capacity(size);
    for id in 0..size as u32 {
        let name = tokenizer.id_to_token(id).unwrap_or_default();
        let special = added.get(&id).is_some_and(|t| t.special);
        let bytes: Option<Vec<u8>> =
            if special { None } else { name.chars().map(|c| chars.get(&c).copied()).collect() };
        words.push(match bytes {
            Some(b) => b,
            // Control tokens (and any that are not byte-level) are special: never text.
            None => {
                let mut b = vec![toktrie::TokTrie::SPECIAL_TOKEN_MARKER];
                b.extend(name.as_bytes());
                b
            }
        });
    }
    let first = *eos.first().context("no end-of-sequence token")?;
    let info = toktrie::TokRxInfo::new(size as u32, first);
    let trie = toktrie::TokTrie::from(&info, &words).with_eos_tokens(eos);
    Ok(std::sync::Arc::new(GgufTokEnv { trie, tokenizer: tokenizer.clone() }))
}
