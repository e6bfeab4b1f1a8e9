//! Reads Python literals (the `repr` of lists, tuples, dicts, strings, numbers, `None`, `True`,
//! `False`) as JSON values: FastAPI servers such as llama-cpp-python and older vLLM put the
//! pydantic errors of a refused request into their error message in that form.

use serde_json::{Map, Number, Value};

/// Deepest nesting read; pydantic errors are a few levels deep.
const MAX_DEPTH: usize = 32;

/// `text` as one Python literal (surrounding whitespace allowed), `None` when it is not one.
///
/// Tuples read as arrays, dict keys as strings; a call such as `ValueError('x')` (pydantic puts
/// exceptions in an error's `ctx`) reads as the string `ValueError`.
pub(super) fn parse(text: &str) -> Option<Value> {
    let mut p = Parser { s: text, pos: 0 };
    let v = p.value(0)?;
    p.ws();
    (p.pos == text.len()).then_some(v)
}

struct Parser<'a> {
    s: &'a str,
    pos: usize,
}

impl Parser<'_> {
    fn peek(&self) -> Option<char> {
        self.s[self.pos..].chars().next()
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.pos += c.len_utf8();
        Some(c)
    }

    fn ws(&mut self) {
        while let Some(c) = self.peek().filter(|c| c.is_whitespace()) {
            self.pos += c.len_utf8();
        }
    }

    fn eat(&mut self, c: char) -> bool {
        self.ws();
        if self.peek() == Some(c) {
            self.pos += c.len_utf8();
            true
        } else {
            false
        }
    }

    fn value(&mut self, depth: usize) -> Option<Value> {
        if depth > MAX_DEPTH {
            return None;
        }
        self.ws();
        match self.peek()? {
            '[' => {
                self.bump();
                self.seq(']', depth).map(Value::Array)
            }
            '(' => {
                self.bump();
                self.seq(')', depth).map(Value::Array)
            }
            '{' => {
                self.bump();
                self.dict(depth)
            }
            '\'' | '"' => self.string().map(Value::String),
            c if c == '-' || c == '+' || c.is_ascii_digit() => self.number(),
            c if c.is_alphabetic() || c == '_' => self.name(depth),
            _ => None,
        }
    }

    fn seq(&mut self, close: char, depth: usize) -> Option<Vec<Value>> {
        let mut items = Vec::new();
        loop {
            if self.eat(close) {
                return Some(items);
            }
            items.push(self.value(depth + 1)?);
            if !self.eat(',') {
                return self.eat(close).then_some(items);
            }
        }
    }

    fn dict(&mut self, depth: usize) -> Option<Value> {
        let mut map = Map::new();
        loop {
            if self.eat('}') {
                return Some(Value::Object(map));
            }
            let key = match self.value(depth + 1)? {
                Value::String(s) => s,
                other => other.to_string(),
            };
            if !self.eat(':') {
                return None;
            }
            let value = self.value(depth + 1)?;
            map.insert(key, value);
            if !self.eat(',') {
                return self.eat('}').then_some(Value::Object(map));
            }
        }
    }

    fn string(&mut self) -> Option<String> {
        let quote = self.bump()?;
        let mut out = String::new();
        loop {
            match self.bump()? {
                c if c == quote => return Some(out),
                '\\' => match self.bump()? {
                    'n' => out.push('\n'),
                    't' => out.push('\t'),
                    'r' => out.push('\r'),
                    '0' => out.push('\0'),
                    'x' => out.push(self.hex(2)?),
                    'u' => out.push(self.hex(4)?),
                    'U' => out.push(self.hex(8)?),
                    c @ ('\\' | '\'' | '"') => out.push(c),
                    other => {
                        out.push('\\');
                        out.push(other);
                    }
                },
                c => out.push(c),
            }
        }
    }

    fn hex(&mut self, digits: usize) -> Option<char> {
        let end = self.pos.checked_add(digits)?;
        let code = u32::from_str_radix(self.s.get(self.pos..end)?, 16).ok()?;
        self.pos = end;
        char::from_u32(code)
    }

    fn number(&mut self) -> Option<Value> {
        let start = self.pos;
        while self.peek().is_some_and(|c| c.is_ascii_alphanumeric() || "+-._".contains(c)) {
            self.pos += 1;
        }
        let text: String = self.s[start..self.pos].chars().filter(|c| *c != '_').collect();
        if let Ok(i) = text.parse::<i64>() {
            return Some(Value::from(i));
        }
        let f = text.parse::<f64>().ok()?;
        Some(Number::from_f64(f).map_or(Value::Null, Value::Number))
    }

    fn name(&mut self, depth: usize) -> Option<Value> {
        let start = self.pos;
        while self.peek().is_some_and(|c| c.is_alphanumeric() || c == '_' || c == '.') {
            self.bump();
        }
        let name = &self.s[start..self.pos];
        // String prefixes: b'..', r'..', u'..'.
        if matches!(self.peek(), Some('\'' | '"')) && name.len() <= 2 {
            return self.string().map(Value::String);
        }
        if self.peek() == Some('(') {
            self.bump();
            self.seq(')', depth)?;
            return Some(Value::String(name.to_string()));
        }
        Some(match name {
            "None" | "inf" | "nan" => Value::Null,
            "True" => Value::Bool(true),
            "False" => Value::Bool(false),
            other => Value::String(other.to_string()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reads_a_pydantic_error_list() {
        let text = r#"[{'type': 'literal_error', 'loc': ('body', 'response_format', 'type'), 'msg': "Input should be 'text' or 'json_object'", 'input': 'json_schema', 'ctx': {'expected': "'text' or 'json_object'"}}]"#;
        assert_eq!(
            parse(text),
            Some(json!([{
                "type": "literal_error",
                "loc": ["body", "response_format", "type"],
                "msg": "Input should be 'text' or 'json_object'",
                "input": "json_schema",
                "ctx": {"expected": "'text' or 'json_object'"},
            }]))
        );
    }

    #[test]
    fn reads_escapes_numbers_constants_and_calls() {
        assert_eq!(parse(r"'a\'b\n\x41\u00e9'"), Some(json!("a'b\nAé")));
        assert_eq!(
            parse("(1, -2.5, None, True, False,)"),
            Some(json!([1, -2.5, null, true, false]))
        );
        assert_eq!(
            parse("{'error': ValueError('bad', 3), 1: b'x'}"),
            Some(json!({"error": "ValueError", "1": "x"}))
        );
    }

    #[test]
    fn refuses_what_is_not_one_literal() {
        assert_eq!(parse("[1, 2"), None);
        assert_eq!(parse("{'a' 1}"), None);
        assert_eq!(parse("1 validation error:\n  {'type': 'x'}"), None);
        assert_eq!(parse("<object at 0x1>"), None);
        assert_eq!(parse(&"[".repeat(100)), None);
    }
}
