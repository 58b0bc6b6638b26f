//! A generic, lossless JSON <-> protobuf converter driven by the message descriptors.
//!
//! Hand-written because no crate does what the contract needs: prost-reflect's serde support
//! follows the proto3 JSON mapping, which drops unknown keys, turns `null` into defaults and has
//! no notion of OpenAI's `type`-discriminated unions. The rules, all read from `proto/`:
//!
//! * A field matches the JSON key equal to its name, or its `(json_key)` option.
//!   `(gateway_only)` fields are never read from or written to JSON.
//! * A value goes into its typed field only when the field can hold it exactly; anything else (an
//!   unknown key, a `null`, an empty array or object, a value of the wrong type) is kept verbatim
//!   in the message's `extra_json` object. So converting back gives the original JSON.
//! * A message with a oneof whose variants carry `(json_type)` is a *union*: the JSON `type`
//!   picks the variant; keys that match the union's own fields (the envelope's
//!   `sequence_number`) stay outside; an unknown `type` lands in the `RawJson` catch-all with the
//!   complete JSON text. A `google.protobuf.Struct` catch-all (request side) is sent as is; a
//!   scalar variant without `(json_type)` is the JSON value itself (`tool_choice: "auto"`).
//! * `google.protobuf.Value` / `Struct` / `ListValue` hold free-form JSON.

use std::collections::HashMap;

use prost::Message;
use prost_reflect::{
    DescriptorPool, DynamicMessage, FieldDescriptor, Kind, MapKey, MessageDescriptor,
    ReflectMessage, Value as PValue,
};
use serde_json::{Map, Number, Value as Json};

const VALUE: &str = "google.protobuf.Value";
const STRUCT: &str = "google.protobuf.Struct";
const LIST_VALUE: &str = "google.protobuf.ListValue";
const RAW_JSON: &str = "openai_gateway.v1.RawJson";
const EXTRA_JSON: &str = "extra_json";

/// How one oneof variant of a union maps to JSON.
#[derive(Debug, Clone)]
enum Variant {
    /// Selected by this `type` value; the variant message holds the other keys.
    Typed(String),
    /// `RawJson`: the complete JSON object as text, for types the proto does not know.
    Raw,
    /// `google.protobuf.Struct`: a JSON object sent verbatim (request-side catch-all).
    Struct,
    /// A scalar standing for the whole JSON value (e.g. `"auto"`).
    Scalar,
}

/// What the converter needs to know about one message type, computed once.
#[derive(Debug, Default)]
struct Plan {
    /// JSON key -> fields, for fields read from and written to JSON (not union variants). A key
    /// can have several fields of different types (`input` is `input_text` or `input_items`);
    /// reading picks the first that fits.
    by_key: HashMap<String, Vec<FieldDescriptor>>,
    /// (JSON key, field) in field order, for writing.
    keyed: Vec<(String, FieldDescriptor)>,
    /// The `extra_json` field, if the message has one.
    extra: Option<FieldDescriptor>,
    /// For unions: `type` value -> variant field.
    variants: HashMap<String, FieldDescriptor>,
    /// For unions: variant field number -> how it maps.
    variant_kind: HashMap<u32, Variant>,
    /// For unions: the catch-all variant.
    catch_all: Option<FieldDescriptor>,
}

impl Plan {
    fn is_union(&self) -> bool {
        !self.variant_kind.is_empty()
    }

    /// The field that `key` names and that can hold `value` exactly, if any.
    fn field_for(&self, key: &str, value: &Json) -> Option<&FieldDescriptor> {
        self.by_key.get(key)?.iter().find(|f| fits_field(value, f))
    }
}

/// The converter for every message in one descriptor pool.
#[derive(Debug)]
pub struct Schema {
    plans: HashMap<String, Plan>,
}

impl Schema {
    /// Reads the options of every message in `pool` once.
    pub fn new(pool: &DescriptorPool) -> Self {
        let ext = |name: &str| pool.get_extension_by_name(&format!("openai_gateway.v1.{name}"));
        let (json_type, json_key, gateway_only) =
            (ext("json_type"), ext("json_key"), ext("gateway_only"));
        // prost-reflect decodes options with its own copy of descriptor.proto, which knows
        // nothing of our extensions; decoding them again with this pool's FieldOptions (which
        // our options.proto extends) makes the custom options readable.
        let field_options = pool.get_message_by_name("google.protobuf.FieldOptions");
        let options_of = |field: &FieldDescriptor| -> Option<DynamicMessage> {
            let raw = field.options().encode_to_vec();
            DynamicMessage::decode(field_options.clone()?, raw.as_slice()).ok()
        };
        let string_option = |field: &FieldDescriptor, ext: &Option<_>| -> Option<String> {
            let (ext, options) = (ext.as_ref()?, options_of(field)?);
            if !options.has_extension(ext) {
                return None;
            }
            options.get_extension(ext).as_str().map(str::to_owned)
        };
        let bool_option = |field: &FieldDescriptor, ext: &Option<_>| -> bool {
            match (ext.as_ref(), options_of(field)) {
                (Some(ext), Some(options)) => {
                    options.has_extension(ext) && options.get_extension(ext).as_bool() == Some(true)
                }
                _ => false,
            }
        };

        let mut plans = HashMap::new();
        for message in pool.all_messages() {
            let mut plan = Plan::default();
            for oneof in message.oneofs().filter(|o| !o.is_synthetic()) {
                let typed = oneof
                    .fields()
                    .any(|f| string_option(&f, &json_type).is_some());
                if !typed {
                    continue;
                }
                for field in oneof.fields() {
                    let variant = if let Some(t) = string_option(&field, &json_type) {
                        plan.variants.insert(t.clone(), field.clone());
                        Variant::Typed(t)
                    } else {
                        match field.kind() {
                            Kind::Message(m) if m.full_name() == RAW_JSON => Variant::Raw,
                            Kind::Message(m) if m.full_name() == STRUCT => Variant::Struct,
                            Kind::Message(_) => continue,
                            _ => Variant::Scalar,
                        }
                    };
                    if matches!(variant, Variant::Raw | Variant::Struct) {
                        plan.catch_all = Some(field.clone());
                    }
                    plan.variant_kind.insert(field.number(), variant);
                }
            }
            for field in message.fields() {
                if plan.variant_kind.contains_key(&field.number())
                    || bool_option(&field, &gateway_only)
                {
                    continue;
                }
                if field.name() == EXTRA_JSON && field.kind() == Kind::String {
                    plan.extra = Some(field);
                    continue;
                }
                let key = string_option(&field, &json_key).unwrap_or_else(|| field.name().into());
                plan.keyed.push((key.clone(), field.clone()));
                plan.by_key.entry(key).or_default().push(field);
            }
            plans.insert(message.full_name().to_owned(), plan);
        }
        Self { plans }
    }

    fn plan(&self, desc: &MessageDescriptor) -> &Plan {
        self.plans
            .get(desc.full_name())
            .expect("every message of the pool has a plan")
    }

    /// Unions of `desc`'s pool that have no catch-all variant (a contract bug: unknown types would
    /// be dropped). Used by tests.
    pub fn unions_without_catch_all(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .plans
            .iter()
            .filter(|(_, p)| p.is_union() && p.catch_all.is_none())
            .map(|(n, _)| n.clone())
            .collect();
        names.sort();
        names
    }

    /// Converts a JSON object into a message of type `desc`. Never fails: what does not fit is
    /// kept in `extra_json` (or the union's catch-all).
    pub fn from_json(&self, desc: &MessageDescriptor, object: Map<String, Json>) -> DynamicMessage {
        match desc.full_name() {
            STRUCT => return struct_message(desc, object),
            VALUE => return value_message(desc, Json::Object(object)),
            _ => {}
        }
        let plan = self.plan(desc);
        if plan.is_union() {
            self.union_from_json(plan, desc, object)
        } else {
            self.plain_from_json(plan, desc, object)
        }
    }

    fn plain_from_json(
        &self,
        plan: &Plan,
        desc: &MessageDescriptor,
        object: Map<String, Json>,
    ) -> DynamicMessage {
        let mut message = DynamicMessage::new(desc.clone());
        let mut extra = Map::new();
        for (key, value) in object {
            match plan.field_for(&key, &value) {
                Some(field) => {
                    let converted = self.field_value(value, field);
                    message.set_field(field, converted);
                }
                None => {
                    extra.insert(key, value);
                }
            }
        }
        if !extra.is_empty()
            && let Some(field) = &plan.extra
        {
            message.set_field(field, PValue::String(Json::Object(extra).to_string()));
        }
        message
    }

    fn union_from_json(
        &self,
        plan: &Plan,
        desc: &MessageDescriptor,
        mut object: Map<String, Json>,
    ) -> DynamicMessage {
        let mut message = DynamicMessage::new(desc.clone());
        let type_name = object.get("type").and_then(Json::as_str).map(str::to_owned);
        let variant = type_name.as_deref().and_then(|t| plan.variants.get(t));
        let Some(variant) = variant else {
            // Unknown or missing type: the catch-all keeps the complete object verbatim, and the
            // union's own fields (e.g. sequence_number) are filled too, for convenience.
            if let Some(catch_all) = &plan.catch_all {
                let raw = self.catch_all_value(catch_all, type_name, &object);
                message.set_field(catch_all, raw);
            }
            for (key, value) in &object {
                if let Some(field) = plan.field_for(key, value) {
                    let converted = self.field_value(value.clone(), field);
                    message.set_field(field, converted);
                }
            }
            return message;
        };
        object.remove("type");
        let mut inner = Map::new();
        for (key, value) in object {
            match plan.field_for(&key, &value) {
                Some(field) => {
                    let converted = self.field_value(value, field);
                    message.set_field(field, converted);
                }
                None => {
                    inner.insert(key, value);
                }
            }
        }
        let Kind::Message(variant_desc) = variant.kind() else {
            unreachable!("typed union variants are messages");
        };
        let inner = self.from_json(&variant_desc, inner);
        message.set_field(variant, PValue::Message(inner));
        message
    }

    fn catch_all_value(
        &self,
        field: &FieldDescriptor,
        type_name: Option<String>,
        object: &Map<String, Json>,
    ) -> PValue {
        let Kind::Message(desc) = field.kind() else {
            unreachable!("catch-alls are messages");
        };
        if desc.full_name() == STRUCT {
            return PValue::Message(struct_message(&desc, object.clone()));
        }
        let mut raw = DynamicMessage::new(desc);
        raw.set_field_by_name("type", PValue::String(type_name.unwrap_or_default()));
        raw.set_field_by_name(
            "json",
            PValue::String(Json::Object(object.clone()).to_string()),
        );
        PValue::Message(raw)
    }

    /// Converts a value already known to fit `field` (see [`fits_field`]).
    fn field_value(&self, value: Json, field: &FieldDescriptor) -> PValue {
        if field.is_map() {
            let Kind::Message(entry) = field.kind() else {
                unreachable!("map fields are messages");
            };
            let value_field = entry.map_entry_value_field();
            let Json::Object(object) = value else {
                unreachable!("checked by fits_field");
            };
            let map = object
                .into_iter()
                .map(|(k, v)| (MapKey::String(k), self.single_value(v, &value_field.kind())))
                .collect();
            return PValue::Map(map);
        }
        if field.is_list() {
            let Json::Array(items) = value else {
                unreachable!("checked by fits_field");
            };
            let kind = field.kind();
            return PValue::List(
                items
                    .into_iter()
                    .map(|v| self.single_value(v, &kind))
                    .collect(),
            );
        }
        self.single_value(value, &field.kind())
    }

    fn single_value(&self, value: Json, kind: &Kind) -> PValue {
        match (kind, value) {
            (Kind::Double, v) => PValue::F64(v.as_f64().unwrap_or_default()),
            (Kind::Float, v) => PValue::F32(v.as_f64().unwrap_or_default() as f32),
            (Kind::Int32 | Kind::Sint32 | Kind::Sfixed32, v) => {
                PValue::I32(v.as_i64().unwrap_or_default() as i32)
            }
            (Kind::Int64 | Kind::Sint64 | Kind::Sfixed64, v) => {
                PValue::I64(v.as_i64().unwrap_or_default())
            }
            (Kind::Uint32 | Kind::Fixed32, v) => PValue::U32(v.as_u64().unwrap_or_default() as u32),
            (Kind::Uint64 | Kind::Fixed64, v) => PValue::U64(v.as_u64().unwrap_or_default()),
            (Kind::Bool, v) => PValue::Bool(v.as_bool().unwrap_or_default()),
            (Kind::String, Json::String(s)) => PValue::String(s),
            (Kind::Enum(e), Json::String(s)) => {
                PValue::EnumNumber(e.get_value_by_name(&s).map_or(0, |v| v.number()))
            }
            (Kind::Enum(_), v) => PValue::EnumNumber(v.as_i64().unwrap_or_default() as i32),
            (Kind::Message(m), v) => PValue::Message(match (m.full_name(), v) {
                (VALUE, v) => value_message(m, v),
                (LIST_VALUE, Json::Array(items)) => list_message(m, items),
                (_, Json::Object(object)) => self.from_json(m, object),
                _ => unreachable!("checked by fits_field"),
            }),
            _ => unreachable!("checked by fits_field"),
        }
    }

    /// Converts a message back into the JSON OpenAI sent (or would accept).
    pub fn to_json(&self, message: &DynamicMessage) -> Json {
        let desc = message.descriptor();
        match desc.full_name() {
            VALUE => return value_json(message),
            STRUCT => return struct_json(message),
            LIST_VALUE => return list_json(message),
            _ => {}
        }
        let plan = self.plan(&desc);
        let mut object = Map::new();
        for (key, field) in &plan.keyed {
            if message.has_field(field) {
                object.insert(
                    key.clone(),
                    self.value_json(&message.get_field(field), field),
                );
            }
        }
        if plan.is_union() {
            let set = plan
                .variant_kind
                .iter()
                .find(|(number, _)| message.has_field_by_number(**number));
            if let Some((number, variant)) = set {
                let value = message.get_field_by_number(*number).expect("field is set");
                match (variant, value.as_ref()) {
                    (Variant::Typed(type_name), PValue::Message(inner)) => {
                        if let Json::Object(inner) = self.to_json(inner) {
                            object.extend(inner);
                        }
                        object.insert("type".into(), Json::String(type_name.clone()));
                    }
                    (Variant::Raw, PValue::Message(raw)) => {
                        let text = raw
                            .get_field_by_name("json")
                            .and_then(|v| v.as_str().map(str::to_owned))
                            .unwrap_or_default();
                        return serde_json::from_str(&text).unwrap_or(Json::String(text));
                    }
                    (Variant::Struct, PValue::Message(s)) => {
                        if let Json::Object(inner) = struct_json(s) {
                            object.extend(inner);
                        }
                    }
                    (Variant::Scalar, scalar) => return scalar_json(scalar),
                    _ => {}
                }
            }
            return Json::Object(object);
        }
        if let Some(field) = &plan.extra
            && let Some(text) = message.get_field(field).as_str()
            && let Ok(Json::Object(extra)) = serde_json::from_str::<Json>(text)
        {
            for (key, value) in extra {
                object.entry(key).or_insert(value);
            }
        }
        Json::Object(object)
    }

    fn value_json(&self, value: &PValue, field: &FieldDescriptor) -> Json {
        match value {
            PValue::List(items) => Json::Array(items.iter().map(|v| self.single_json(v)).collect()),
            PValue::Map(map) => {
                let mut object = Map::new();
                for (k, v) in map {
                    let key = match k {
                        MapKey::String(s) => s.clone(),
                        other => map_key_string(other),
                    };
                    object.insert(key, self.single_json(v));
                }
                Json::Object(object)
            }
            PValue::EnumNumber(n) => match field.kind() {
                Kind::Enum(e) => e
                    .get_value(*n)
                    .map_or(Json::from(*n), |v| Json::String(v.name().to_owned())),
                _ => Json::from(*n),
            },
            other => self.single_json(other),
        }
    }

    fn single_json(&self, value: &PValue) -> Json {
        match value {
            PValue::Message(m) => self.to_json(m),
            other => scalar_json(other),
        }
    }
}

fn map_key_string(key: &MapKey) -> String {
    match key {
        MapKey::Bool(b) => b.to_string(),
        MapKey::I32(n) => n.to_string(),
        MapKey::I64(n) => n.to_string(),
        MapKey::U32(n) => n.to_string(),
        MapKey::U64(n) => n.to_string(),
        MapKey::String(s) => s.clone(),
    }
}

fn scalar_json(value: &PValue) -> Json {
    match value {
        PValue::Bool(b) => Json::Bool(*b),
        PValue::I32(n) => Json::from(*n),
        PValue::I64(n) => Json::from(*n),
        PValue::U32(n) => Json::from(*n),
        PValue::U64(n) => Json::from(*n),
        PValue::F32(n) => float_json(f64::from(*n)),
        PValue::F64(n) => float_json(*n),
        PValue::String(s) => Json::String(s.clone()),
        PValue::EnumNumber(n) => Json::from(*n),
        PValue::Bytes(b) => Json::String(String::from_utf8_lossy(b).into_owned()),
        PValue::Message(_) | PValue::List(_) | PValue::Map(_) => Json::Null,
    }
}

fn float_json(n: f64) -> Json {
    Number::from_f64(n).map_or(Json::Null, Json::Number)
}

/// Whether `value` can be held exactly by `field` (lists and maps must be non-empty, so that an
/// empty `[]` / `{}` survives in `extra_json` instead of vanishing).
fn fits_field(value: &Json, field: &FieldDescriptor) -> bool {
    if field.is_map() {
        let Kind::Message(entry) = field.kind() else {
            return false;
        };
        let value_kind = entry.map_entry_value_field().kind();
        return matches!(value, Json::Object(o) if !o.is_empty() && o.values().all(|v| fits_kind(v, &value_kind)));
    }
    if field.is_list() {
        let kind = field.kind();
        return matches!(value, Json::Array(a) if !a.is_empty() && a.iter().all(|v| fits_kind(v, &kind)));
    }
    fits_kind(value, &field.kind())
}

fn fits_kind(value: &Json, kind: &Kind) -> bool {
    match kind {
        Kind::Double | Kind::Float => value.is_number(),
        Kind::Int32 | Kind::Sint32 | Kind::Sfixed32 => {
            value.as_i64().is_some_and(|n| i32::try_from(n).is_ok())
        }
        Kind::Int64 | Kind::Sint64 | Kind::Sfixed64 => value.as_i64().is_some(),
        Kind::Uint32 | Kind::Fixed32 => value.as_u64().is_some_and(|n| u32::try_from(n).is_ok()),
        Kind::Uint64 | Kind::Fixed64 => value.as_u64().is_some(),
        Kind::Bool => value.is_boolean(),
        Kind::String => value.is_string(),
        Kind::Bytes => false,
        Kind::Enum(e) => match value {
            Json::String(s) => e.get_value_by_name(s).is_some(),
            _ => false,
        },
        Kind::Message(m) => match m.full_name() {
            VALUE => true,
            STRUCT => value.is_object(),
            LIST_VALUE => value.is_array(),
            _ => value.is_object(),
        },
    }
}

/// JSON -> `google.protobuf.Value`.
fn value_message(desc: &MessageDescriptor, value: Json) -> DynamicMessage {
    let mut message = DynamicMessage::new(desc.clone());
    let pool = desc.parent_pool();
    match value {
        Json::Null => message.set_field_by_name("null_value", PValue::EnumNumber(0)),
        Json::Bool(b) => message.set_field_by_name("bool_value", PValue::Bool(b)),
        Json::Number(n) => {
            message.set_field_by_name("number_value", PValue::F64(n.as_f64().unwrap_or_default()))
        }
        Json::String(s) => message.set_field_by_name("string_value", PValue::String(s)),
        Json::Array(items) => {
            let list = pool
                .get_message_by_name(LIST_VALUE)
                .expect("well-known type");
            message.set_field_by_name("list_value", PValue::Message(list_message(&list, items)));
        }
        Json::Object(object) => {
            let s = pool.get_message_by_name(STRUCT).expect("well-known type");
            message.set_field_by_name("struct_value", PValue::Message(struct_message(&s, object)));
        }
    }
    message
}

/// JSON object -> `google.protobuf.Struct`.
fn struct_message(desc: &MessageDescriptor, object: Map<String, Json>) -> DynamicMessage {
    let value_desc = desc
        .parent_pool()
        .get_message_by_name(VALUE)
        .expect("well-known type");
    let mut message = DynamicMessage::new(desc.clone());
    let fields = object
        .into_iter()
        .map(|(k, v)| {
            (
                MapKey::String(k),
                PValue::Message(value_message(&value_desc, v)),
            )
        })
        .collect();
    message.set_field_by_name("fields", PValue::Map(fields));
    message
}

/// JSON array -> `google.protobuf.ListValue`.
fn list_message(desc: &MessageDescriptor, items: Vec<Json>) -> DynamicMessage {
    let value_desc = desc
        .parent_pool()
        .get_message_by_name(VALUE)
        .expect("well-known type");
    let mut message = DynamicMessage::new(desc.clone());
    let values = items
        .into_iter()
        .map(|v| PValue::Message(value_message(&value_desc, v)))
        .collect();
    message.set_field_by_name("values", PValue::List(values));
    message
}

/// `google.protobuf.Value` -> JSON. Numbers that are whole and exactly representable come back
/// as integers (a JSON `1` travels as the double `1.0`).
pub(crate) fn value_json(message: &DynamicMessage) -> Json {
    let field = |name: &str| {
        message
            .has_field_by_name(name)
            .then(|| message.get_field_by_name(name))
            .flatten()
    };
    if let Some(v) = field("bool_value") {
        return Json::Bool(v.as_bool().unwrap_or_default());
    }
    if let Some(v) = field("number_value") {
        let n = v.as_f64().unwrap_or_default();
        if n.fract() == 0.0 && n.abs() < 9_007_199_254_740_992.0 {
            return Json::from(n as i64);
        }
        return float_json(n);
    }
    if let Some(v) = field("string_value") {
        return Json::String(v.as_str().unwrap_or_default().to_owned());
    }
    if let Some(v) = field("struct_value") {
        return v.as_message().map_or(Json::Null, struct_json);
    }
    if let Some(v) = field("list_value") {
        return v.as_message().map_or(Json::Null, list_json);
    }
    Json::Null
}

/// `google.protobuf.Struct` -> JSON object.
pub(crate) fn struct_json(message: &DynamicMessage) -> Json {
    let mut object = Map::new();
    if let Some(PValue::Map(fields)) = message.get_field_by_name("fields").as_deref() {
        for (k, v) in fields {
            if let (MapKey::String(k), PValue::Message(v)) = (k, v) {
                object.insert(k.clone(), value_json(v));
            }
        }
    }
    Json::Object(object)
}

/// `google.protobuf.ListValue` -> JSON array.
fn list_json(message: &DynamicMessage) -> Json {
    let mut items = Vec::new();
    if let Some(PValue::List(values)) = message.get_field_by_name("values").as_deref() {
        for v in values {
            if let PValue::Message(v) = v {
                items.push(value_json(v));
            }
        }
    }
    Json::Array(items)
}
