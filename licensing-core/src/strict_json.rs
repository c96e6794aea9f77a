//! Strict JSON: a pre-pass that rejects duplicate object keys and nesting deeper than a cap,
//! then typed parsing by serde_json.
//!
//! Written by hand because serde_json silently keeps the last of duplicate keys and offers no
//! depth limit below its fixed 128; this visitor walks the document once without building it.

use std::borrow::Cow;
use std::collections::HashSet;
use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};

/// Maximum nesting of arrays and objects in a header or payload (the top-level object is 1).
pub const MAX_DEPTH: usize = 16;

/// Checks that `bytes` is one JSON object with no duplicate keys at any level and nesting of
/// at most [`MAX_DEPTH`]. serde_json itself rejects invalid UTF-8, lone surrogates and
/// trailing characters.
pub fn check_object(bytes: &[u8]) -> Result<(), String> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    Checker {
        depth: 1,
        top_level: true,
    }
    .deserialize(&mut de)
    .map_err(|e| e.to_string())?;
    de.end().map_err(|e| e.to_string())
}

/// Parses `bytes` as one strict JSON object (see [`check_object`]).
pub fn parse_object(bytes: &[u8]) -> Result<serde_json::Map<String, serde_json::Value>, String> {
    check_object(bytes)?;
    serde_json::from_slice(bytes).map_err(|e| e.to_string())
}

struct Checker {
    depth: usize,
    top_level: bool,
}

impl<'de> DeserializeSeed<'de> for Checker {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl Checker {
    fn child(&self) -> Checker {
        Checker {
            depth: self.depth + 1,
            top_level: false,
        }
    }
    fn scalar<E: de::Error>(&self) -> Result<(), E> {
        if self.top_level {
            Err(E::custom("expected a JSON object"))
        } else {
            Ok(())
        }
    }
}

impl<'de> Visitor<'de> for Checker {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<(), E> {
        self.scalar()
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<(), E> {
        self.scalar()
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<(), E> {
        self.scalar()
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<(), E> {
        self.scalar()
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<(), E> {
        self.scalar()
    }
    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        self.scalar()
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        if self.top_level {
            return Err(de::Error::custom("expected a JSON object"));
        }
        if self.depth > MAX_DEPTH {
            return Err(de::Error::custom(format!(
                "nesting deeper than {MAX_DEPTH}"
            )));
        }
        while seq.next_element_seed(self.child())?.is_some() {}
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        if self.depth > MAX_DEPTH {
            return Err(de::Error::custom(format!(
                "nesting deeper than {MAX_DEPTH}"
            )));
        }
        // Small objects (every real license object) scan a vector; past LINEAR_MAX keys a hash
        // set keeps a hostile 64 KiB header from making the check quadratic.
        const LINEAR_MAX: usize = 32;
        let mut seen: Vec<Cow<'de, str>> = Vec::new();
        let mut many: Option<HashSet<Cow<'de, str>>> = None;
        while let Some(key) = map.next_key_seed(KeySeed)? {
            let duplicate = match &many {
                Some(set) => set.contains(&key),
                None => seen.contains(&key),
            };
            if duplicate {
                return Err(de::Error::custom(format!("duplicate key `{key}`")));
            }
            map.next_value_seed(self.child())?;
            match &mut many {
                Some(set) => {
                    set.insert(key);
                }
                None if seen.len() < LINEAR_MAX => seen.push(key),
                None => {
                    let mut set: HashSet<Cow<'de, str>> = seen.drain(..).collect();
                    set.insert(key);
                    many = Some(set);
                }
            }
        }
        Ok(())
    }
}

/// Reads an object key, borrowing from the input when it has no escapes.
struct KeySeed;

impl<'de> DeserializeSeed<'de> for KeySeed {
    type Value = Cow<'de, str>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for KeySeed {
    type Value = Cow<'de, str>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string key")
    }
    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Cow::Borrowed(v))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Cow::Owned(v.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_plain_objects() {
        assert!(check_object(br#"{"a":1,"b":{"c":[1,2,{"d":null}]}}"#).is_ok());
    }

    #[test]
    fn rejects_duplicates_at_any_level() {
        assert!(check_object(br#"{"a":1,"a":2}"#).is_err());
        assert!(check_object(br#"{"x":{"a":1,"a":2}}"#).is_err());
        assert!(check_object(br#"{"x":[{"a":1,"\u0061":2}]}"#).is_err());
    }

    #[test]
    fn rejects_non_objects_and_trailing_data() {
        for bad in [
            &b"[]"[..],
            b"1",
            b"\"s\"",
            b"null",
            b"{} {}",
            b"{}x",
            b"",
            b"{",
        ] {
            assert!(
                check_object(bad).is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn depth_cap_is_exact() {
        let ok = format!(
            "{}{}",
            "{\"a\":".repeat(MAX_DEPTH - 1) + "{}",
            "}".repeat(MAX_DEPTH - 1)
        );
        assert!(check_object(ok.as_bytes()).is_ok());
        let deep = format!(
            "{}{}",
            "{\"a\":".repeat(MAX_DEPTH) + "{}",
            "}".repeat(MAX_DEPTH)
        );
        assert!(check_object(deep.as_bytes()).is_err());
        let arrays = format!(
            "{{\"a\":{}{}}}",
            "[".repeat(MAX_DEPTH),
            "]".repeat(MAX_DEPTH)
        );
        assert!(check_object(arrays.as_bytes()).is_err());
    }

    #[test]
    fn rejects_invalid_utf8_and_lone_surrogates() {
        assert!(check_object(b"{\"a\":\"\xff\"}").is_err());
        assert!(check_object(br#"{"a":"\ud800"}"#).is_err());
    }
}
