//! The server-family order: which family a provider or its `/v1/models` answer reveals, the
//! dialects each family tries in order, and the next dialect after a refusal.

use super::{Dialect, Refusal, Refused, SchemaUse};
use serde_json::Value;

/// Families of servers, each with its own order of dialects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    /// OpenAI's own API (`api.openai.com`).
    Openai,
    /// Anthropic's Messages API.
    Anthropic,
    /// Ollama through its OpenAI-compatible `/v1`.
    Ollama,
    /// llama.cpp's `llama-server` or llama-cpp-python, not told apart.
    LlamaCpp,
    /// llama-cpp-python, known (its `/v1/models` says `owned_by: "me"`).
    LlamaCppPython,
    /// vLLM.
    Vllm,
    /// A server known to take only `json_object` (DeepSeek).
    JsonObjectOnly,
    /// Any other OpenAI-compatible server.
    Generic,
}

impl Family {
    /// The family of a built-in provider by its name and base URL: `openai` only when the URL
    /// is OpenAI's own (the README points `OPENAI_BASE_URL` at local servers), `ollama`,
    /// `llamacpp`, `vllm`, `anthropic`, `deepseek`; any other name is [`Family::Generic`].
    pub fn of_provider(provider: &str, base_url: &str) -> Family {
        let host = base_url
            .split("://")
            .nth(1)
            .unwrap_or(base_url)
            .split(['/', ':'])
            .next()
            .unwrap_or("")
            .to_ascii_lowercase();
        match provider {
            "openai" if host == "api.openai.com" => Family::Openai,
            "anthropic" => Family::Anthropic,
            "ollama" => Family::Ollama,
            "llamacpp" => Family::LlamaCpp,
            "vllm" => Family::Vllm,
            "deepseek" => Family::JsonObjectOnly,
            _ => Family::Generic,
        }
    }

    /// The family a server's `GET /v1/models` answer reveals, when it does: `owned_by` is
    /// `vllm` for vLLM, `llamacpp` for llama-server and `me` for llama-cpp-python.
    pub fn from_models(models: &Value) -> Option<Family> {
        let owners: Vec<&str> =
            models["data"].as_array()?.iter().filter_map(|m| m["owned_by"].as_str()).collect();
        let all = |o: &str| !owners.is_empty() && owners.iter().all(|x| *x == o);
        if all("vllm") {
            Some(Family::Vllm)
        } else if all("llamacpp") {
            Some(Family::LlamaCpp)
        } else if all("me") {
            Some(Family::LlamaCppPython)
        } else {
            None
        }
    }

    /// The dialects tried, in order; every order ends with [`Dialect::Text`].
    ///
    /// - OpenAI: strict first (the only mode OpenAI enforces), then the schema non-strict.
    /// - llama.cpp: `json_object` + `schema` first: both llama-server and llama-cpp-python
    ///   enforce it, where `json_schema` costs llama-cpp-python users a refused request.
    /// - vLLM: `response_format` `json_schema` works on every version since 0.6; `guided_json`
    ///   only helps a server older than that (0.12 and later ignore it).
    /// - Generic: the standard `json_schema` first (llama-server, vLLM, Ollama, LM Studio), then
    ///   llama-cpp-python's form, which its 500 refusal leads to.
    pub fn order(self) -> &'static [Dialect] {
        use Dialect::*;
        match self {
            Family::Openai => &[OpenaiStrict, JsonSchema, JsonObject, Text],
            Family::Anthropic => &[AnthropicTool, Text],
            Family::Ollama => &[JsonSchema, JsonObject, Text],
            Family::LlamaCpp => &[JsonObjectSchema, JsonSchema, JsonObject, Text],
            Family::LlamaCppPython => &[JsonObjectSchema, JsonObject, Text],
            Family::Vllm => &[JsonSchema, GuidedJson, JsonObject, Text],
            Family::JsonObjectOnly => &[JsonObject, Text],
            Family::Generic => &[JsonSchema, JsonObjectSchema, JsonObject, Text],
        }
    }
}

/// The dialects to try for `family`, starting from `configured` when the provider's config
/// names one: the configured dialect, then those of the family's order after it (or, when the
/// order does not hold it, those sending less of the schema), ending with [`Dialect::Text`].
pub fn ladder(family: Family, configured: Option<Dialect>) -> Vec<Dialect> {
    let order = family.order();
    let Some(first) = configured else { return order.to_vec() };
    let rest: Vec<Dialect> = match order.iter().position(|d| *d == first) {
        Some(i) => order[i + 1..].to_vec(),
        None => order.iter().copied().filter(|d| d.schema_use() < first.schema_use()).collect(),
    };
    let mut out = vec![first];
    out.extend(rest.into_iter().filter(|d| *d != first));
    if out.last() != Some(&Dialect::Text) {
        out.push(Dialect::Text);
    }
    out
}

/// The dialect to try after `current` was refused, from `ladder`: the next one, skipping those
/// the same refusal would meet again (the same kind of format after [`Refused::Kind`]; the
/// same use of the schema after [`Refused::Schema`]). `None` only once [`Dialect::Text`] itself
/// is refused, or when `current` is not in `ladder`.
pub fn step_down(ladder: &[Dialect], current: Dialect, refusal: &Refusal) -> Option<Dialect> {
    let i = ladder.iter().position(|d| *d == current)?;
    ladder[i + 1..].iter().copied().find(|d| match refusal.refused {
        Refused::Schema if current.schema_use() > SchemaUse::None => {
            d.schema_use() < current.schema_use()
        }
        // A refusal of a schema that was not sent is taken as a refusal of the kind.
        _ => d.kind_key() != current.kind_key(),
    })
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::capture;
    use super::*;
    use serde_json::json;

    #[test]
    fn every_order_ends_in_text_so_no_refusal_goes_straight_to_failure() {
        let families = [
            Family::Openai,
            Family::Anthropic,
            Family::Ollama,
            Family::LlamaCpp,
            Family::LlamaCppPython,
            Family::Vllm,
            Family::JsonObjectOnly,
            Family::Generic,
        ];
        for family in families {
            let order = family.order();
            assert_eq!(order.last(), Some(&Dialect::Text), "{family:?}");
            for refused in [Refused::Kind, Refused::Schema] {
                let r = Refusal { field: "response_format".into(), refused };
                for d in &order[..order.len() - 1] {
                    assert!(step_down(order, *d, &r).is_some(), "{family:?} {d} {refused:?}");
                }
                assert_eq!(step_down(order, Dialect::Text, &r), None);
            }
        }
    }

    #[test]
    fn families_come_from_the_provider_and_its_url() {
        assert_eq!(Family::of_provider("openai", "https://api.openai.com/v1"), Family::Openai);
        assert_eq!(Family::of_provider("openai", "http://127.0.0.1:8000/v1"), Family::Generic);
        assert_eq!(Family::of_provider("ollama", "http://127.0.0.1:11434/v1"), Family::Ollama);
        assert_eq!(Family::of_provider("llamacpp", "http://127.0.0.1:8080/v1"), Family::LlamaCpp);
        assert_eq!(Family::of_provider("vllm", "http://127.0.0.1:8000/v1"), Family::Vllm);
        assert_eq!(
            Family::of_provider("anthropic", "https://api.anthropic.com/v1"),
            Family::Anthropic
        );
        assert_eq!(
            Family::of_provider("deepseek", "https://api.deepseek.com/v1"),
            Family::JsonObjectOnly
        );
        assert_eq!(Family::of_provider("mine", "http://10.0.0.2/v1"), Family::Generic);
    }

    #[test]
    fn families_come_from_v1_models_owned_by() {
        let c = capture("models");
        let models: Value = serde_json::from_str(&c.body).unwrap();
        assert_eq!(Family::from_models(&models), Some(Family::LlamaCppPython));
        let vllm = json!({"object": "list", "data": [{"id": "q", "owned_by": "vllm", "max_model_len": 8192}]});
        assert_eq!(Family::from_models(&vllm), Some(Family::Vllm));
        let server = json!({"object": "list", "data": [{"id": "q", "owned_by": "llamacpp"}]});
        assert_eq!(Family::from_models(&server), Some(Family::LlamaCpp));
        assert_eq!(
            Family::from_models(&json!({"data": [{"id": "q", "owned_by": "library"}]})),
            None
        );
        assert_eq!(Family::from_models(&json!({"data": []})), None);
    }

    #[test]
    fn a_configured_dialect_starts_the_ladder() {
        assert_eq!(ladder(Family::Generic, None), Family::Generic.order().to_vec());
        assert_eq!(
            ladder(Family::Openai, Some(Dialect::JsonSchema)),
            vec![Dialect::JsonSchema, Dialect::JsonObject, Dialect::Text]
        );
        // Not in the family's order: followed by the dialects sending less of the schema.
        assert_eq!(
            ladder(Family::Vllm, Some(Dialect::StructuredOutputs)),
            vec![Dialect::StructuredOutputs, Dialect::JsonObject, Dialect::Text]
        );
        assert_eq!(ladder(Family::Generic, Some(Dialect::Text)), vec![Dialect::Text]);
    }

    #[test]
    fn a_kind_refusal_skips_the_dialects_of_the_same_kind() {
        // LM Studio takes json_schema only: refusing json_object refuses json_object + schema too.
        let r = Refusal { field: "response_format.type".into(), refused: Refused::Kind };
        let ladder = [Dialect::JsonObjectSchema, Dialect::JsonObject, Dialect::Text];
        assert_eq!(step_down(&ladder, Dialect::JsonObjectSchema, &r), Some(Dialect::Text));
        assert_eq!(step_down(&ladder, Dialect::GuidedJson, &r), None);
    }

    #[test]
    fn llama_cpp_python_reports_no_window() {
        // No `/props`, and `/v1/models` carries no window: the caller falls back to its default.
        let props = capture("props_missing");
        assert_eq!(props.status, 404);
        let models: Value = serde_json::from_str(&capture("models").body).unwrap();
        let entry = &models["data"][0];
        assert!(entry.get("max_model_len").is_none() && entry.get("n_ctx").is_none(), "{entry}");
    }
}
