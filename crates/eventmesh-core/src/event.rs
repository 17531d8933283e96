//! The CloudEvents 1.0 event model.
//!
//! [`CloudEvent`] is the mesh's own compact representation (data as [`Bytes`], extensions in a
//! sorted map). It converts to and from the `cloudevents-sdk` crate's `Event` behind the
//! `cloudevents-sdk` feature; that type is not used on the hot path because it allocates a URL
//! and a `String` map per event.

use std::collections::BTreeMap;
use std::fmt;

use bytes::Bytes;
use chrono::{DateTime, Utc};

/// CloudEvents specification version of an event.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum SpecVersion {
    /// 0.3, still sent by old clients.
    V03,
    /// 1.0.
    #[default]
    V10,
}

impl SpecVersion {
    /// The attribute value as written on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            SpecVersion::V03 => "0.3",
            SpecVersion::V10 => "1.0",
        }
    }

    /// Parses `"1.0"` or `"0.3"`.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "1.0" => Some(SpecVersion::V10),
            "0.3" => Some(SpecVersion::V03),
            _ => None,
        }
    }
}

/// The value of an extension attribute (the CloudEvents type system as the SDKs carry it).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum ExtensionValue {
    /// A string (also used for URI, URI-reference and timestamp-typed extensions).
    String(String),
    /// A boolean.
    Boolean(bool),
    /// A signed integer (the spec restricts it to 32 bits; wider values are accepted on input).
    Integer(i64),
}

impl fmt::Display for ExtensionValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExtensionValue::String(s) => f.write_str(s),
            ExtensionValue::Boolean(b) => write!(f, "{b}"),
            ExtensionValue::Integer(i) => write!(f, "{i}"),
        }
    }
}

impl From<&str> for ExtensionValue {
    fn from(s: &str) -> Self {
        ExtensionValue::String(s.to_owned())
    }
}

impl From<String> for ExtensionValue {
    fn from(s: String) -> Self {
        ExtensionValue::String(s)
    }
}

/// A CloudEvent (specification 1.0, or 0.3 as sent by old clients).
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct CloudEvent {
    /// `id`: identifies the event together with `source`; chosen by the producer.
    pub id: String,
    /// `source`: a URI-reference naming the context the event happened in.
    pub source: String,
    /// `specversion`.
    pub spec_version: SpecVersion,
    /// `type`.
    pub ty: String,
    /// `subject`.
    pub subject: Option<String>,
    /// `time`.
    pub time: Option<DateTime<Utc>>,
    /// `datacontenttype`.
    pub data_content_type: Option<String>,
    /// `dataschema`.
    pub data_schema: Option<String>,
    /// `data`, as bytes whatever the content type.
    pub data: Option<Bytes>,
    /// Extension attributes, by lower-case name.
    pub extensions: BTreeMap<String, ExtensionValue>,
}

/// Why an event is not a valid CloudEvent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EventValidationError {
    /// A required attribute is missing or empty.
    #[error("required attribute `{0}` is missing or empty")]
    MissingAttribute(&'static str),
    /// An extension name breaks the naming rule (lower-case ASCII letters and digits, 1..=64).
    #[error("extension name `{0}` is invalid: use 1 to 64 lower-case ASCII letters or digits")]
    BadExtensionName(String),
    /// An extension uses the name of a context attribute.
    #[error("extension name `{0}` is reserved for a context attribute")]
    ReservedExtensionName(String),
    /// An attribute value is too long.
    #[error("attribute `{name}` is {len} bytes long; the limit is {limit}")]
    AttributeTooLong {
        /// The attribute.
        name: String,
        /// Its length.
        len: usize,
        /// The limit.
        limit: usize,
    },
}

/// Longest accepted value of a string attribute (extensions included).
pub const MAX_ATTRIBUTE_BYTES: usize = 64 * 1024;

const CONTEXT_ATTRIBUTES: [&str; 10] = [
    "id",
    "source",
    "specversion",
    "type",
    "subject",
    "time",
    "datacontenttype",
    "dataschema",
    "data",
    "data_base64",
];

/// Whether `name` is a legal extension attribute name.
pub fn is_valid_extension_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
}

impl CloudEvent {
    /// A 1.0 event with the required attributes set.
    pub fn new(id: impl Into<String>, source: impl Into<String>, ty: impl Into<String>) -> Self {
        CloudEvent {
            id: id.into(),
            source: source.into(),
            ty: ty.into(),
            ..Default::default()
        }
    }

    /// Sets `data` and `datacontenttype`.
    pub fn with_data(mut self, content_type: impl Into<String>, data: impl Into<Bytes>) -> Self {
        self.data_content_type = Some(content_type.into());
        self.data = Some(data.into());
        self
    }

    /// Sets one extension attribute.
    pub fn with_extension(
        mut self,
        name: impl Into<String>,
        value: impl Into<ExtensionValue>,
    ) -> Self {
        self.extensions.insert(name.into(), value.into());
        self
    }

    /// Checks the required attributes, extension names and attribute lengths.
    pub fn validate(&self) -> Result<(), EventValidationError> {
        if self.id.is_empty() {
            return Err(EventValidationError::MissingAttribute("id"));
        }
        if self.source.is_empty() {
            return Err(EventValidationError::MissingAttribute("source"));
        }
        if self.ty.is_empty() {
            return Err(EventValidationError::MissingAttribute("type"));
        }
        let strings = [
            ("id", Some(&self.id)),
            ("source", Some(&self.source)),
            ("type", Some(&self.ty)),
            ("subject", self.subject.as_ref()),
            ("datacontenttype", self.data_content_type.as_ref()),
            ("dataschema", self.data_schema.as_ref()),
        ];
        for (name, value) in strings {
            if let Some(v) = value {
                check_len(name, v)?;
            }
        }
        for (name, value) in &self.extensions {
            if CONTEXT_ATTRIBUTES.contains(&name.as_str()) {
                return Err(EventValidationError::ReservedExtensionName(name.clone()));
            }
            if !is_valid_extension_name(name) {
                return Err(EventValidationError::BadExtensionName(name.clone()));
            }
            if let ExtensionValue::String(s) = value {
                check_len(name, s)?;
            }
        }
        Ok(())
    }

    /// The value of an extension, if present.
    pub fn extension(&self, name: &str) -> Option<&ExtensionValue> {
        self.extensions.get(name)
    }

    /// The value of a string extension, if present and a string.
    pub fn extension_str(&self, name: &str) -> Option<&str> {
        match self.extensions.get(name) {
            Some(ExtensionValue::String(s)) => Some(s),
            _ => None,
        }
    }
}

fn check_len(name: &str, value: &str) -> Result<(), EventValidationError> {
    if value.len() > MAX_ATTRIBUTE_BYTES {
        return Err(EventValidationError::AttributeTooLong {
            name: name.to_owned(),
            len: value.len(),
            limit: MAX_ATTRIBUTE_BYTES,
        });
    }
    Ok(())
}

#[cfg(feature = "cloudevents-sdk")]
mod sdk_interop {
    //! Conversions to and from `cloudevents::Event`.
    use super::*;
    use cloudevents::event::{Data, ExtensionValue as SdkExt};
    use cloudevents::{AttributesReader, EventBuilder, EventBuilderV10};

    /// Why a `cloudevents::Event` could not be built from a [`CloudEvent`].
    #[derive(Debug, thiserror::Error)]
    #[error("cannot build a cloudevents-sdk event: {0}")]
    pub struct SdkConversionError(String);

    impl From<&cloudevents::Event> for CloudEvent {
        fn from(e: &cloudevents::Event) -> Self {
            let mut out = CloudEvent {
                id: e.id().to_owned(),
                source: e.source().to_string(),
                spec_version: match e.specversion() {
                    cloudevents::event::SpecVersion::V03 => SpecVersion::V03,
                    cloudevents::event::SpecVersion::V10 => SpecVersion::V10,
                },
                ty: e.ty().to_owned(),
                subject: e.subject().map(str::to_owned),
                time: e.time().copied(),
                data_content_type: e.datacontenttype().map(str::to_owned),
                data_schema: e.dataschema().map(|u| u.to_string()),
                data: match e.data() {
                    Some(Data::Binary(b)) => Some(Bytes::copy_from_slice(b)),
                    Some(Data::String(s)) => Some(Bytes::copy_from_slice(s.as_bytes())),
                    Some(Data::Json(j)) => Some(Bytes::from(j.to_string())),
                    None => None,
                },
                extensions: BTreeMap::new(),
            };
            for (name, value) in e.iter_extensions() {
                let v = match value {
                    SdkExt::String(s) => ExtensionValue::String(s.clone()),
                    SdkExt::Boolean(b) => ExtensionValue::Boolean(*b),
                    SdkExt::Integer(i) => ExtensionValue::Integer(*i),
                };
                out.extensions.insert(name.to_owned(), v);
            }
            out
        }
    }

    impl TryFrom<&CloudEvent> for cloudevents::Event {
        type Error = SdkConversionError;

        fn try_from(e: &CloudEvent) -> Result<Self, Self::Error> {
            let mut b = EventBuilderV10::new()
                .id(&e.id)
                .source(e.source.as_str())
                .ty(&e.ty);
            if let Some(s) = &e.subject {
                b = b.subject(s.as_str());
            }
            if let Some(t) = e.time {
                b = b.time(t);
            }
            if let Some(data) = &e.data {
                let ct = e
                    .data_content_type
                    .clone()
                    .unwrap_or_else(|| "application/octet-stream".into());
                b = b.data(ct, data.to_vec());
            }
            for (name, value) in &e.extensions {
                b = match value {
                    ExtensionValue::String(s) => b.extension(name, s.as_str()),
                    ExtensionValue::Boolean(v) => b.extension(name, *v),
                    ExtensionValue::Integer(v) => b.extension(name, *v),
                };
            }
            let mut event = b
                .build()
                .map_err(|err| SdkConversionError(err.to_string()))?;
            if let Some(schema) = &e.data_schema {
                let url =
                    url::Url::parse(schema).map_err(|err| SdkConversionError(err.to_string()))?;
                cloudevents::AttributesWriter::set_dataschema(&mut event, Some(url));
            }
            Ok(event)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation_names_the_bad_attribute() {
        let ok = CloudEvent::new("1", "/s", "t");
        assert_eq!(ok.validate(), Ok(()));
        assert_eq!(
            CloudEvent::new("", "/s", "t").validate(),
            Err(EventValidationError::MissingAttribute("id"))
        );
        assert_eq!(
            ok.clone().with_extension("Bad", "x").validate(),
            Err(EventValidationError::BadExtensionName("Bad".into()))
        );
        assert_eq!(
            ok.with_extension("subject", "x").validate(),
            Err(EventValidationError::ReservedExtensionName(
                "subject".into()
            ))
        );
    }
}
