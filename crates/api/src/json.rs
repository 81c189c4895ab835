//! Request bodies read strictly: a JSON object that names the same key twice is refused on
//! every front-end, since readers disagree on which value counts (serde's typed structs refuse
//! it, a `Value` keeps the last, other parsers the first) and a request that means two things
//! to two readers must mean nothing. Otherwise the same `serde_json::Value` as
//! `serde_json::from_slice` gives, except that arrays and objects may nest at most
//! [`MAX_NESTING`] deep: a front-end echoes some request objects inside its answer a few levels
//! further down, and that answer must still be JSON its client's parser reads (serde_json and
//! many others stop at 128 levels).

use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

/// How deep arrays and objects may nest in a request body. A Terminal API payment's
/// `EntryMode` list, among the deepest fields a front-end reads, is 7 levels down; 64 leaves
/// room below serde_json's own limit of 128 for the levels an answer adds around what it echoes.
pub(crate) const MAX_NESTING: usize = 64;

/// A JSON body with no object that repeats a key and nothing nested deeper than
/// [`MAX_NESTING`].
pub(crate) fn from_slice(bytes: &[u8]) -> serde_json::Result<Value> {
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let value = Strict { depth: 0 }.deserialize(&mut deserializer)?;
    deserializer.end()?;
    Ok(value)
}

/// Reads one value found `depth` arrays and objects down.
#[derive(Clone, Copy)]
struct Strict {
    depth: usize,
}

impl Strict {
    /// The reader of what a container at this depth holds, or the refusal past the limit.
    fn inner<E: de::Error>(self) -> Result<Self, E> {
        if self.depth >= MAX_NESTING {
            return Err(E::custom(format_args!(
                "arrays and objects nest more than {MAX_NESTING} levels deep"
            )));
        }
        Ok(Self {
            depth: self.depth + 1,
        })
    }
}

impl<'de> DeserializeSeed<'de> for Strict {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Strict {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E>(self, value: bool) -> Result<Value, E> {
        Ok(Value::Bool(value))
    }

    fn visit_i64<E>(self, value: i64) -> Result<Value, E> {
        Ok(Value::from(value))
    }

    fn visit_u64<E>(self, value: u64) -> Result<Value, E> {
        Ok(Value::from(value))
    }

    fn visit_f64<E>(self, value: f64) -> Result<Value, E> {
        Ok(Value::from(value))
    }

    fn visit_str<E>(self, value: &str) -> Result<Value, E> {
        Ok(Value::String(value.to_owned()))
    }

    fn visit_string<E>(self, value: String) -> Result<Value, E> {
        Ok(Value::String(value))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let inner = self.inner()?;
        let mut items = Vec::new();
        while let Some(item) = seq.next_element_seed(inner)? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let inner = self.inner()?;
        let mut object = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            let value = map.next_value_seed(inner)?;
            if object.contains_key(&key) {
                return Err(de::Error::custom(format_args!("the key `{key}` appears twice")));
            }
            object.insert(key, value);
        }
        Ok(Value::Object(object))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_body_reads_as_serde_json_reads_it() {
        let body = br#"{"amount": 5, "big": 18446744073709551615, "neg": -3, "f": 1.5, "list": [null, true, "x", {"a": {}}]}"#;
        assert_eq!(
            from_slice(body).unwrap(),
            serde_json::from_slice::<Value>(body).unwrap()
        );
    }

    #[test]
    fn a_key_given_twice_is_refused_at_any_depth() {
        for body in [
            r#"{"amount": 5, "amount": 7}"#,
            r#"{"card": {"id": "a", "id": "b"}}"#,
            r#"[{"x": 1, "x": 1}]"#,
        ] {
            let error = from_slice(body.as_bytes()).expect_err(body);
            assert!(error.to_string().contains("appears twice"), "{body}: {error}");
        }
        assert!(
            from_slice(br#"{"a": {"x": 1}, "b": {"x": 1}}"#).is_ok(),
            "the same key in two objects"
        );
    }

    #[test]
    fn arrays_and_objects_may_nest_sixty_four_levels_deep_and_no_further() {
        let arrays = |n: usize| format!("{}{}", "[".repeat(n), "]".repeat(n));
        let objects = |n: usize| format!("{}1{}", "{\"a\":".repeat(n), "}".repeat(n));
        for body in [arrays(MAX_NESTING), objects(MAX_NESTING)] {
            assert!(from_slice(body.as_bytes()).is_ok(), "{body}");
        }
        for body in [arrays(MAX_NESTING + 1), objects(MAX_NESTING + 1)] {
            let error = from_slice(body.as_bytes()).expect_err(&body);
            assert!(error.to_string().contains("nest more than 64"), "{body}: {error}");
        }
    }

    #[test]
    fn text_after_the_value_is_refused() {
        assert!(from_slice(b"{} {}").is_err());
        assert!(from_slice(b" {} \n").is_ok());
    }
}
