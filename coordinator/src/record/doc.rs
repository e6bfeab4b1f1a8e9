//! An accepted output as a book in flight holds it: its compact JSON text.

use serde::de::DeserializeOwned;
use serde_json::Value;

/// An accepted output, held as its compact JSON text rather than as a `serde_json::Value`.
///
/// With `preserve_order` every JSON object is an index map, so a ten-chapter outline of 9 KB
/// took about 32 KB as a `Value`, and the outputs were a third of what a book in flight held
/// (BENCHMARKS.md, issue 24). The text is also what the store keeps and what a step task
/// sends, as it is; readers parse what they read ([`Doc::parse`], [`Doc::value`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Doc(Box<str>);

impl Doc {
    /// The compact JSON text.
    pub fn text(&self) -> &str {
        &self.0
    }

    /// The text's bytes, as the store keeps them.
    pub fn to_vec(&self) -> Vec<u8> {
        self.0.as_bytes().to_vec()
    }

    /// The document read as `T`; `None` when it does not have `T`'s shape.
    pub fn parse<T: DeserializeOwned>(&self) -> Option<T> {
        serde_json::from_str(&self.0).ok()
    }

    /// The document as a JSON value.
    pub fn value(&self) -> Value {
        self.parse().unwrap_or(Value::Null)
    }

    /// A stored document, kept as its text once it is known to be JSON; `None` otherwise.
    pub fn from_stored(bytes: &[u8]) -> Option<Doc> {
        let text = std::str::from_utf8(bytes).ok()?;
        serde_json::from_str::<serde::de::IgnoredAny>(text).ok()?;
        Some(Doc(text.into()))
    }
}

impl From<&Value> for Doc {
    fn from(v: &Value) -> Doc {
        Doc(v.to_string().into_boxed_str())
    }
}

impl From<Value> for Doc {
    fn from(v: Value) -> Doc {
        Doc::from(&v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_doc_gives_back_the_document_it_was_made_from_in_its_key_order() {
        let v =
            json!({"title": "Tides", "chapters": [{"number": 1, "beats": ["a", "b"]}], "a": null});
        let doc = Doc::from(&v);
        assert_eq!(
            doc.text(),
            r#"{"title":"Tides","chapters":[{"number":1,"beats":["a","b"]}],"a":null}"#
        );
        assert_eq!(doc.value(), v);
        assert_eq!(Doc::from_stored(doc.text().as_bytes()), Some(doc));
    }

    #[test]
    fn stored_bytes_that_are_not_json_are_no_doc() {
        assert_eq!(Doc::from_stored(b"{\"title\": "), None);
        assert_eq!(Doc::from_stored(&[0xff, 0xfe]), None);
    }
}
