//! One rule for the text every front-end accepts, applied at the edge before a request is
//! parsed, the same whatever the database: no control characters (C0, DEL, C1) and no
//! bidirectional formatting characters (U+061C, U+200E, U+200F, U+202A–U+202E,
//! U+2066–U+2069) in any string of a JSON body, in a key or a value, raw or escaped. PostgreSQL
//! refuses a NUL in text (it was a 500 there while SQLite stored it), a control character in
//! a reference ends up in logs, CSV exports and terminal receipts, and a bidirectional
//! override makes a reference or a name read differently from what it is. No field of any
//! front-end needs them; each front-end answers a refusal in its own shape. No string may be
//! longer than [`MAX_TEXT_CHARS`] either: the longest any field needs (a webhook URL, 2048
//! bytes) fits with room, and nothing longer is stored, logged or echoed.
//!
//! The scan reads the body's bytes once, without parsing it: JSON can hold such a character
//! only as an escape (`\n`, `\u0000`) or, for DEL and the characters past ASCII, raw, so both
//! are looked at. A body that is not JSON is left to the parser to refuse.

use std::fmt;

/// Characters one string of a request may hold at most (a key, a value, a query parameter).
pub const MAX_TEXT_CHARS: usize = 4096;

/// What the rule refuses in a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnsafeText {
    /// A control or bidirectional formatting character.
    Char(char),
    /// A string longer than [`MAX_TEXT_CHARS`].
    TooLong,
}

impl fmt::Display for UnsafeText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Char(c) => write!(
                f,
                "Text may not contain control or bidirectional formatting characters; found U+{:04X}.",
                u32::from(*c)
            ),
            Self::TooLong => write!(f, "Text may be at most {MAX_TEXT_CHARS} characters long."),
        }
    }
}

/// Whether `c` is refused: a control character or a bidirectional formatting character.
pub fn is_refused(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{061C}' | '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}'
        )
}

/// The first refused character in `text`, or its length past [`MAX_TEXT_CHARS`].
pub fn check_str(text: &str) -> Result<(), UnsafeText> {
    if let Some(c) = text.chars().find(|c| is_refused(*c)) {
        return Err(UnsafeText::Char(c));
    }
    if text.chars().nth(MAX_TEXT_CHARS).is_some() {
        return Err(UnsafeText::TooLong);
    }
    Ok(())
}

/// The first refused character in the strings of a JSON body, escaped or raw, or a string
/// past [`MAX_TEXT_CHARS`] (an escape counts as the one character it stands for). Whitespace
/// between JSON tokens (space, tab, newline, carriage return) is not text and passes.
pub fn check_json(body: &[u8]) -> Result<(), UnsafeText> {
    let Ok(body) = std::str::from_utf8(body) else {
        return Ok(());
    };
    let mut chars = body.chars();
    let mut in_string = false;
    let mut length = 0_usize;
    while let Some(c) = chars.next() {
        if !in_string {
            match c {
                '"' => {
                    in_string = true;
                    length = 0;
                }
                ' ' | '\t' | '\n' | '\r' => {}
                c if is_refused(c) => return Err(UnsafeText::Char(c)),
                _ => {}
            }
            continue;
        }
        match c {
            '"' => {
                in_string = false;
                continue;
            }
            '\\' => match chars.next() {
                Some('b') => return Err(UnsafeText::Char('\u{8}')),
                Some('f') => return Err(UnsafeText::Char('\u{c}')),
                Some('n') => return Err(UnsafeText::Char('\n')),
                Some('r') => return Err(UnsafeText::Char('\r')),
                Some('t') => return Err(UnsafeText::Char('\t')),
                Some('u') => {
                    let hex: String = chars.by_ref().take(4).collect();
                    let escaped = u32::from_str_radix(&hex, 16).ok().and_then(char::from_u32);
                    if let Some(escaped) = escaped.filter(|c| is_refused(*c)) {
                        return Err(UnsafeText::Char(escaped));
                    }
                }
                // `\\`, `\"`, `\/`, or an invalid escape the parser refuses.
                _ => {}
            },
            c if is_refused(c) => return Err(UnsafeText::Char(c)),
            _ => {}
        }
        length += 1;
        if length > MAX_TEXT_CHARS {
            return Err(UnsafeText::TooLong);
        }
    }
    Ok(())
}

/// Where in a parsed JSON body the first refused character is, as the native API names a
/// field (`reference`, `items[0].name`), for the front-ends that name the field.
pub fn check_value(value: &serde_json::Value) -> Result<(), (String, UnsafeText)> {
    fn walk(value: &serde_json::Value, path: &str) -> Result<(), (String, UnsafeText)> {
        match value {
            serde_json::Value::String(text) => check_str(text).map_err(|refused| (path.to_owned(), refused)),
            serde_json::Value::Array(items) => items
                .iter()
                .enumerate()
                .try_for_each(|(i, item)| walk(item, &format!("{path}[{i}]"))),
            serde_json::Value::Object(map) => map.iter().try_for_each(|(key, item)| {
                let path = if path.is_empty() {
                    key.clone()
                } else {
                    format!("{path}.{key}")
                };
                check_str(key).map_err(|refused| (path.clone(), refused))?;
                walk(item, &path)
            }),
            serde_json::Value::Null | serde_json::Value::Bool(_) | serde_json::Value::Number(_) => Ok(()),
        }
    }
    walk(value, "")
}

/// The first query parameter (by name) whose name or value holds a refused character once
/// decoded.
pub fn check_query(query: &str) -> Result<(), (String, UnsafeText)> {
    // Decoded as the handlers' query extractors decode it (`+` as a space, `%XX` escapes).
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(query).unwrap_or_default();
    for (name, value) in pairs {
        check_str(&name).map_err(|refused| (name.clone(), refused))?;
        check_str(&value).map_err(|refused| (name, refused))?;
    }
    Ok(())
}

/// The first refused character in a request's path, once percent-decoded (a path parameter
/// reaches the handlers decoded); bytes that are not UTF-8 are left to the handlers to refuse.
pub fn check_uri(path: &str) -> Result<(), UnsafeText> {
    check_str(&percent_encoding::percent_decode_str(path).decode_utf8_lossy())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_percent_encoded_control_or_override_in_the_path_or_query_is_found() {
        assert_eq!(check_uri("/v1/cards/card_1?limit=5&cursor=abc%20d"), Ok(()));
        assert_eq!(check_uri("/v1/cards/card_%00"), Err(UnsafeText::Char('\0')));
        assert_eq!(
            check_uri("/giftcard/v1/giftcards?userId=a%0Ab"),
            Err(UnsafeText::Char('\n'))
        );
        assert_eq!(
            check_uri("/v1/cards?reference=%E2%80%AEx"),
            Err(UnsafeText::Char('\u{202e}'))
        );
        assert_eq!(check_uri("/v1/cards/100%"), Ok(()), "a lone % is no escape");
    }

    #[test]
    fn a_refused_character_is_named_by_its_field_or_its_query_parameter() {
        let body = serde_json::json!({"amount": 5, "items": [{"name": "ok"}, {"name": "a\u{202e}"}]});
        assert_eq!(
            check_value(&body),
            Err(("items[1].name".to_owned(), UnsafeText::Char('\u{202e}')))
        );
        assert_eq!(
            check_value(&serde_json::json!({"reference": "x\0"}))
                .unwrap_err()
                .0,
            "reference"
        );
        assert_eq!(
            check_query("limit=5&cursor=%00"),
            Err(("cursor".to_owned(), UnsafeText::Char('\0')))
        );
        assert_eq!(check_query("limit=5&cursor=a+b"), Ok(()));
    }

    #[test]
    fn plain_text_and_whitespace_between_tokens_pass() {
        for body in [
            "{}",
            "{\n  \"name\": \"Gift \\u00e9t\\u00e9 \\\"cards\\\" \\\\n \\/\",\r\n\t\"amount\": 5\n}",
            "{\"emoji\": \"\u{1F381}\", \"accent\": \"caf\u{e9}\"}",
        ] {
            assert_eq!(check_json(body.as_bytes()), Ok(()), "{body}");
        }
    }

    #[test]
    fn controls_and_bidirectional_overrides_are_found_escaped_or_raw() {
        for (body, found) in [
            ("{\"name\": \"a\\u0000b\"}", '\0'),
            ("{\"name\": \"a\\u001Fb\"}", '\u{1f}'),
            ("{\"name\": \"line\\nbreak\"}", '\n'),
            ("{\"name\": \"tab\\tbed\"}", '\t'),
            ("{\"name\": \"del\u{7f}\"}", '\u{7f}'),
            ("{\"name\": \"c1\u{85}\"}", '\u{85}'),
            ("{\"name\": \"\\u202Egnp.exe\"}", '\u{202e}'),
            ("{\"name\": \"\u{2066}isolate\"}", '\u{2066}'),
            ("{\"na\\u0000me\": \"key\"}", '\0'),
        ] {
            assert_eq!(
                check_json(body.as_bytes()),
                Err(UnsafeText::Char(found)),
                "{body}"
            );
        }
    }

    #[test]
    fn a_string_past_the_longest_text_is_refused_wherever_it_is() {
        let longest = "é".repeat(MAX_TEXT_CHARS);
        let longer = format!("{longest}x");
        assert_eq!(
            check_json(format!("{{\"name\": \"{longest}\"}}").as_bytes()),
            Ok(())
        );
        assert_eq!(
            check_json(format!("{{\"name\": \"{longer}\"}}").as_bytes()),
            Err(UnsafeText::TooLong)
        );
        assert_eq!(
            check_json(format!("{{\"{longer}\": 1}}").as_bytes()),
            Err(UnsafeText::TooLong),
            "a key too"
        );
        // An escape is one character; a quote escaped does not end the string.
        let escaped = "\\\"".repeat(MAX_TEXT_CHARS);
        assert_eq!(check_json(format!("{{\"q\": \"{escaped}\"}}").as_bytes()), Ok(()));
        assert_eq!(
            check_json(format!("{{\"q\": \"{escaped}\\u0041\"}}").as_bytes()),
            Err(UnsafeText::TooLong)
        );
        // Many short strings are fine.
        let many = vec!["a".repeat(100); 100];
        assert_eq!(
            check_json(serde_json::to_string(&many).unwrap().as_bytes()),
            Ok(())
        );
        assert_eq!(
            check_value(&serde_json::json!({"items": [{"note": longer}]})),
            Err(("items[0].note".to_owned(), UnsafeText::TooLong))
        );
        assert_eq!(
            check_query(&format!("cursor={}", "a".repeat(MAX_TEXT_CHARS + 1))),
            Err(("cursor".to_owned(), UnsafeText::TooLong))
        );
    }

    #[test]
    fn an_escaped_backslash_before_n_is_no_newline() {
        assert_eq!(check_json(br#"{"path": "C:\\new"}"#), Ok(()));
    }

    #[test]
    fn the_refusal_names_the_character() {
        assert_eq!(
            UnsafeText::Char('\0').to_string(),
            "Text may not contain control or bidirectional formatting characters; found U+0000."
        );
    }
}
