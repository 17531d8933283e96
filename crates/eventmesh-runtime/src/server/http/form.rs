//! Request fields with case-insensitive keys: old and new Apache EventMesh clients spell form
//! fields differently (`consumerGroup` / `consumergroup`, `uniqueId` / `uniqueid`).

use std::collections::HashMap;

use serde_json::Value;

/// Fields of a form (or of a JSON object), by lower-cased key. The first value of a key wins.
#[derive(Clone, Debug, Default)]
pub(crate) struct Fields {
    map: HashMap<String, String>,
}

/// A field that is missing or malformed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub(crate) enum FieldError {
    /// A required field is missing or blank.
    #[error("field `{0}` is required")]
    Missing(&'static str),
    /// A field's value is malformed.
    #[error("field `{name}` is invalid: {reason}")]
    Invalid {
        /// The field.
        name: &'static str,
        /// What is wrong.
        reason: String,
    },
}

impl FieldError {
    pub(crate) fn invalid(name: &'static str, reason: impl Into<String>) -> Self {
        FieldError::Invalid {
            name,
            reason: reason.into(),
        }
    }
}

impl Fields {
    /// The fields of an `application/x-www-form-urlencoded` body or query string.
    pub(crate) fn from_urlencoded(bytes: &[u8]) -> Self {
        let mut map = HashMap::new();
        for (k, v) in form_urlencoded::parse(bytes) {
            map.entry(k.to_ascii_lowercase())
                .or_insert_with(|| v.into_owned());
        }
        Fields { map }
    }

    /// Fields from (name, value) pairs, a `multipart/form-data` body's for instance.
    pub(crate) fn from_pairs(pairs: impl IntoIterator<Item = (String, String)>) -> Self {
        let mut map = HashMap::new();
        for (k, v) in pairs {
            map.entry(k.to_ascii_lowercase()).or_insert(v);
        }
        Fields { map }
    }

    /// The members of a JSON object: strings as they are, other values as their JSON text
    /// (`null` is absent).
    pub(crate) fn from_json_object(obj: &serde_json::Map<String, Value>) -> Self {
        let mut map = HashMap::new();
        for (k, v) in obj {
            let v = match v {
                Value::Null => continue,
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            map.entry(k.to_ascii_lowercase()).or_insert(v);
        }
        Fields { map }
    }

    /// Adds the fields of `other` that this one lacks.
    pub(crate) fn merge(&mut self, other: Fields) {
        for (k, v) in other.map {
            self.map.entry(k).or_insert(v);
        }
    }

    /// A field by any spelling of its name; blank values count as absent.
    pub(crate) fn get(&self, name: &str) -> Option<&str> {
        self.map
            .get(&name.to_ascii_lowercase())
            .map(String::as_str)
            .filter(|v| !v.trim().is_empty())
    }

    /// A required field.
    pub(crate) fn required(&self, name: &'static str) -> Result<&str, FieldError> {
        self.get(name).ok_or(FieldError::Missing(name))
    }

    /// An optional JSON field (`extFields`, `topic` lists).
    pub(crate) fn json(&self, name: &'static str) -> Result<Option<Value>, FieldError> {
        match self.get(name) {
            None => Ok(None),
            Some(text) => serde_json::from_str(text)
                .map(Some)
                .map_err(|e| FieldError::invalid(name, format!("not JSON: {e}"))),
        }
    }

    /// An optional non-negative integer field.
    pub(crate) fn u64(&self, name: &'static str) -> Result<Option<u64>, FieldError> {
        match self.get(name) {
            None => Ok(None),
            Some(text) => {
                text.trim().parse::<u64>().map(Some).map_err(|_| {
                    FieldError::invalid(name, format!("`{text}` is not a whole number"))
                })
            }
        }
    }
}

/// The `extFields` JSON map as string pairs (non-string values as their JSON text).
pub(crate) fn ext_fields(fields: &Fields) -> Result<Vec<(String, String)>, FieldError> {
    match fields.json("extFields")? {
        None => Ok(Vec::new()),
        Some(Value::Object(map)) => Ok(map
            .into_iter()
            .filter_map(|(k, v)| match v {
                Value::Null => None,
                Value::String(s) => Some((k, s)),
                other => Some((k, other.to_string())),
            })
            .collect()),
        Some(_) => Err(FieldError::invalid("extFields", "must be a JSON object")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_case_insensitive_and_blank_is_absent() {
        let f = Fields::from_urlencoded(b"consumerGroup=g&uniqueId=u&TOPIC=t&blank=%20");
        assert_eq!(f.get("consumergroup"), Some("g"));
        assert_eq!(f.get("uniqueid"), Some("u"));
        assert_eq!(f.required("topic"), Ok("t"));
        assert_eq!(f.get("blank"), None);
        assert_eq!(f.required("url"), Err(FieldError::Missing("url")));
    }

    #[test]
    fn json_fields() {
        let f = Fields::from_urlencoded(b"extFields=%7B%22a%22%3A1%2C%22b%22%3A%22x%22%7D&bad=%7B");
        let mut ext = ext_fields(&f).unwrap();
        ext.sort();
        assert_eq!(
            ext,
            vec![("a".into(), "1".into()), ("b".into(), "x".into())]
        );
        assert!(f.json("bad").is_err());
    }
}
