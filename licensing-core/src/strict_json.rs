//! Strict JSON: duplicate object keys and nesting deeper than a cap refused, either by a
//! pre-pass before typed parsing ([`check_object`], [`parse_object`]) or inside the typed
//! parsing itself, in one pass ([`from_slice`]).
//!
//! Written by hand because serde_json silently keeps the last of duplicate keys and offers no
//! depth limit below its fixed 128; the pre-pass walks the document once without building it,
//! and [`from_slice`] wraps serde_json's deserializer the way serde_path_to_error does.

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

/// Parses `bytes` as a `T` in one pass, refusing everything [`check_object`] refuses: a
/// document that is not one JSON object, a duplicate key at any level (also inside members `T`
/// ignores, which are walked, not skipped), nesting deeper than [`MAX_DEPTH`], trailing data.
///
/// Whatever it accepts, [`check_object`] followed by `serde_json::from_slice::<T>` accepts too,
/// with the same value. It refuses a little more than that pair (an enum in externally tagged
/// form, an object of more than [`MAX_KEYS`] members, serde_json's `RawValue`), so a caller
/// that must accept exactly what the two passes accept, or name the problem the way they do,
/// falls back to them when this refuses: genuine documents then cost one pass, refused ones
/// three.
pub fn from_slice<'de, T: serde::Deserialize<'de>>(bytes: &'de [u8]) -> Result<T, String> {
    // The whole document is checked to be UTF-8 once, then read as text: serde_json's slice
    // reader would check every string apart (a call per string, ≈ 14 % of a license's parse).
    // Same acceptance: outside strings, JSON is ASCII.
    let text = std::str::from_utf8(bytes).map_err(|e| e.to_string())?;
    // Room for every key of a typical license's nesting chain at once: no regrowth.
    let keys = std::cell::RefCell::new(Vec::with_capacity(MAX_KEYS));
    let mut de = serde_json::Deserializer::from_str(text);
    let value = T::deserialize(one_pass::Strict {
        inner: &mut de,
        depth: 1,
        keys: &keys,
    })
    .map_err(|e| e.to_string())?;
    de.end().map_err(|e| e.to_string())?;
    Ok(value)
}

/// Most members of one object [`from_slice`] reads: its duplicate check is a linear scan, so
/// a larger object is refused there (and left to [`check_object`], which hashes).
pub const MAX_KEYS: usize = 32;

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

/// The deserializer wrapper behind [`from_slice`]: every value it hands out is wrapped again,
/// so each object and array of the document passes through [`one_pass::Checked`], which counts
/// the depth and, for objects, remembers the keys.
mod one_pass {
    use std::borrow::Cow;
    use std::cell::RefCell;
    use std::fmt;

    use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};

    use super::{MAX_DEPTH, MAX_KEYS};

    /// The keys of the objects being read, outermost first: each object's keys sit above its
    /// parent's and are dropped when it ends, so one vector serves the whole document.
    pub(super) type Keys<'de> = RefCell<Vec<Cow<'de, str>>>;

    /// A value of the document at `depth` (the top-level object is 1).
    pub(super) struct Strict<'k, 'de, D> {
        pub(super) inner: D,
        pub(super) depth: usize,
        pub(super) keys: &'k Keys<'de>,
    }

    impl<'k, 'de, D> Strict<'k, 'de, D> {
        fn wrap<V>(&self, visitor: V) -> Checked<'k, 'de, V> {
            Checked {
                inner: visitor,
                depth: self.depth,
                keys: self.keys,
            }
        }
    }

    macro_rules! forward {
        ($($method:ident($($arg:ident: $ty:ty),*);)*) => {$(
            fn $method<V: Visitor<'de>>(self, $($arg: $ty,)* visitor: V) -> Result<V::Value, D::Error> {
                let visitor = self.wrap(visitor);
                self.inner.$method($($arg,)* visitor)
            }
        )*};
    }

    impl<'k, 'de, D: Deserializer<'de>> Deserializer<'de> for Strict<'k, 'de, D> {
        type Error = D::Error;

        forward! {
            deserialize_any();
            deserialize_bool();
            deserialize_i8();
            deserialize_i16();
            deserialize_i32();
            deserialize_i64();
            deserialize_i128();
            deserialize_u8();
            deserialize_u16();
            deserialize_u32();
            deserialize_u64();
            deserialize_u128();
            deserialize_f32();
            deserialize_f64();
            deserialize_char();
            deserialize_str();
            deserialize_string();
            deserialize_bytes();
            deserialize_byte_buf();
            deserialize_option();
            deserialize_unit();
            deserialize_unit_struct(name: &'static str);
            deserialize_seq();
            deserialize_tuple(len: usize);
            deserialize_tuple_struct(name: &'static str, len: usize);
            deserialize_map();
            deserialize_struct(name: &'static str, fields: &'static [&'static str]);
            deserialize_identifier();
        }

        fn deserialize_newtype_struct<V: Visitor<'de>>(
            self,
            name: &'static str,
            visitor: V,
        ) -> Result<V::Value, D::Error> {
            // serde_json's `RawValue` takes its text without showing it to a visitor.
            if name.starts_with("$serde_json") {
                return Err(de::Error::custom(
                    "raw JSON values are not read in one pass",
                ));
            }
            let visitor = self.wrap(visitor);
            self.inner.deserialize_newtype_struct(name, visitor)
        }

        fn deserialize_enum<V: Visitor<'de>>(
            self,
            _: &'static str,
            _: &'static [&'static str],
            _: V,
        ) -> Result<V::Value, D::Error> {
            // The externally tagged form is an object serde_json reads without a `MapAccess`.
            Err(de::Error::custom("enums are not read in one pass"))
        }

        /// Ignored values are walked, not skipped, so their objects are checked too.
        fn deserialize_ignored_any<V: Visitor<'de>>(
            self,
            visitor: V,
        ) -> Result<V::Value, D::Error> {
            let visitor = self.wrap(visitor);
            self.inner.deserialize_any(visitor)
        }

        fn is_human_readable(&self) -> bool {
            self.inner.is_human_readable()
        }
    }

    /// A visitor of a value at `depth`: objects and arrays are checked before they are visited.
    pub(super) struct Checked<'k, 'de, V> {
        inner: V,
        depth: usize,
        keys: &'k Keys<'de>,
    }

    impl<V> Checked<'_, '_, V> {
        /// Scalars only below the top level, as [`super::check_object`].
        fn scalar<E: de::Error>(&self) -> Result<(), E> {
            if self.depth == 1 {
                Err(E::custom("expected a JSON object"))
            } else {
                Ok(())
            }
        }

        fn nest<E: de::Error>(&self) -> Result<(), E> {
            if self.depth > MAX_DEPTH {
                Err(E::custom(format!("nesting deeper than {MAX_DEPTH}")))
            } else {
                Ok(())
            }
        }
    }

    macro_rules! scalar {
        ($($method:ident($ty:ty);)*) => {$(
            fn $method<E: de::Error>(self, v: $ty) -> Result<V::Value, E> {
                self.scalar()?;
                self.inner.$method(v)
            }
        )*};
    }

    impl<'k, 'de, V: Visitor<'de>> Visitor<'de> for Checked<'k, 'de, V> {
        type Value = V::Value;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            self.inner.expecting(f)
        }

        scalar! {
            visit_bool(bool);
            visit_i8(i8);
            visit_i16(i16);
            visit_i32(i32);
            visit_i64(i64);
            visit_i128(i128);
            visit_u8(u8);
            visit_u16(u16);
            visit_u32(u32);
            visit_u64(u64);
            visit_u128(u128);
            visit_f32(f32);
            visit_f64(f64);
            visit_char(char);
            visit_str(&str);
            visit_borrowed_str(&'de str);
            visit_string(String);
            visit_bytes(&[u8]);
            visit_borrowed_bytes(&'de [u8]);
            visit_byte_buf(Vec<u8>);
        }

        fn visit_none<E: de::Error>(self) -> Result<V::Value, E> {
            self.scalar()?;
            self.inner.visit_none()
        }

        fn visit_unit<E: de::Error>(self) -> Result<V::Value, E> {
            self.scalar()?;
            self.inner.visit_unit()
        }

        fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<V::Value, D::Error> {
            self.scalar()?;
            self.inner.visit_some(Strict {
                inner: d,
                depth: self.depth,
                keys: self.keys,
            })
        }

        fn visit_newtype_struct<D: Deserializer<'de>>(self, d: D) -> Result<V::Value, D::Error> {
            self.inner.visit_newtype_struct(Strict {
                inner: d,
                depth: self.depth,
                keys: self.keys,
            })
        }

        fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<V::Value, A::Error> {
            self.scalar()?;
            self.nest()?;
            self.inner.visit_seq(Seq {
                inner: seq,
                depth: self.depth + 1,
                keys: self.keys,
            })
        }

        fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<V::Value, A::Error> {
            self.nest()?;
            let start = self.keys.borrow().len();
            let value = self.inner.visit_map(Map {
                inner: map,
                depth: self.depth + 1,
                keys: self.keys,
                start,
            })?;
            self.keys.borrow_mut().truncate(start);
            Ok(value)
        }

        fn visit_enum<A: de::EnumAccess<'de>>(self, _: A) -> Result<V::Value, A::Error> {
            Err(de::Error::custom("enums are not read in one pass"))
        }
    }

    /// The elements of an array, each at `depth`.
    struct Seq<'k, 'de, A> {
        inner: A,
        depth: usize,
        keys: &'k Keys<'de>,
    }

    impl<'de, A: SeqAccess<'de>> SeqAccess<'de> for Seq<'_, 'de, A> {
        type Error = A::Error;

        fn next_element_seed<T: DeserializeSeed<'de>>(
            &mut self,
            seed: T,
        ) -> Result<Option<T::Value>, A::Error> {
            self.inner.next_element_seed(Seed {
                inner: seed,
                depth: self.depth,
                keys: self.keys,
            })
        }

        fn size_hint(&self) -> Option<usize> {
            self.inner.size_hint()
        }
    }

    /// The members of an object, values at `depth`; its keys are `keys[start..]`.
    struct Map<'k, 'de, A> {
        inner: A,
        depth: usize,
        keys: &'k Keys<'de>,
        start: usize,
    }

    impl<'de, A: MapAccess<'de>> MapAccess<'de> for Map<'_, 'de, A> {
        type Error = A::Error;

        fn next_key_seed<K: DeserializeSeed<'de>>(
            &mut self,
            seed: K,
        ) -> Result<Option<K::Value>, A::Error> {
            let mut key = None;
            let value = self.inner.next_key_seed(KeySeed {
                inner: seed,
                key: &mut key,
            })?;
            if value.is_none() {
                return Ok(None);
            }
            let Some(key) = key else {
                return Err(de::Error::custom("an object key that is not a string"));
            };
            let mut keys = self.keys.borrow_mut();
            let own = keys.get(self.start..).unwrap_or_default();
            if own.iter().any(|seen| same_text(seen, &key)) {
                return Err(de::Error::custom(format!("duplicate key `{key}`")));
            }
            if own.len() >= MAX_KEYS {
                return Err(de::Error::custom(format!(
                    "more than {MAX_KEYS} members are not read in one pass"
                )));
            }
            keys.push(key);
            Ok(value)
        }

        fn next_value_seed<T: DeserializeSeed<'de>>(
            &mut self,
            seed: T,
        ) -> Result<T::Value, A::Error> {
            self.inner.next_value_seed(Seed {
                inner: seed,
                depth: self.depth,
                keys: self.keys,
            })
        }

        fn size_hint(&self) -> Option<usize> {
            self.inner.size_hint()
        }
    }

    /// `a == b`, compared inline: names are short and most pairs differ in length or in
    /// their first bytes, where a call to `memcmp` per pair (the slices' `==`) cost more than
    /// the comparison itself.
    fn same_text(a: &str, b: &str) -> bool {
        a.len() == b.len() && a.bytes().zip(b.bytes()).all(|(x, y)| x == y)
    }

    /// A value's seed, its deserializer wrapped at `depth`.
    struct Seed<'k, 'de, T> {
        inner: T,
        depth: usize,
        keys: &'k Keys<'de>,
    }

    impl<'de, T: DeserializeSeed<'de>> DeserializeSeed<'de> for Seed<'_, 'de, T> {
        type Value = T::Value;

        fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<T::Value, D::Error> {
            self.inner.deserialize(Strict {
                inner: d,
                depth: self.depth,
                keys: self.keys,
            })
        }
    }

    /// A key's seed: its visitor also records the key's text (unescaped) in `key`.
    struct KeySeed<'a, 'de, K> {
        inner: K,
        key: &'a mut Option<Cow<'de, str>>,
    }

    impl<'de, K: DeserializeSeed<'de>> DeserializeSeed<'de> for KeySeed<'_, 'de, K> {
        type Value = K::Value;

        fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<K::Value, D::Error> {
            self.inner.deserialize(KeyDeserializer {
                inner: d,
                key: self.key,
            })
        }
    }

    /// serde_json's key deserializer, every request answered by [`KeyVisitor`].
    struct KeyDeserializer<'a, 'de, D> {
        inner: D,
        key: &'a mut Option<Cow<'de, str>>,
    }

    macro_rules! forward_key {
        ($($method:ident($($arg:ident: $ty:ty),*);)*) => {$(
            fn $method<V: Visitor<'de>>(self, $($arg: $ty,)* visitor: V) -> Result<V::Value, D::Error> {
                self.inner.$method($($arg,)* KeyVisitor { inner: visitor, key: self.key })
            }
        )*};
    }

    impl<'de, D: Deserializer<'de>> Deserializer<'de> for KeyDeserializer<'_, 'de, D> {
        type Error = D::Error;

        forward_key! {
            deserialize_any();
            deserialize_bool();
            deserialize_i8();
            deserialize_i16();
            deserialize_i32();
            deserialize_i64();
            deserialize_i128();
            deserialize_u8();
            deserialize_u16();
            deserialize_u32();
            deserialize_u64();
            deserialize_u128();
            deserialize_f32();
            deserialize_f64();
            deserialize_char();
            deserialize_str();
            deserialize_string();
            deserialize_bytes();
            deserialize_byte_buf();
            deserialize_option();
            deserialize_unit();
            deserialize_unit_struct(name: &'static str);
            deserialize_newtype_struct(name: &'static str);
            deserialize_seq();
            deserialize_tuple(len: usize);
            deserialize_tuple_struct(name: &'static str, len: usize);
            deserialize_map();
            deserialize_struct(name: &'static str, fields: &'static [&'static str]);
            deserialize_enum(name: &'static str, variants: &'static [&'static str]);
            deserialize_identifier();
            deserialize_ignored_any();
        }

        fn is_human_readable(&self) -> bool {
            self.inner.is_human_readable()
        }
    }

    /// Records a string key, then hands it on. Any other visit records nothing, so the key
    /// counts as "not a string" and the document is refused.
    struct KeyVisitor<'a, 'de, V> {
        inner: V,
        key: &'a mut Option<Cow<'de, str>>,
    }

    impl<'de, V: Visitor<'de>> Visitor<'de> for KeyVisitor<'_, 'de, V> {
        type Value = V::Value;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            self.inner.expecting(f)
        }

        fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<V::Value, E> {
            *self.key = Some(Cow::Borrowed(v));
            self.inner.visit_borrowed_str(v)
        }

        fn visit_str<E: de::Error>(self, v: &str) -> Result<V::Value, E> {
            *self.key = Some(Cow::Owned(v.to_owned()));
            self.inner.visit_str(v)
        }

        fn visit_string<E: de::Error>(self, v: String) -> Result<V::Value, E> {
            *self.key = Some(Cow::Owned(v.clone()));
            self.inner.visit_string(v)
        }
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

    /// What the two passes (pre-pass, then serde_json) make of `json` as a `T`.
    fn two_passes<T: serde::de::DeserializeOwned>(json: &str) -> Option<T> {
        check_object(json.as_bytes()).ok()?;
        serde_json::from_str(json).ok()
    }

    /// Documents on each side of every rule, read as a `Value` (every member visited) and as
    /// a struct that ignores all but one member (the rest walked through `IgnoredAny`).
    fn corpus() -> Vec<String> {
        let nested = |n: usize| format!("{}{}", "{\"a\":".repeat(n) + "{}", "}".repeat(n));
        let mut docs: Vec<String> = [
            r#"{"a":1,"b":{"c":[1,2,{"d":null}]}}"#,
            r#"{"a":1,"a":2}"#,
            r#"{"a":1,"\u0061":2}"#,
            r#"{"x":{"a":1,"a":2}}"#,
            r#"{"x":[{"a":1,"\u0061":2}]}"#,
            r#"{"x":[[{"k":{"a":1,"a":[]}}]]}"#,
            r#"{"x":{"a":1},"y":{"a":1},"x2":[{"a":1},{"a":1}]}"#,
            r#"{"x":{"a":{"b":1}},"a":{"b":2}}"#,
            r#"{"a":"\ud800"}"#,
            r#"{"a":"\u00e9","\u00e9":1}"#,
            "[]",
            "[{}]",
            "1",
            "\"s\"",
            "null",
            "{} {}",
            "{}x",
            "{} \n",
            "",
            "{",
            r#"{"a":1,}"#,
        ]
        .into_iter()
        .map(str::to_owned)
        .collect();
        for n in [MAX_DEPTH - 2, MAX_DEPTH - 1, MAX_DEPTH, MAX_DEPTH + 1] {
            docs.push(nested(n));
            docs.push(format!("{{\"a\":{}{}}}", "[".repeat(n), "]".repeat(n)));
            docs.push(format!("{{\"ignored\":{}, \"x\":1}}", nested(n)));
        }
        for n in [MAX_KEYS - 1, MAX_KEYS, MAX_KEYS + 1] {
            let members: Vec<String> = (0..n).map(|i| format!("\"k{i}\":{i}")).collect();
            docs.push(format!("{{{}}}", members.join(",")));
            docs.push(format!("{{{},\"k0\":0}}", members.join(",")));
        }
        docs
    }

    /// One pass accepts only what the two passes accept, with the same value, and refuses
    /// no more than the documented extras (here: objects over [`MAX_KEYS`] members).
    #[test]
    fn one_pass_accepts_what_the_two_passes_accept() {
        #[derive(Debug, PartialEq, serde::Deserialize)]
        struct OneMember {
            #[serde(default)]
            x: Option<i64>,
        }
        let mut accepted = 0;
        for doc in corpus() {
            let bytes = doc.as_bytes();
            let one: Option<serde_json::Value> = from_slice(bytes).ok();
            let two: Option<serde_json::Value> = two_passes(&doc);
            let members = two
                .as_ref()
                .and_then(|v| v.as_object())
                .map_or(0, |o| o.len());
            if members <= MAX_KEYS {
                assert_eq!(one, two, "as a Value: {doc}");
            } else {
                assert!(one.is_none() && two.is_some(), "{doc}");
            }
            let one: Option<OneMember> = from_slice(bytes).ok();
            let two: Option<OneMember> = two_passes(&doc);
            if members <= MAX_KEYS {
                assert_eq!(one, two, "as a struct: {doc}");
            }
            accepted += usize::from(one.is_some());
        }
        assert!(
            accepted >= 8,
            "the corpus accepts too little to compare: {accepted}"
        );
    }

    /// A member a struct does not name is walked, not skipped: its duplicates and its depth
    /// are refused as everywhere else.
    #[test]
    fn ignored_members_are_still_checked() {
        #[derive(serde::Deserialize)]
        struct Nothing {}
        assert!(from_slice::<Nothing>(br#"{"x":{"a":1,"b":[{"c":1}]}}"#).is_ok());
        assert!(from_slice::<Nothing>(br#"{"x":{"a":1,"a":2}}"#).is_err());
        assert!(from_slice::<Nothing>(br#"{"x":1,"x":1}"#).is_err());
        let deep = format!(
            "{{\"x\":{}{}}}",
            "[".repeat(MAX_DEPTH),
            "]".repeat(MAX_DEPTH)
        );
        assert!(from_slice::<Nothing>(deep.as_bytes()).is_err());
        assert!(from_slice::<Nothing>(b"[]").is_err());
        assert!(from_slice::<Option<Nothing>>(b"null").is_err());
    }

    /// The one pass checks the whole document's UTF-8 before reading it as text: invalid
    /// bytes anywhere (a value, a name, an ignored member, around the object) are refused.
    #[test]
    fn one_pass_refuses_invalid_utf8_anywhere() {
        #[derive(Debug, serde::Deserialize)]
        struct OneMember {
            #[serde(default)]
            #[allow(dead_code)]
            x: Option<String>,
        }
        for bad in [
            &b"{\"x\":\"a\xffb\"}"[..],
            b"{\"x\":\"\xc3\"}",
            b"{\"\xff\":1}",
            b"{\"ignored\":[\"\xed\xa0\x80\"],\"x\":\"a\"}",
            b"{\"x\":\"a\"}\xff",
        ] {
            let text = String::from_utf8_lossy(bad);
            assert!(check_object(bad).is_err(), "two passes: {text}");
            assert!(from_slice::<OneMember>(bad).is_err(), "as a struct: {text}");
            assert!(
                from_slice::<serde_json::Value>(bad).is_err(),
                "as a Value: {text}"
            );
        }
        let good = "{\"x\":\"Ærø 東京 \u{1F600}\",\"\u{e9}\":[\"\u{10FFFF}\"]}";
        assert_eq!(
            from_slice::<serde_json::Value>(good.as_bytes()).ok(),
            serde_json::from_str::<serde_json::Value>(good).ok()
        );
        assert!(from_slice::<OneMember>(good.as_bytes()).is_ok());
    }

    /// Names that differ only in their last byte, or only in length, are not repeats; the
    /// same name, escaped or not, is.
    #[test]
    fn one_pass_tells_names_apart_byte_by_byte() {
        for (doc, accepted) in [
            (r#"{"export.pdf":1,"export.pdg":2}"#, true),
            (r#"{"exp":1,"ex":2,"e":3,"":4}"#, true),
            (r#"{"é":1,"è":2}"#, true),
            (r#"{"export.pdf":1,"export.pdf":2}"#, false),
            (r#"{"":1,"":2}"#, false),
            (r#"{"é":1,"\u00e9":2}"#, false),
            (r#"{"x":{"k1":1,"k2":2,"k1":3}}"#, false),
        ] {
            let one = from_slice::<serde_json::Value>(doc.as_bytes());
            assert_eq!(one.is_ok(), accepted, "{doc}");
            assert_eq!(check_object(doc.as_bytes()).is_ok(), accepted, "{doc}");
        }
    }

    #[test]
    fn rejects_invalid_utf8_and_lone_surrogates() {
        assert!(check_object(b"{\"a\":\"\xff\"}").is_err());
        assert!(check_object(br#"{"a":"\ud800"}"#).is_err());
    }
}
