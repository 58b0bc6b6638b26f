//! Parsed JSON as the converter reads it: the [`Node`] trait over `serde_json::Value` and over
//! [`Doc`], a tree that borrows from the input bytes.
//!
//! `Doc` exists for the hot path (one upstream stream event in, one gRPC message out): parsing
//! into `serde_json::Value` allocates every key and every string and builds a B-tree per object;
//! a `Doc` borrows keys and strings from the event's bytes (only strings with escapes are copied)
//! and keeps an object's members in a `Vec`, in the order they were sent. Writing a `Doc` back
//! as JSON (for `extra_json` and `RawJson`) goes through serde_json's serializer, so it is
//! formatted and escaped exactly like a `Value`.

use std::{borrow::Cow, fmt};

use serde::{
    Deserialize, Deserializer, Serialize, Serializer,
    de::{MapAccess, SeqAccess, Visitor},
    ser::{SerializeMap, SerializeSeq},
};
use serde_json::{Number, Value};

/// A JSON value the converter can read: `serde_json::Value` or a borrowed [`Doc`].
pub trait Node: Serialize + Sized {
    /// The members of an object, in the tree's own order.
    type Members<'a>: Iterator<Item = (&'a str, &'a Self)> + Clone
    where
        Self: 'a;

    /// The string, if this is one.
    fn as_str(&self) -> Option<&str>;
    /// The number, if this is one.
    fn as_number(&self) -> Option<&Number>;
    /// The boolean, if this is one.
    fn as_bool(&self) -> Option<bool>;
    /// The items, if this is an array.
    fn as_array(&self) -> Option<&[Self]>;
    /// The members, if this is an object.
    fn members(&self) -> Option<Self::Members<'_>>;
    /// Whether this is an object.
    fn is_object(&self) -> bool;

    /// The value of member `key`, if this is an object that has it.
    fn get(&self, key: &str) -> Option<&Self> {
        self.members()?.find(|(k, _)| *k == key).map(|(_, v)| v)
    }
    /// The number as an `i64`, if it is an integer that fits.
    fn as_i64(&self) -> Option<i64> {
        self.as_number()?.as_i64()
    }
    /// The number as a `u64`, if it is a non-negative integer that fits.
    fn as_u64(&self) -> Option<u64> {
        self.as_number()?.as_u64()
    }
    /// The number as an `f64`.
    fn as_f64(&self) -> Option<f64> {
        self.as_number()?.as_f64()
    }
}

type ValueMembers<'a> =
    std::iter::Map<serde_json::map::Iter<'a>, fn((&'a String, &'a Value)) -> (&'a str, &'a Value)>;

fn value_member<'a>((k, v): (&'a String, &'a Value)) -> (&'a str, &'a Value) {
    (k.as_str(), v)
}

impl Node for Value {
    type Members<'a> = ValueMembers<'a>;

    fn as_str(&self) -> Option<&str> {
        Value::as_str(self)
    }
    fn as_number(&self) -> Option<&Number> {
        match self {
            Value::Number(n) => Some(n),
            _ => None,
        }
    }
    fn as_bool(&self) -> Option<bool> {
        Value::as_bool(self)
    }
    fn as_array(&self) -> Option<&[Self]> {
        Value::as_array(self).map(Vec::as_slice)
    }
    fn members(&self) -> Option<Self::Members<'_>> {
        let map = self.as_object()?;
        Some(map.iter().map(value_member as fn(_) -> _))
    }
    fn is_object(&self) -> bool {
        Value::is_object(self)
    }
    fn get(&self, key: &str) -> Option<&Self> {
        self.as_object()?.get(key)
    }
}

/// A JSON value that borrows its keys and strings from the parsed bytes where it can.
#[derive(Debug, Clone, PartialEq)]
pub enum Doc<'a> {
    /// `null`.
    Null,
    /// `true` / `false`.
    Bool(bool),
    /// A number, kept exactly as `serde_json` reads it.
    Number(Number),
    /// A string (borrowed unless it contained escapes).
    String(Cow<'a, str>),
    /// An array.
    Array(Vec<Doc<'a>>),
    /// An object's members in the order they were sent.
    Object(Vec<(Cow<'a, str>, Doc<'a>)>),
}

impl<'a> Doc<'a> {
    /// Parses JSON text, borrowing from it.
    pub fn parse(bytes: &'a [u8]) -> serde_json::Result<Self> {
        match std::str::from_utf8(bytes) {
            // One check of the whole text; serde_json then skips its check of every string.
            Ok(text) => serde_json::from_str(text),
            Err(_) => serde_json::from_slice(bytes),
        }
    }
}

type DocMember<'a, 'b> = &'a (Cow<'b, str>, Doc<'b>);
type DocMembers<'a, 'b> = std::iter::Map<
    std::slice::Iter<'a, (Cow<'b, str>, Doc<'b>)>,
    fn(DocMember<'a, 'b>) -> (&'a str, &'a Doc<'b>),
>;

fn doc_member<'a, 'b>((k, v): DocMember<'a, 'b>) -> (&'a str, &'a Doc<'b>) {
    (k, v)
}

impl<'b> Node for Doc<'b> {
    type Members<'a>
        = DocMembers<'a, 'b>
    where
        Self: 'a;

    fn as_str(&self) -> Option<&str> {
        match self {
            Doc::String(s) => Some(s),
            _ => None,
        }
    }
    fn as_number(&self) -> Option<&Number> {
        match self {
            Doc::Number(n) => Some(n),
            _ => None,
        }
    }
    fn as_bool(&self) -> Option<bool> {
        match self {
            Doc::Bool(b) => Some(*b),
            _ => None,
        }
    }
    fn as_array(&self) -> Option<&[Self]> {
        match self {
            Doc::Array(items) => Some(items),
            _ => None,
        }
    }
    fn members(&self) -> Option<Self::Members<'_>> {
        match self {
            Doc::Object(members) => Some(members.iter().map(doc_member as fn(_) -> _)),
            _ => None,
        }
    }
    fn is_object(&self) -> bool {
        matches!(self, Doc::Object(_))
    }
}

impl Serialize for Doc<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Doc::Null => serializer.serialize_unit(),
            Doc::Bool(b) => serializer.serialize_bool(*b),
            Doc::Number(n) => n.serialize(serializer),
            Doc::String(s) => serializer.serialize_str(s),
            Doc::Array(items) => {
                let mut seq = serializer.serialize_seq(Some(items.len()))?;
                for item in items {
                    seq.serialize_element(item)?;
                }
                seq.end()
            }
            Doc::Object(members) => {
                let mut map = serializer.serialize_map(Some(members.len()))?;
                for (k, v) in members {
                    map.serialize_entry(k.as_ref(), v)?;
                }
                map.end()
            }
        }
    }
}

impl<'de> Deserialize<'de> for Doc<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(DocVisitor)
    }
}

struct DocVisitor;

impl<'de> Visitor<'de> for DocVisitor {
    type Value = Doc<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Doc<'de>, E> {
        Ok(Doc::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Doc<'de>, E> {
        Ok(Doc::Number(v.into()))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Doc<'de>, E> {
        Ok(Doc::Number(v.into()))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Doc<'de>, E> {
        // As serde_json's own Value: a float it cannot hold (never produced by its parser) is null.
        Ok(Number::from_f64(v).map_or(Doc::Null, Doc::Number))
    }
    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Doc<'de>, E> {
        Ok(Doc::String(Cow::Borrowed(v)))
    }
    fn visit_str<E>(self, v: &str) -> Result<Doc<'de>, E> {
        Ok(Doc::String(Cow::Owned(v.to_owned())))
    }
    fn visit_string<E>(self, v: String) -> Result<Doc<'de>, E> {
        Ok(Doc::String(Cow::Owned(v)))
    }
    fn visit_unit<E>(self) -> Result<Doc<'de>, E> {
        Ok(Doc::Null)
    }
    fn visit_none<E>(self) -> Result<Doc<'de>, E> {
        Ok(Doc::Null)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Doc<'de>, D::Error> {
        Doc::deserialize(d)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Doc<'de>, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(64));
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(Doc::Array(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Doc<'de>, A::Error> {
        // serde_json gives no size hint; most OpenAI objects have fewer than 8 members.
        let mut members = Vec::with_capacity(map.size_hint().unwrap_or(8).min(64));
        while let Some(Key(key)) = map.next_key()? {
            members.push((key, map.next_value()?));
        }
        Ok(Doc::Object(members))
    }
}

/// An object key, borrowed when it has no escapes.
struct Key<'a>(Cow<'a, str>);

impl<'de> Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl<'de> Visitor<'de> for KeyVisitor {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object key")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Borrowed(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E>(self, v: String) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(v)))
            }
        }
        deserializer.deserialize_str(KeyVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn borrows_plain_strings_and_keys_and_writes_like_value() {
        let text = r#"{"type":"x","a":[1,-2,2.5,1e300,true,null,"q\"uote"],"é":{"k":"v"}}"#;
        let doc = Doc::parse(text.as_bytes()).unwrap();
        let Doc::Object(members) = &doc else { panic!() };
        assert!(matches!(members[0].0, Cow::Borrowed("type")));
        assert!(matches!(members[0].1, Doc::String(Cow::Borrowed("x"))));
        assert_eq!(Node::get(&doc, "type").and_then(Node::as_str), Some("x"));
        // Same members and formatting as serde_json's Value (which sorts keys; this keeps order).
        let value: Value = serde_json::from_str(text).unwrap();
        let written = serde_json::to_string(&doc).unwrap();
        assert_eq!(serde_json::from_str::<Value>(&written).unwrap(), value);
        assert_eq!(
            serde_json::to_string(&Node::get(&doc, "a").unwrap()).unwrap(),
            serde_json::to_string(&value["a"]).unwrap()
        );
    }
}
