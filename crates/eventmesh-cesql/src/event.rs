//! What an expression reads from: the [`Attributes`] of an event.

use std::borrow::Cow;

use chrono::SecondsFormat;
use eventmesh_core::{CloudEvent, ExtensionValue};

use crate::ast::Attribute;
use crate::value::Value;

/// Attribute access for the evaluator: implemented for [`CloudEvent`] and for [`NoEvent`], and
/// by anything else a filter should run on (a test kit's JSON events, a protocol's own event
/// view).
pub trait Attributes {
    /// The value of `attribute`, or `None` when the event does not have it. Strings should
    /// borrow from the event; a value that is none of the CESQL types is a `String`.
    fn attribute(&self, attribute: &Attribute) -> Option<Value<'_>>;

    /// Whether the event has `attribute` (`EXISTS`). The default calls
    /// [`attribute`](Self::attribute).
    fn has_attribute(&self, attribute: &Attribute) -> bool {
        self.attribute(attribute).is_some()
    }
}

/// No event at all: every attribute is missing (so even `EXISTS id` is false).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NoEvent;

impl Attributes for NoEvent {
    fn attribute(&self, _: &Attribute) -> Option<Value<'_>> {
        None
    }
}

impl<T: Attributes + ?Sized> Attributes for &T {
    fn attribute(&self, attribute: &Attribute) -> Option<Value<'_>> {
        (**self).attribute(attribute)
    }

    fn has_attribute(&self, attribute: &Attribute) -> bool {
        (**self).has_attribute(attribute)
    }
}

fn borrowed(s: &str) -> Value<'_> {
    Value::String(Cow::Borrowed(s))
}

/// The CloudEvent's context attributes and extensions. Strings are borrowed; `time` is written
/// in RFC 3339 (UTC, `Z`, fractional seconds only when present), which allocates; an integer
/// extension outside the 32-bit range is its decimal `String`.
impl Attributes for CloudEvent {
    fn attribute(&self, attribute: &Attribute) -> Option<Value<'_>> {
        let s = match attribute {
            Attribute::Id => borrowed(&self.id),
            Attribute::Source => borrowed(&self.source),
            Attribute::SpecVersion => borrowed(self.spec_version.as_str()),
            Attribute::Type => borrowed(&self.ty),
            Attribute::Subject => borrowed(self.subject.as_deref()?),
            Attribute::DataContentType => borrowed(self.data_content_type.as_deref()?),
            Attribute::DataSchema => borrowed(self.data_schema.as_deref()?),
            Attribute::Time => Value::String(Cow::Owned(
                self.time?.to_rfc3339_opts(SecondsFormat::AutoSi, true),
            )),
            Attribute::Extension(name) => match self.extensions.get(&**name)? {
                ExtensionValue::String(s) => borrowed(s),
                ExtensionValue::Boolean(b) => Value::Boolean(*b),
                ExtensionValue::Integer(i) => match i32::try_from(*i) {
                    Ok(i) => Value::Integer(i),
                    Err(_) => Value::String(Cow::Owned(i.to_string())),
                },
            },
        };
        Some(s)
    }

    fn has_attribute(&self, attribute: &Attribute) -> bool {
        match attribute {
            Attribute::Id | Attribute::Source | Attribute::SpecVersion | Attribute::Type => true,
            Attribute::Subject => self.subject.is_some(),
            Attribute::Time => self.time.is_some(),
            Attribute::DataContentType => self.data_content_type.is_some(),
            Attribute::DataSchema => self.data_schema.is_some(),
            Attribute::Extension(name) => self.extensions.contains_key(&**name),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn cloudevent_attributes() {
        let mut e = CloudEvent::new("1", "/s", "t")
            .with_extension("big", ExtensionValue::Integer(1 << 40))
            .with_extension("small", ExtensionValue::Integer(-7))
            .with_extension("flag", ExtensionValue::Boolean(true));
        e.time = Some(
            chrono::Utc
                .with_ymd_and_hms(2018, 4, 26, 12, 48, 9)
                .unwrap(),
        );
        let get = |name: &str| e.attribute(&Attribute::from_name(name));
        assert_eq!(get("id"), Some(Value::from("1")));
        assert_eq!(get("specversion"), Some(Value::from("1.0")));
        assert_eq!(get("time"), Some(Value::from("2018-04-26T12:48:09Z")));
        assert_eq!(get("big"), Some(Value::from("1099511627776")));
        assert_eq!(get("small"), Some(Value::Integer(-7)));
        assert_eq!(get("flag"), Some(Value::Boolean(true)));
        assert_eq!(get("subject"), None);
        assert!(e.has_attribute(&Attribute::Time));
        assert!(!e.has_attribute(&Attribute::Subject));
        assert!(!NoEvent.has_attribute(&Attribute::Id));
    }
}
