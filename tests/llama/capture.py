"""Captures real answers of llama-cpp-python's server for the dialect unit tests.

Usage: capture.py BASE_URL OUT_DIR   (BASE_URL like http://127.0.0.1:PORT, a server started as
`python -m llama_cpp.server --model <SmolLM2 GGUF> --n_ctx 8192`). Writes one JSON file per case:
{"server", "request", "status", "body"} with the body exactly as the server sent it.
"""
import json
import sys
import urllib.error
import urllib.request

BASE, OUT = sys.argv[1].rstrip("/"), sys.argv[2]
SERVER = "llama-cpp-python 0.3.36 serving SmolLM2-135M-Instruct Q4_1, n_ctx 8192"

REVIEW = {
    "type": "object",
    "properties": {
        "verdict": {"type": "string", "enum": ["accept", "revise"]},
        "score": {"type": "integer"},
        "reason": {"type": "string"},
    },
    "required": ["verdict", "score", "reason"],
    "additionalProperties": False,
}


def chat(extra, content="Review this chapter: 'The dragon slept. The knight left.' Answer in JSON."):
    body = {
        "model": "smollm2",
        "messages": [
            {"role": "system", "content": "You review chapters of a novel."},
            {"role": "user", "content": content},
        ],
        "temperature": 0.0,
        "top_p": 0.9,
        "max_tokens": 120,
        "seed": 7,
    }
    body.update(extra)
    return body


def send(method, path, body=None):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(BASE + path, data=data, method=method,
                                 headers={"content-type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=600) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def save(name, request, status, body, shown_request=None):
    with open(f"{OUT}/{name}.json", "w") as f:
        json.dump({"server": SERVER, "request": shown_request or request, "status": status, "body": body},
                  f, indent=1, ensure_ascii=False)
        f.write("\n")
    print(name, status, body[:300].replace("\n", " "))


def case(name, extra, **kw):
    req = chat(extra, **kw)
    status, body = send("POST", "/v1/chat/completions", req)
    save(name, req, status, body)


case("json_schema_refused", {"response_format": {"type": "json_schema", "json_schema": {"name": "review", "schema": REVIEW}}})
case("json_schema_strict_refused", {"response_format": {"type": "json_schema", "json_schema": {"name": "review", "strict": True, "schema": REVIEW}}})
case("json_object_schema_ok", {"response_format": {"type": "json_object", "schema": REVIEW}})
case("json_schema_field_ignored", {"json_schema": REVIEW})
case("json_object_ok", {"response_format": {"type": "json_object"}})
case("text_ok", {})
case("json_object_bad_ref", {"response_format": {"type": "json_object", "schema": {
    "type": "object", "properties": {"a": {"$ref": "#/$defs/missing"}}, "required": ["a"]}}})
case("guided_json_ignored", {"guided_json": REVIEW})
case("format_field_ignored", {"format": REVIEW})
# Bounded integers as an enum (the converter ignores minimum/maximum) and a non-empty string.
SCORED = {
    "type": "object",
    "properties": {
        "verdict": {"type": "string", "enum": ["accept", "revise"]},
        "score": {"type": "integer", "enum": list(range(1, 11))},
        "reason": {"type": "string", "minLength": 10, "maxLength": 200},
    },
    "required": ["verdict", "score", "reason"],
    "additionalProperties": False,
}
case("json_object_schema_enum_min_length_ok", {"response_format": {"type": "json_object", "schema": SCORED}})
# A long string under the grammar: llama-cpp-python's `char` rule lets raw control characters
# (a newline) into strings, which strict JSON parsers refuse.
CHAPTER = {
    "type": "object",
    "properties": {
        "title": {"type": "string", "minLength": 5, "maxLength": 60},
        "text": {"type": "string", "minLength": 1600, "maxLength": 2000},
    },
    "required": ["title", "text"],
    "additionalProperties": False,
}
req = chat({"response_format": {"type": "json_object", "schema": CHAPTER}, "temperature": 0.8, "top_p": 0.95,
            "max_tokens": 700, "seed": 1},
           content="Write chapter 1 of a fantasy novel about a knight and a dragon, as JSON with a title and the text.")
req["messages"][0]["content"] = "You are a novelist."
status, body = send("POST", "/v1/chat/completions", req)
save("json_object_schema_raw_newline", req, status, body)
status, body = send("GET", "/v1/models")
save("models", {"method": "GET", "path": "/v1/models"}, status, body)
status, body = send("GET", "/props")
save("props_missing", {"method": "GET", "path": "/props"}, status, body)
long_text = "The knight rode on. " * 2500
req = chat({}, content=long_text)
status, body = send("POST", "/v1/chat/completions", req)
shown = dict(req, messages=[req["messages"][0], {"role": "user", "content": "'The knight rode on. ' x 2500 (about 12,500 tokens)"}])
save("context_overflow", req, status, body, shown_request=shown)
req = chat({"max_tokens": 9000})
status, body = send("POST", "/v1/chat/completions", req)
save("max_tokens_over_window", req, status, body)
