//! Request parameters: the query string, then a JSON object or form body.
//!
//! One rule on every endpoint: a parameter may appear **once** across the
//! query and the body together; a repeated name is refused (HTTP 400,
//! `"error":"duplicate_parameter"`) rather than one copy winning. Names and
//! values must be UTF-8 after percent-decoding (invalid bytes are refused,
//! never replaced), and values must not contain control characters (Unicode
//! category Cc, e.g. NUL, CR, LF, DEL) or bidirectional formatting characters
//! (U+061C, U+200E, U+200F, U+202A–U+202E, U+2066–U+2069). Text shown to a
//! payer (`merchantname`, `username`) must also not contain `<` or `>`.

use std::borrow::Cow;

use percent_encoding::percent_decode;
use serde::de::{Deserializer, MapAccess, Visitor};
use serde_json::value::RawValue;

/// Why the parameters were refused; the message is safe to show the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParamError {
    /// Short machine-readable kind, e.g. `"duplicate_parameter"`.
    pub kind: &'static str,
    /// What is wrong, naming the parameter.
    pub message: String,
}

impl ParamError {
    fn new(kind: &'static str, message: impl Into<String>) -> Self {
        ParamError {
            kind,
            message: message.into(),
        }
    }
}

/// Largest number of parameters read from one request.
pub const MAX_PARAMS: usize = 32;

/// The parameters of one request, by name (at most [`MAX_PARAMS`], so a
/// list searched in order costs less than hashing).
#[derive(Debug, Default, Clone)]
pub struct Params(Vec<(String, String)>);

impl Params {
    /// The value of `name`, if given.
    #[must_use]
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The names given, in order.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(|(n, _)| n.as_str())
    }

    fn insert(&mut self, name: String, value: String) -> Result<(), ParamError> {
        if self.0.len() >= MAX_PARAMS {
            return Err(ParamError::new(
                "too_many_parameters",
                format!("more than {MAX_PARAMS} parameters"),
            ));
        }
        check_text(&name, &name)?;
        check_text(&name, &value)?;
        if self.0.iter().any(|(n, _)| *n == name) {
            return Err(ParamError::new(
                "duplicate_parameter",
                format!("parameter {name:?} is given more than once"),
            ));
        }
        self.0.push((name, value));
        Ok(())
    }

    /// Parses the raw query string (without `?`), then the body if it is not
    /// blank: JSON when `content_type` starts with `application/json`, form
    /// encoding otherwise. JSON values must be strings or numbers (numbers are
    /// kept exactly as written, e.g. `4.50`).
    ///
    /// # Errors
    /// A [`ParamError`] for invalid percent-encoding or UTF-8, a forbidden
    /// character, a repeated name, a body that is not a JSON object, or more than
    /// [`MAX_PARAMS`] parameters.
    pub fn parse(
        query: Option<&str>,
        content_type: Option<&str>,
        body: &[u8],
    ) -> Result<Params, ParamError> {
        let mut params = Params::default();
        if let Some(q) = query {
            params.read_form(q.as_bytes(), "query string")?;
        }
        if body.iter().all(u8::is_ascii_whitespace) {
            return Ok(params);
        }
        let is_json = content_type.is_some_and(|v| {
            v.trim_start()
                .to_ascii_lowercase()
                .starts_with("application/json")
        });
        if is_json {
            let mut de = serde_json::Deserializer::from_slice(body);
            let fields = de
                .deserialize_map(PairsVisitor)
                .and_then(|f| de.end().map(|()| f))
                .map_err(|_| ParamError::new("invalid_body", "body is not a JSON object"))?;
            for (k, raw) in fields {
                let text = raw.get();
                let v = if text.starts_with('"') {
                    serde_json::from_str::<String>(text)
                        .map_err(|_| ParamError::new("invalid_body", "body is not a JSON object"))?
                } else if text.starts_with(|c: char| c == '-' || c.is_ascii_digit()) {
                    // A number, kept exactly as written.
                    text.to_owned()
                } else {
                    return Err(ParamError::new(
                        "invalid_body",
                        format!("parameter {k:?} must be a string or a number"),
                    ));
                };
                params.insert(k, v)?;
            }
        } else {
            params.read_form(body, "body")?;
        }
        Ok(params)
    }

    fn read_form(&mut self, bytes: &[u8], what: &str) -> Result<(), ParamError> {
        for pair in bytes.split(|&b| b == b'&') {
            if pair.is_empty() {
                continue;
            }
            let (name, value) = match pair.iter().position(|&b| b == b'=') {
                Some(i) => (&pair[..i], &pair[i + 1..]),
                None => (pair, &b""[..]),
            };
            let name = decode(name, what)?;
            let value = decode(value, what)?;
            self.insert(name, value)?;
        }
        Ok(())
    }
}

/// Form decoding (`+` is a space, `%XX` a byte), refusing invalid UTF-8.
fn decode(raw: &[u8], what: &str) -> Result<String, ParamError> {
    let plus: Cow<'_, [u8]> = if raw.contains(&b'+') {
        raw.iter()
            .map(|&b| if b == b'+' { b' ' } else { b })
            .collect::<Vec<u8>>()
            .into()
    } else {
        raw.into()
    };
    let bytes: Vec<u8> = Cow::from(percent_decode(&plus)).into_owned();
    String::from_utf8(bytes).map_err(|_| {
        ParamError::new(
            "invalid_utf8",
            format!("the {what} is not UTF-8 after percent-decoding"),
        )
    })
}

/// Whether `c` is a bidirectional formatting character.
fn is_bidi_control(c: char) -> bool {
    matches!(
        c,
        '\u{061C}' | '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}'
    )
}

fn check_text(name: &str, text: &str) -> Result<(), ParamError> {
    if let Some(c) = text.chars().find(|&c| c.is_control() || is_bidi_control(c)) {
        let name = name.escape_default();
        return Err(ParamError::new(
            "forbidden_character",
            format!(
                "parameter \"{name}\" contains the control or bidi character U+{:04X}",
                u32::from(c)
            ),
        ));
    }
    Ok(())
}

/// Refuses `<` and `>` in text shown to a payer (`merchantname`, `username`).
///
/// # Errors
/// A [`ParamError`] of kind `forbidden_character`.
pub fn check_display_text(name: &str, text: &str) -> Result<(), ParamError> {
    if text.contains(['<', '>']) {
        return Err(ParamError::new(
            "forbidden_character",
            format!("parameter {name:?} must not contain '<' or '>'"),
        ));
    }
    Ok(())
}

/// A JSON object read as its pairs in order, repeats kept (`serde_json`'s own map
/// would keep only the last).
struct PairsVisitor;

impl<'de> Visitor<'de> for PairsVisitor {
    type Value = Vec<(String, Box<RawValue>)>;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut out = Vec::new();
        while let Some((k, v)) = map.next_entry::<String, Box<RawValue>>()? {
            if out.len() > MAX_PARAMS {
                return Err(serde::de::Error::custom("too many fields"));
            }
            out.push((k, v));
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(q: &str) -> Result<Params, ParamError> {
        Params::parse(Some(q), None, b"")
    }

    #[test]
    fn query_body_and_the_one_rule() {
        let p = Params::parse(
            Some("a=1&b=x+y%20z"),
            Some("application/json"),
            br#"{"c":"3","d":4.50}"#,
        )
        .unwrap();
        assert_eq!(
            (p.get("a"), p.get("b"), p.get("c"), p.get("d")),
            (Some("1"), Some("x y z"), Some("3"), Some("4.50"))
        );
        for (q, ct, body) in [
            ("a=1&a=2", None, &b""[..]),
            ("a=1", None, b"a=2"),
            ("a=1", Some("application/json"), br#"{"a":"2"}"#),
            ("", Some("application/json"), br#"{"a":"1","a":"2"}"#),
        ] {
            let e = Params::parse(Some(q), ct, body).unwrap_err();
            assert_eq!(e.kind, "duplicate_parameter", "{q} {body:?}");
        }
    }

    #[test]
    fn bad_text_is_refused_not_replaced() {
        assert_eq!(parse("merchantname=%FF").unwrap_err().kind, "invalid_utf8");
        assert_eq!(parse("%C3=1").unwrap_err().kind, "invalid_utf8");
        for bad in ["a%00b", "a%0Ab", "%E2%80%AEevil", "x%E2%81%A6", "%7F"] {
            assert_eq!(
                parse(&format!("merchantname={bad}")).unwrap_err().kind,
                "forbidden_character",
                "{bad}"
            );
        }
        assert_eq!(
            parse("merchantname=%E1%9E%A0%E1%9E%B6%E1%9E%84")
                .unwrap()
                .get("merchantname"),
            Some("ហាង")
        );
        assert!(check_display_text("merchantname", "<b>x</b>").is_err());
        assert!(check_display_text("merchantname", "A & B").is_ok());
        let e = Params::parse(None, Some("application/json"), b"[1]").unwrap_err();
        assert_eq!(e.kind, "invalid_body");
        let e = Params::parse(None, Some("application/json"), br#"{"a":{}}"#).unwrap_err();
        assert_eq!(e.kind, "invalid_body");
        let many = (0..40)
            .map(|i| format!("p{i}=1"))
            .collect::<Vec<_>>()
            .join("&");
        assert_eq!(parse(&many).unwrap_err().kind, "too_many_parameters");
    }
}
