//! Lenient JSON field readers matching what Jackson (the Java clients' and server's JSON library)
//! accepts by default: scalars coerced between numbers and strings, `null` for a primitive `int`
//! read as 0.

use std::collections::BTreeMap;
use std::fmt;

use serde::de::{self, Deserializer, MapAccess, Visitor};

/// Parses a JSON object into `T`. serde's derived structs also accept a JSON array (fields by
/// position), which no client sends and Jackson refuses; this refuses it too.
pub(crate) fn object_from_slice<'a, T: serde::Deserialize<'a>>(
    bytes: &'a [u8],
) -> Result<T, serde_json::Error> {
    match bytes.trim_ascii_start().first() {
        Some(b'{') => serde_json::from_slice(bytes),
        // Report bad JSON as such; JSON of another shape as a type error.
        _ => match serde_json::from_slice::<serde::de::IgnoredAny>(bytes) {
            Err(e) => Err(e),
            Ok(_) => Err(<serde_json::Error as de::Error>::custom(
                "expected a JSON object",
            )),
        },
    }
}

/// An `int` field: a JSON integer, an integral float, a numeric string or `null` (0).
pub(crate) fn lenient_i32<'de, D: Deserializer<'de>>(d: D) -> Result<i32, D::Error> {
    struct V;
    impl Visitor<'_> for V {
        type Value = i32;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a 32-bit integer")
        }
        fn visit_i64<E: de::Error>(self, v: i64) -> Result<i32, E> {
            i32::try_from(v)
                .map_err(|_| E::custom(format!("{v} is out of range for a 32-bit integer")))
        }
        fn visit_u64<E: de::Error>(self, v: u64) -> Result<i32, E> {
            i32::try_from(v)
                .map_err(|_| E::custom(format!("{v} is out of range for a 32-bit integer")))
        }
        fn visit_f64<E: de::Error>(self, v: f64) -> Result<i32, E> {
            #[allow(clippy::cast_possible_truncation)]
            if v.fract() == 0.0 && v >= f64::from(i32::MIN) && v <= f64::from(i32::MAX) {
                Ok(v as i32)
            } else {
                Err(E::custom(format!("{v} is not a 32-bit integer")))
            }
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<i32, E> {
            let t = v.trim();
            if t.is_empty() {
                return Ok(0);
            }
            t.parse()
                .map_err(|_| E::custom(format!("{v:?} is not a 32-bit integer")))
        }
        fn visit_unit<E: de::Error>(self) -> Result<i32, E> {
            Ok(0)
        }
        fn visit_none<E: de::Error>(self) -> Result<i32, E> {
            Ok(0)
        }
    }
    d.deserialize_any(V)
}

/// A `String` field that may also arrive as a number or boolean; `null` is `None`.
pub(crate) fn lenient_opt_string<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<Option<String>, D::Error> {
    d.deserialize_any(OptStringVisitor)
}

struct OptStringVisitor;

impl Visitor<'_> for OptStringVisitor {
    type Value = Option<String>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string")
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Some(v.to_owned()))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
        Ok(Some(v))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
        Ok(Some(v.to_string()))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
        Ok(Some(v.to_string()))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
        Ok(Some(v.to_string()))
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Self::Value, E> {
        Ok(Some(v.to_string()))
    }
    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
}

/// A `Map<String, String>`: scalar values coerced to strings, `null` values dropped, a `null`
/// map read as empty.
pub(crate) fn lenient_string_map<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<BTreeMap<String, String>, D::Error> {
    struct Entry(Option<String>);
    impl<'de> de::Deserialize<'de> for Entry {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            d.deserialize_any(OptStringVisitor).map(Entry)
        }
    }
    struct V;
    impl<'de> Visitor<'de> for V {
        type Value = BTreeMap<String, String>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("an object of strings")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            let mut out = BTreeMap::new();
            while let Some((k, Entry(v))) = map.next_entry::<String, Entry>()? {
                if let Some(v) = v {
                    out.insert(k, v);
                }
            }
            Ok(out)
        }
        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(BTreeMap::new())
        }
        fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(BTreeMap::new())
        }
    }
    d.deserialize_any(V)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Deserialize, Debug, PartialEq)]
    struct T {
        #[serde(default, deserialize_with = "lenient_i32")]
        n: i32,
        #[serde(default, deserialize_with = "lenient_opt_string")]
        s: Option<String>,
        #[serde(default, deserialize_with = "lenient_string_map")]
        m: BTreeMap<String, String>,
    }

    #[test]
    fn coerces_like_jackson() {
        let t: T =
            serde_json::from_str(r#"{"n":"42","s":7,"m":{"a":1,"b":true,"c":null,"d":"x"}}"#)
                .unwrap();
        assert_eq!(t.n, 42);
        assert_eq!(t.s.as_deref(), Some("7"));
        assert_eq!(t.m.len(), 3);
        assert_eq!(t.m["a"], "1");
        let t: T = serde_json::from_str(r#"{"n":null,"s":null,"m":null}"#).unwrap();
        assert_eq!(
            t,
            T {
                n: 0,
                s: None,
                m: BTreeMap::new()
            }
        );
        assert!(serde_json::from_str::<T>(r#"{"n":1.5}"#).is_err());
        assert!(serde_json::from_str::<T>(r#"{"n":4294967296}"#).is_err());
        assert!(serde_json::from_str::<T>(r#"{"m":{"a":[1]}}"#).is_err());
        assert_eq!(serde_json::from_str::<T>(r#"{"n":8.0}"#).unwrap().n, 8);
    }
}
