//! Unit tests of the dialects: each request body, each refusal as each server words it (real
//! captures of llama-cpp-python 0.3.36 under `worker/tests/fixtures/llama_cpp_python/`), and the
//! orders of dialects.

use super::*;
use serde_json::json;

/// A capture of a real server: the request sent, the status and body it answered.
struct Capture {
    request: Value,
    status: u16,
    body: String,
}

fn capture(name: &str) -> Capture {
    let path =
        format!("{}/tests/fixtures/llama_cpp_python/{name}.json", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let v: Value = serde_json::from_str(&text).unwrap();
    Capture {
        request: v["request"].clone(),
        status: v["status"].as_u64().unwrap() as u16,
        body: v["body"].as_str().unwrap().to_string(),
    }
}

fn chat_body() -> Value {
    json!({
        "model": "m",
        "messages": [{"role": "system", "content": "s"}, {"role": "user", "content": "u"}],
        "temperature": 0.7,
        "top_p": 0.9,
        "max_tokens": 400,
        "seed": 3,
    })
}

fn verdict_schema() -> Value {
    json!({
        "type": "object",
        "properties": {
            "verdict": {"type": "string", "enum": ["accept", "revise"]},
            "score": {"type": "integer", "minimum": 1, "maximum": 10},
        },
        "required": ["verdict", "score"],
        "additionalProperties": false,
    })
}

/// `schema` with every `required` list sorted: its order follows the properties' order, which
/// depends on serde_json's `preserve_order` feature.
fn sorted_required(mut schema: Value) -> Value {
    match &mut schema {
        Value::Object(map) => {
            for (k, v) in map.iter_mut() {
                if let (true, Value::Array(a)) = (k == "required", &mut *v) {
                    a.sort_by(|x, y| x.as_str().cmp(&y.as_str()));
                } else {
                    *v = sorted_required(v.take());
                }
            }
        }
        Value::Array(items) => {
            for v in items.iter_mut() {
                *v = sorted_required(v.take());
            }
        }
        _ => {}
    }
    schema
}

fn shaped(dialect: Dialect) -> Value {
    let mut body = chat_body();
    apply(dialect, &mut body, "review", &verdict_schema());
    body
}

/// The body without the fields every OpenAI-style dialect keeps as they were.
fn format_part(mut body: Value) -> Value {
    let obj = body.as_object_mut().unwrap();
    for k in ["model", "messages", "temperature", "top_p", "max_tokens", "seed"] {
        assert_eq!(obj.remove(k), chat_body().get(k).cloned(), "{k} changed");
    }
    body
}

#[test]
fn openai_strict_sends_the_strict_schema_named_after_the_kind() {
    assert_eq!(
        format_part(shaped(Dialect::OpenaiStrict)),
        json!({"response_format": {"type": "json_schema", "json_schema": {
            "name": "review", "strict": true, "schema": strict_schema(&verdict_schema()),
        }}})
    );
}

#[test]
fn json_schema_sends_the_schema_as_written_without_strict() {
    assert_eq!(
        format_part(shaped(Dialect::JsonSchema)),
        json!({"response_format": {"type": "json_schema", "json_schema": {
            "name": "review", "schema": verdict_schema(),
        }}})
    );
}

#[test]
fn json_object_schema_is_llama_cpp_pythons_form() {
    assert_eq!(
        format_part(shaped(Dialect::JsonObjectSchema)),
        json!({"response_format": {"type": "json_object", "schema": verdict_schema()}})
    );
}

#[test]
fn field_dialects_set_one_top_level_field() {
    assert_eq!(
        format_part(shaped(Dialect::JsonSchemaField)),
        json!({"json_schema": verdict_schema()})
    );
    assert_eq!(format_part(shaped(Dialect::GuidedJson)), json!({"guided_json": verdict_schema()}));
    assert_eq!(
        format_part(shaped(Dialect::StructuredOutputs)),
        json!({"structured_outputs": {"json": verdict_schema()}})
    );
}

#[test]
fn json_object_and_text_send_no_schema() {
    assert_eq!(
        format_part(shaped(Dialect::JsonObject)),
        json!({"response_format": {"type": "json_object"}})
    );
    assert_eq!(format_part(shaped(Dialect::Text)), json!({}));
    assert_eq!(Dialect::JsonObject.schema_use(), SchemaUse::None);
    assert_eq!(Dialect::Text.schema_use(), SchemaUse::None);
}

#[test]
fn ollama_format_rewrites_the_body_for_api_chat() {
    assert_eq!(
        shaped(Dialect::OllamaFormat),
        json!({
            "model": "m",
            "messages": [{"role": "system", "content": "s"}, {"role": "user", "content": "u"}],
            "stream": false,
            "format": verdict_schema(),
            "options": {"temperature": 0.7, "top_p": 0.9, "seed": 3, "num_predict": 400},
        })
    );
    assert_eq!(Dialect::OllamaFormat.endpoint(), "api/chat");
    let answer = ollama_chat_answer(&json!({
        "message": {"role": "assistant", "content": "{\"verdict\":\"accept\",\"score\":7}"},
        "done": true, "done_reason": "stop", "prompt_eval_count": 31, "eval_count": 12,
    }))
    .unwrap();
    assert_eq!(answer.text, "{\"verdict\":\"accept\",\"score\":7}");
    assert_eq!((answer.prompt_tokens, answer.completion_tokens, answer.truncated), (31, 12, false));
}

#[test]
fn anthropic_tool_forces_one_tool_and_reads_its_input() {
    let mut body = json!({"model": "c", "system": "s", "messages": [], "max_tokens": 100});
    apply(Dialect::AnthropicTool, &mut body, "review", &verdict_schema());
    assert_eq!(body["tools"][0]["name"], "review");
    assert_eq!(body["tools"][0]["input_schema"], verdict_schema());
    assert_eq!(body["tools"].as_array().unwrap().len(), 1);
    assert_eq!(body["tool_choice"], json!({"type": "tool", "name": "review"}));
    assert_eq!(Dialect::AnthropicTool.endpoint(), "messages");

    let reply = json!({
        "content": [
            {"type": "text", "text": "Here is my review."},
            {"type": "tool_use", "id": "toolu_1", "name": "review", "input": {"verdict": "revise", "score": 4}},
        ],
        "stop_reason": "tool_use",
        "usage": {"input_tokens": 50, "output_tokens": 20},
    });
    let answer = anthropic_tool_answer(&reply, "review").unwrap();
    assert_eq!(
        serde_json::from_str::<Value>(&answer.text).unwrap(),
        json!({"verdict": "revise", "score": 4})
    );
    assert_eq!((answer.prompt_tokens, answer.completion_tokens, answer.truncated), (50, 20, false));
    // A text-only answer, or one cut before the tool call, holds no answer.
    assert_eq!(
        anthropic_tool_answer(&json!({"content": [{"type": "text", "text": "{}"}]}), "review"),
        None
    );
    assert_eq!(anthropic_tool_answer(&reply, "other"), None);
}

#[test]
fn reshaping_a_body_clears_the_previous_dialects_fields() {
    let mut body = chat_body();
    for d in Dialect::ALL {
        if d != Dialect::OllamaFormat {
            apply(d, &mut body, "review", &verdict_schema());
        }
    }
    apply(Dialect::Text, &mut body, "review", &verdict_schema());
    assert_eq!(body, chat_body());
}

#[test]
fn schema_names_keep_to_the_allowed_characters() {
    assert_eq!(schema_name("chapter"), "chapter");
    assert_eq!(schema_name("a b/c"), "a_b_c");
    assert_eq!(schema_name(""), "answer");
    assert_eq!(schema_name(&"x".repeat(80)).len(), 64);
}

#[test]
fn dialect_names_round_trip_through_config() {
    for d in Dialect::ALL {
        assert_eq!(Dialect::from_name(d.name()), Some(d));
        let toml_like: Dialect = serde_json::from_value(json!(d.name())).unwrap();
        assert_eq!(toml_like, d);
    }
    assert_eq!(Dialect::from_name("nope"), None);
}

#[test]
fn strict_schema_closes_objects_and_requires_every_property() {
    let schema = json!({
        "type": "object",
        "properties": {
            "title": {"type": "string", "minLength": 1, "maxLength": 80},
            "mood": {"type": "string", "enum": ["dark", "light"]},
            "scenes": {
                "type": "array", "minItems": 3, "maxItems": 6, "uniqueItems": true,
                "items": {"type": "object", "properties": {"summary": {"type": "string"}}},
            },
        },
        "required": ["title", "scenes"],
    });
    assert_eq!(
        sorted_required(strict_schema(&schema)),
        sorted_required(json!({
            "type": "object",
            "properties": {
                "title": {"type": "string"},
                "mood": {"type": ["string", "null"], "enum": ["dark", "light", null]},
                "scenes": {
                    "type": "array", "minItems": 3, "maxItems": 6,
                    "items": {
                        "type": "object",
                        "properties": {"summary": {"type": ["string", "null"]}},
                        "required": ["summary"],
                        "additionalProperties": false,
                    },
                },
            },
            "required": ["title", "mood", "scenes"],
            "additionalProperties": false,
        }))
    );
}

#[test]
fn strict_schema_keeps_the_keywords_openai_supports_and_drops_the_rest() {
    let schema = json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "type": "object",
        "title": "T",
        "properties": {
            "id": {"type": "string", "format": "uuid", "pattern": "^[a-f0-9-]+$", "default": "x"},
            "when": {"type": "string", "format": "iso-8601-ish"},
            "score": {"type": "integer", "minimum": 1, "maximum": 10, "multipleOf": 1, "examples": [5]},
            "ratio": {"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 1},
            "kind": {"const": "review", "description": "fixed"},
            "either": {"oneOf": [{"type": "string"}, {"$ref": "#/$defs/n"}]},
            "tags": {"type": "object", "patternProperties": {"^x": {"type": "string"}}, "minProperties": 1},
            "merged": {"allOf": [{"type": "string"}, {"description": "d", "not": {"const": ""}}]},
        },
        "required": ["id", "when", "score", "ratio", "kind", "either", "tags", "merged"],
        "$defs": {"n": {"type": "object", "properties": {"v": {"type": "number"}}, "required": ["v"]}},
    });
    assert_eq!(
        sorted_required(strict_schema(&schema)),
        sorted_required(json!({
            "type": "object",
            "title": "T",
            "properties": {
                "id": {"type": "string", "format": "uuid", "pattern": "^[a-f0-9-]+$"},
                "when": {"type": "string"},
                "score": {"type": "integer", "minimum": 1, "maximum": 10, "multipleOf": 1},
                "ratio": {"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 1},
                "kind": {"const": "review", "description": "fixed"},
                "either": {"anyOf": [{"type": "string"}, {"$ref": "#/$defs/n"}]},
                "tags": {"type": "object", "properties": {}, "required": [], "additionalProperties": false},
                "merged": {"type": "string", "description": "d"},
            },
            "required": ["id", "when", "score", "ratio", "kind", "either", "tags", "merged"],
            "additionalProperties": false,
            "$defs": {"n": {
                "type": "object",
                "properties": {"v": {"type": "number"}},
                "required": ["v"],
                "additionalProperties": false,
            }},
        }))
    );
}

#[test]
fn strict_schema_makes_optional_refs_nullable_with_any_of() {
    let schema = json!({
        "type": "object",
        "properties": {"next": {"$ref": "#/$defs/n"}, "n": {"type": ["integer", "null"]}},
        "$defs": {"n": {"type": "object", "properties": {}}},
    });
    let strict = strict_schema(&schema);
    assert_eq!(
        strict["properties"]["next"],
        json!({"anyOf": [{"$ref": "#/$defs/n"}, {"type": "null"}]})
    );
    assert_eq!(strict["properties"]["n"], json!({"type": ["integer", "null"]}));
    assert_eq!(sorted_required(strict)["required"], json!(["n", "next"]));
}

// --- refusals, as each server words them ---

#[test]
fn llama_cpp_python_refuses_json_schema_with_a_500_pydantic_literal_error() {
    let c = capture("json_schema_refused");
    assert_eq!(c.request["response_format"]["type"], "json_schema");
    assert_eq!(c.status, 500);
    assert_eq!(
        refusal(c.status, &c.body),
        Some(Refusal { field: "response_format.type".into(), refused: Refused::Kind })
    );
    assert!(!overflows_context(c.status, &c.body));
    // The step down lands on the form it takes.
    let ladder = Family::Generic.order();
    let r = refusal(c.status, &c.body).unwrap();
    assert_eq!(step_down(ladder, Dialect::JsonSchema, &r), Some(Dialect::JsonObjectSchema));
}

#[test]
fn llama_cpp_python_context_overflow_is_not_a_refusal() {
    let c = capture("context_overflow");
    assert_eq!(c.status, 400);
    assert!(overflows_context(c.status, &c.body));
    assert_eq!(refusal(c.status, &c.body), None);
}

#[test]
fn llama_cpp_python_accepted_forms_are_not_refusals() {
    for name in ["json_object_schema_ok", "json_schema_field_ignored", "json_object_ok", "text_ok"]
    {
        let c = capture(name);
        assert_eq!(c.status, 200, "{name}");
        assert_eq!(refusal(c.status, &c.body), None, "{name}");
    }
}

#[test]
fn llama_cpp_python_enforces_the_schema_given_as_json_object_schema() {
    let c = capture("json_object_schema_ok");
    let schema = &c.request["response_format"]["schema"];
    let v: Value = serde_json::from_str(&c.body).unwrap();
    let answer: Value =
        serde_json::from_str(v["choices"][0]["message"]["content"].as_str().unwrap()).unwrap();
    let allowed = schema["properties"]["verdict"]["enum"].as_array().unwrap();
    assert!(allowed.contains(&answer["verdict"]), "{answer}");
    for key in schema["required"].as_array().unwrap() {
        assert!(answer.get(key.as_str().unwrap()).is_some(), "{key} missing from {answer}");
    }
}

#[test]
fn a_plain_server_error_stays_a_server_error() {
    let bodies = [
        (
            500,
            r#"{"error":{"message":"CUDA error: out of memory","type":"internal_server_error","param":null,"code":null}}"#,
        ),
        (500, r#"{"error":{"code":500,"message":"slot unavailable","type":"server_error"}}"#),
        (500, "<html><body>Internal Server Error</body></html>"),
        (500, ""),
        (
            400,
            r#"{"error":{"message":"max_tokens is too large","type":"invalid_request_error","param":"max_tokens","code":null}}"#,
        ),
        (
            400,
            r#"{"error":{"message":"'messages' is required","type":"invalid_request_error","code":400}}"#,
        ),
        // The right words under a status that is never a refusal.
        (503, r#"{"error":{"message":"x","param":"response_format"}}"#),
        (401, r#"{"error":{"message":"x","param":"response_format"}}"#),
    ];
    for (status, body) in bodies {
        assert_eq!(refusal(status, body), None, "{status} {body}");
    }
}

#[test]
fn openai_refusals_name_response_format_in_param() {
    // A model without Structured Outputs refuses the kind: json_schema is skipped entirely.
    let kind = r#"{"error":{"message":"Invalid parameter: 'response_format' of type 'json_schema' is not supported with this model.","type":"invalid_request_error","param":"response_format","code":null}}"#;
    let r = refusal(400, kind).unwrap();
    assert_eq!(r, Refusal { field: "response_format".into(), refused: Refused::Kind });
    assert_eq!(
        step_down(Family::Openai.order(), Dialect::OpenaiStrict, &r),
        Some(Dialect::JsonObject)
    );
    // A schema strict mode refuses: the same schema goes again, non-strict.
    let schema = r#"{"error":{"message":"Invalid schema for response_format 'review': In context=('properties', 'scores', 'items', 'properties', 'value'), 'minimum' is not permitted.","type":"invalid_request_error","param":"response_format","code":null}}"#;
    let r = refusal(400, schema).unwrap();
    assert_eq!(r.refused, Refused::Schema);
    assert_eq!(
        step_down(Family::Openai.order(), Dialect::OpenaiStrict, &r),
        Some(Dialect::JsonSchema)
    );
    // The context overflow names `messages`.
    let overflow = r#"{"error":{"message":"This model's maximum context length is 8192 tokens.","type":"invalid_request_error","param":"messages","code":"context_length_exceeded"}}"#;
    assert_eq!(refusal(400, overflow), None);
    assert!(overflows_context(400, overflow));
}

#[test]
fn vllm_refusals_read_from_param_or_the_pydantic_message() {
    // Current vLLM: `param` from the error's loc, with FastAPI's `body.` prefix.
    let current = r#"{"error":{"message":"1 validation error:\n  {'type': 'literal_error', 'loc': ('body', 'response_format', 'type'), 'msg': \"Input should be 'text', 'json_object', 'json_schema' or 'structural_tag'\", 'input': 'json_objekt'}","type":"Bad Request","param":"body.response_format.type","code":400}}"#;
    assert_eq!(
        refusal(400, current),
        Some(Refusal { field: "response_format.type".into(), refused: Refused::Kind })
    );
    // Older vLLM: a top-level error object, the pydantic errors only in the message.
    let older = r#"{"object":"error","message":"[{'type': 'literal_error', 'loc': ('body', 'response_format', 'type'), 'msg': \"Input should be 'text', 'json_object' or 'json_schema'\", 'input': 'x', 'ctx': {'expected': \"'text', 'json_object' or 'json_schema'\"}}]","type":"BadRequestError","param":null,"code":400}"#;
    assert_eq!(refusal(400, older).map(|r| r.refused), Some(Refused::Kind));
    // xgrammar cannot take the schema: no field, a fixed message.
    let xgrammar = r#"{"error":{"message":"The provided JSON schema contains features not supported by xgrammar.","type":"BadRequestError","param":null,"code":400}}"#;
    let r = refusal(400, xgrammar).unwrap();
    assert_eq!(r.refused, Refused::Schema);
    assert_eq!(step_down(Family::Vllm.order(), Dialect::JsonSchema, &r), Some(Dialect::JsonObject));
    // The same words inside another message decide nothing.
    let quoted = r#"{"error":{"message":"upstream said: The provided JSON schema contains features not supported by xgrammar.","type":"BadRequestError","param":null,"code":400}}"#;
    assert_eq!(refusal(400, quoted), None);
}

#[test]
fn llama_server_refusals_open_with_the_field_name() {
    // Builds before `json_schema` was a response_format type (500 then, 400 now).
    let kind = r#"{"error":{"code":500,"message":"response_format type must be one of \"text\" or \"json_object\", but got: json_schema","type":"server_error"}}"#;
    let r = refusal(500, kind).unwrap();
    assert_eq!(r, Refusal { field: "response_format".into(), refused: Refused::Kind });
    assert_eq!(
        step_down(Family::Generic.order(), Dialect::JsonSchema, &r),
        Some(Dialect::JsonObjectSchema)
    );
    // The schema converter failed: every schema-carrying dialect would meet it again.
    let schema = r#"{"error":{"code":400,"message":"\"json_schema\": JSON schema conversion failed:\nUnrecognized schema: {\"not\":{}}","type":"invalid_request_error"}}"#;
    let r = refusal(400, schema).unwrap();
    assert_eq!(r, Refusal { field: "json_schema".into(), refused: Refused::Schema });
    assert_eq!(
        step_down(Family::LlamaCpp.order(), Dialect::JsonObjectSchema, &r),
        Some(Dialect::JsonObject)
    );
    // Its context overflow, by type and counts.
    let overflow = r#"{"error":{"code":400,"message":"request (9000 tokens) exceeds the available context size (8192 tokens), try increasing it","type":"exceed_context_size_error","n_prompt_tokens":9000,"n_ctx":8192}}"#;
    assert_eq!(refusal(400, overflow), None);
    assert!(overflows_context(400, overflow));
}

#[test]
fn ollama_refuses_an_unconvertible_schema_with_a_500() {
    // Through `/v1` (the OpenAI error shape) and `/api/chat` (a bare string).
    let v1 = r#"{"error":{"message":"invalid JSON schema in format","type":"api_error","param":null,"code":null}}"#;
    let native = r#"{"error":"invalid JSON schema in format"}"#;
    for body in [v1, native] {
        let r = refusal(500, body).unwrap();
        assert_eq!(r, Refusal { field: "format".into(), refused: Refused::Schema });
        assert_eq!(
            step_down(Family::Ollama.order(), Dialect::JsonSchema, &r),
            Some(Dialect::JsonObject)
        );
    }
    // Any other Ollama 500 stays a server error.
    assert_eq!(refusal(500, r#"{"error":"model runner has unexpectedly stopped"}"#), None);
}

#[test]
fn fastapi_422_detail_names_the_field_in_loc() {
    let body = r#"{"detail":[{"type":"literal_error","loc":["body","response_format","type"],"msg":"Input should be 'text' or 'json_object'","input":"json_schema"}]}"#;
    assert_eq!(
        refusal(422, body),
        Some(Refusal { field: "response_format.type".into(), refused: Refused::Kind })
    );
    let schema = r#"{"detail":[{"type":"dict_type","loc":["body","response_format","json_schema","schema"],"msg":"Input should be a valid dictionary","input":"x"}]}"#;
    assert_eq!(refusal(422, schema).map(|r| r.refused), Some(Refused::Schema));
    let other = r#"{"detail":[{"type":"missing","loc":["body","messages"],"msg":"Field required","input":{}}]}"#;
    assert_eq!(refusal(422, other), None);
}

#[test]
fn anthropic_refuses_a_tool_schema_naming_its_path() {
    let body = r#"{"type":"error","error":{"type":"invalid_request_error","message":"tools.0.custom.input_schema: JSON schema is invalid. It must match JSON Schema draft 2020-12"}}"#;
    let r = refusal(400, body).unwrap();
    assert_eq!(
        r,
        Refusal { field: "tools.0.custom.input_schema".into(), refused: Refused::Schema }
    );
    assert_eq!(
        step_down(Family::Anthropic.order(), Dialect::AnthropicTool, &r),
        Some(Dialect::Text)
    );
    let other = r#"{"type":"error","error":{"type":"invalid_request_error","message":"max_tokens: Field required"}}"#;
    assert_eq!(refusal(400, other), None);
}

// --- orders ---

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
    assert_eq!(Family::of_provider("anthropic", "https://api.anthropic.com/v1"), Family::Anthropic);
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
    let vllm =
        json!({"object": "list", "data": [{"id": "q", "owned_by": "vllm", "max_model_len": 8192}]});
    assert_eq!(Family::from_models(&vllm), Some(Family::Vllm));
    let server = json!({"object": "list", "data": [{"id": "q", "owned_by": "llamacpp"}]});
    assert_eq!(Family::from_models(&server), Some(Family::LlamaCpp));
    assert_eq!(Family::from_models(&json!({"data": [{"id": "q", "owned_by": "library"}]})), None);
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
fn llama_cpp_python_enforces_enums_and_min_length() {
    let c = capture("json_object_schema_enum_min_length_ok");
    let schema = &c.request["response_format"]["schema"];
    let v: Value = serde_json::from_str(&c.body).unwrap();
    let content = v["choices"][0]["message"]["content"].as_str().unwrap();
    let answer: Value = serde_json::from_str(&escape_raw_controls(content)).unwrap();
    assert!(
        schema["properties"]["score"]["enum"].as_array().unwrap().contains(&answer["score"]),
        "{answer}"
    );
    let min = schema["properties"]["reason"]["minLength"].as_u64().unwrap() as usize;
    assert!(answer["reason"].as_str().unwrap().chars().count() >= min, "{answer}");
}

#[test]
fn llama_cpp_python_ignores_top_level_schema_fields() {
    // The same request with the schema as `json_schema`, `guided_json` or `format`: answered,
    // unconstrained (none of the required keys), so no refusal leads anywhere.
    for name in ["json_schema_field_ignored", "guided_json_ignored", "format_field_ignored"] {
        let c = capture(name);
        assert_eq!((c.status, refusal(c.status, &c.body)), (200, None), "{name}");
        let v: Value = serde_json::from_str(&c.body).unwrap();
        let content = v["choices"][0]["message"]["content"].as_str().unwrap();
        assert!(!content.contains("\"verdict\""), "{name}: {content}");
    }
}

#[test]
fn raw_control_characters_in_grammar_strings_are_escaped() {
    let c = capture("json_object_schema_raw_newline");
    let v: Value = serde_json::from_str(&c.body).unwrap();
    let content = v["choices"][0]["message"]["content"].as_str().unwrap();
    assert!(
        serde_json::from_str::<Value>(content).is_err(),
        "the capture should hold a raw newline"
    );
    let answer: Value = serde_json::from_str(&escape_raw_controls(content)).unwrap();
    assert!(answer["text"].as_str().unwrap().contains('\n'));
    assert!(answer["title"].is_string());

    assert_eq!(escape_raw_controls("{\"a\":\"x\ny\t\u{1}\"}"), "{\"a\":\"x\\ny\\t\\u0001\"}");
    // Outside strings, and after an escaped quote, nothing changes.
    let clean = "{\n  \"a\": \"q\\\"\",\n  \"b\": 1\n}";
    assert!(matches!(escape_raw_controls(clean), Cow::Borrowed(_)));
    assert_eq!(
        escape_raw_controls("{\"a\":\"\\\\\",\"b\":\"x\ny\"}"),
        "{\"a\":\"\\\\\",\"b\":\"x\\ny\"}"
    );
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

#[test]
fn llama_cpp_python_falls_back_to_any_json_on_a_schema_it_cannot_convert() {
    // A dangling `$ref`: no refusal, the grammar silently becomes plain JSON, so the required
    // key is missing. Only validation catches a schema this server cannot enforce.
    let c = capture("json_object_bad_ref");
    assert_eq!((c.status, refusal(c.status, &c.body)), (200, None));
    let v: Value = serde_json::from_str(&c.body).unwrap();
    let content = v["choices"][0]["message"]["content"].as_str().unwrap();
    let answer = serde_json::from_str::<Value>(&escape_raw_controls(content)).ok();
    assert!(answer.is_none_or(|a| a.get("a").is_none()), "{content}");
}

#[test]
fn llama_cpp_python_refuses_strict_json_schema_the_same_way() {
    let c = capture("json_schema_strict_refused");
    assert_eq!(c.request["response_format"]["json_schema"]["strict"], true);
    assert_eq!(refusal(c.status, &c.body).map(|r| r.refused), Some(Refused::Kind));
}

#[test]
fn llama_cpp_python_cuts_max_tokens_to_the_window_silently() {
    let c = capture("max_tokens_over_window");
    assert!(c.request["max_tokens"].as_u64().unwrap() > 8192);
    assert_eq!(c.status, 200);
    assert!(!overflows_context(c.status, &c.body));
}

#[test]
fn llama_cpp_dialects_ask_a_string_too_long_for_a_grammar_as_bounded_paragraphs() {
    let schema = json!({
        "type": "object",
        "properties": {
            "scenes": {"type": "array", "items": {"type": "object", "properties": {
                "text": {"type": "string", "minLength": 1280, "maxLength": 2160,
                    "description": "the scene's prose"},
            }}},
            "summary": {"type": "string", "minLength": 1, "maxLength": 1000},
            "part": {"type": "string", "minLength": 960, "maxLength": 1620},
        },
    });
    let safe = grammar_safe(&schema);
    let text = &safe["properties"]["scenes"]["items"]["properties"]["text"];
    assert_eq!(
        (text["type"].as_str(), &text["minItems"], &text["maxItems"]),
        (Some("array"), &json!(3), &json!(3))
    );
    assert_eq!(text["items"]["minLength"], 427, "the floor is shared: 3 x 427 >= 1280");
    assert_eq!(text["items"]["maxLength"], 720, "and the bound: 3 x 720 = 2160");
    assert!(text["description"].as_str().unwrap().contains("the scene's prose, in 3 paragraphs"));
    assert_eq!(safe["properties"]["summary"], schema["properties"]["summary"], "short: as it was");
    let part = &safe["properties"]["part"];
    assert_eq!(
        (&part["maxItems"], &part["items"]["minLength"], &part["items"]["maxLength"]),
        (&json!(2), &json!(480), &json!(810))
    );
    // No string in what a grammar compiles is bounded over the limit.
    let lengths = safe.to_string();
    assert!(!lengths.contains("2160") && !lengths.contains("1620"), "{safe}");

    // The answer's paragraphs are the string again; an answer that kept the string is kept.
    let mut answer = json!({
        "scenes": [{"text": ["First paragraph.", " Second. ", "Third."]}, {"text": "whole"}],
        "summary": "s",
        "part": ["a", "b"],
    });
    rejoin(&schema, &mut answer);
    assert_eq!(answer["scenes"][0]["text"], "First paragraph.\n\nSecond.\n\nThird.");
    assert_eq!(answer["scenes"][1]["text"], "whole");
    assert_eq!(answer["part"], "a\n\nb");
    assert_eq!(answer["summary"], "s");

    // Every dialect a llama.cpp grammar may enforce sends the safe schema; vLLM's and OpenAI's
    // get it whole (strict mode drops lengths anyway).
    for dialect in [
        Dialect::JsonObjectSchema,
        Dialect::JsonSchema,
        Dialect::JsonSchemaField,
        Dialect::OllamaFormat,
    ] {
        let mut body = chat_body();
        apply(dialect, &mut body, "chapter", &schema);
        assert!(!body.to_string().contains("2160"), "{dialect:?}: {body}");
        assert!(body.to_string().contains("in 3 paragraphs"), "{dialect:?}: {body}");
    }
    for dialect in [Dialect::GuidedJson, Dialect::StructuredOutputs] {
        let mut body = chat_body();
        apply(dialect, &mut body, "chapter", &schema);
        assert!(body.to_string().contains("2160"), "{dialect:?}: {body}");
    }
}
