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
//!
//! JSON -> proto is on the gateway's hot path (every streamed event), so it writes protobuf wire
//! bytes straight from the parsed JSON ([`Schema::encode_object`]), guided by plans computed once
//! from the descriptors (field numbers, wire types, child plans by index, enum names, the
//! `type` -> variant table); the caller decodes the bytes into its generated type
//! ([`Schema::decode_json`]). No `DynamicMessage` is built on that path. Proto -> JSON (request
//! bodies, and proving losslessness) goes through `DynamicMessage` ([`Schema::to_json`]).

use std::{
    collections::HashMap,
    hash::{BuildHasherDefault, Hasher},
    sync::Arc,
};

use prost::Message;
use prost_reflect::{
    DescriptorPool, DynamicMessage, FieldDescriptor, Kind, MapKey, MessageDescriptor,
    ReflectMessage, Value as PValue,
};
use serde::{Serialize, Serializer, ser::SerializeMap};
use serde_json::{Map, Number, Value as Json};

use super::doc::Node;

const VALUE: &str = "google.protobuf.Value";
const STRUCT: &str = "google.protobuf.Struct";
const LIST_VALUE: &str = "google.protobuf.ListValue";
const RAW_JSON: &str = "openai_gateway.v1.RawJson";
const EXTRA_JSON: &str = "extra_json";

/// FxHash (as in rustc): far cheaper than SipHash for the short keys looked up per JSON member.
/// The tables hold only names from our own descriptors; JSON input is only looked up, never
/// inserted, so hash flooding cannot grow them.
#[derive(Default, Clone, Copy)]
struct FxHasher(u64);

const FX_SEED: u64 = 0x517c_c1b7_2722_0a95;

impl FxHasher {
    fn add(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(FX_SEED);
    }
}

impl Hasher for FxHasher {
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for chunk in &mut chunks {
            self.add(u64::from_le_bytes(chunk.try_into().expect("8 bytes")));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            // Byte by byte: a copy into a [u8; 8] would call memcpy for a few bytes.
            let word = rest
                .iter()
                .enumerate()
                .fold(0u64, |w, (i, b)| w | (u64::from(*b) << (8 * i)));
            self.add(word);
        }
    }
    fn write_u8(&mut self, i: u8) {
        self.add(u64::from(i));
    }
    fn write_usize(&mut self, i: usize) {
        self.add(i as u64);
    }
    fn finish(&self) -> u64 {
        self.0
    }
}

type FastMap<V> = HashMap<Box<str>, V, BuildHasherDefault<FxHasher>>;

/// How one oneof variant of a union maps to JSON (for writing JSON).
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

/// The JSON shapes a message-typed field accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fit {
    /// `google.protobuf.Value`: anything.
    Any,
    /// `google.protobuf.ListValue`: an array.
    Array,
    /// Every other message: an object.
    Object,
}

/// A field's value type, resolved for encoding.
#[derive(Debug, Clone)]
enum Ty {
    Double,
    Float,
    Int32,
    Int64,
    Uint32,
    Uint64,
    Sint32,
    Sint64,
    Fixed32,
    Fixed64,
    Sfixed32,
    Sfixed64,
    Bool,
    String,
    Bytes,
    /// Value names -> numbers.
    Enum(Arc<FastMap<i32>>),
    /// The plan index of the message type.
    Message(usize, Fit),
}

/// Singular, repeated, or a map with string keys (value type given).
#[derive(Debug, Clone)]
enum Shape {
    Single,
    List,
    Map(Ty),
    /// A map whose keys are not strings: JSON object keys never fit it.
    Unsupported,
}

/// A JSON-keyed field, resolved for encoding.
#[derive(Debug, Clone)]
struct Field {
    number: u32,
    shape: Shape,
    ty: Ty,
}

/// A typed union variant, resolved for encoding.
#[derive(Debug, Clone, Copy)]
struct VariantField {
    number: u32,
    plan: usize,
}

/// A union's catch-all, resolved for encoding.
#[derive(Debug, Clone, Copy)]
enum CatchAll {
    /// `RawJson { type, json }`: the field numbers of the variant and of its two fields.
    Raw {
        number: u32,
        ty: Option<u32>,
        json: Option<u32>,
    },
    /// `google.protobuf.Struct`.
    Struct { number: u32 },
}

/// The well-known types that hold free-form JSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Wkt {
    Value,
    Struct,
    ListValue,
}

/// What the converter needs to know about one message type, computed once.
#[derive(Debug)]
struct Plan {
    desc: MessageDescriptor,
    wkt: Option<Wkt>,
    /// JSON key -> fields, for fields read from JSON (not union variants). A key can have
    /// several fields of different types (`input` is `input_text` or `input_items`); reading
    /// picks the first that fits.
    by_key: FastMap<Vec<Field>>,
    /// The `extra_json` field number, if the message has one.
    extra_number: Option<u32>,
    /// For unions: `type` value -> variant.
    variants: FastMap<VariantField>,
    /// For unions: the catch-all variant.
    catch_all: Option<CatchAll>,
    /// (JSON key, field) in field order, for writing JSON.
    keyed: Vec<(String, FieldDescriptor)>,
    /// The `extra_json` field, for writing JSON.
    extra: Option<FieldDescriptor>,
    /// For unions: variant field number -> how it maps, for writing JSON.
    variant_kind: HashMap<u32, Variant>,
}

impl Plan {
    fn is_union(&self) -> bool {
        !self.variant_kind.is_empty()
    }

    /// The field that `key` names and that can hold `value` exactly, if any.
    fn field_for<N: Node>(&self, key: &str, value: &N) -> Option<&Field> {
        self.by_key.get(key)?.iter().find(|f| f.fits(value))
    }
}

impl Field {
    /// Whether `value` can be held exactly by this field (lists and maps must be non-empty, so
    /// that an empty `[]` / `{}` survives in `extra_json` instead of vanishing).
    fn fits<N: Node>(&self, value: &N) -> bool {
        match &self.shape {
            Shape::Single => self.ty.fits(value),
            Shape::List => value
                .as_array()
                .is_some_and(|a| !a.is_empty() && a.iter().all(|v| self.ty.fits(v))),
            Shape::Map(value_ty) => value.members().is_some_and(|mut members| {
                let mut any = false;
                members.all(|(_, v)| {
                    any = true;
                    value_ty.fits(v)
                }) && any
            }),
            Shape::Unsupported => false,
        }
    }
}

impl Ty {
    fn fits<N: Node>(&self, value: &N) -> bool {
        match self {
            Ty::Double | Ty::Float => value.as_number().is_some(),
            Ty::Int32 | Ty::Sint32 | Ty::Sfixed32 => {
                value.as_i64().is_some_and(|n| i32::try_from(n).is_ok())
            }
            Ty::Int64 | Ty::Sint64 | Ty::Sfixed64 => value.as_i64().is_some(),
            Ty::Uint32 | Ty::Fixed32 => value.as_u64().is_some_and(|n| u32::try_from(n).is_ok()),
            Ty::Uint64 | Ty::Fixed64 => value.as_u64().is_some(),
            Ty::Bool => value.as_bool().is_some(),
            Ty::String => value.as_str().is_some(),
            Ty::Bytes => false,
            Ty::Enum(names) => value.as_str().is_some_and(|s| names.contains_key(s)),
            Ty::Message(_, Fit::Any) => true,
            Ty::Message(_, Fit::Array) => value.as_array().is_some(),
            Ty::Message(_, Fit::Object) => value.is_object(),
        }
    }
}

/// The converter for every message in one descriptor pool.
#[derive(Debug)]
pub struct Schema {
    plans: Vec<Plan>,
    by_name: HashMap<String, usize>,
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

        let messages: Vec<MessageDescriptor> = pool.all_messages().collect();
        let by_name: HashMap<String, usize> = messages
            .iter()
            .enumerate()
            .map(|(i, m)| (m.full_name().to_owned(), i))
            .collect();
        let mut enums: HashMap<String, Arc<FastMap<i32>>> = HashMap::new();
        let mut ty_of = |kind: &Kind| -> Ty {
            match kind {
                Kind::Double => Ty::Double,
                Kind::Float => Ty::Float,
                Kind::Int32 => Ty::Int32,
                Kind::Int64 => Ty::Int64,
                Kind::Uint32 => Ty::Uint32,
                Kind::Uint64 => Ty::Uint64,
                Kind::Sint32 => Ty::Sint32,
                Kind::Sint64 => Ty::Sint64,
                Kind::Fixed32 => Ty::Fixed32,
                Kind::Fixed64 => Ty::Fixed64,
                Kind::Sfixed32 => Ty::Sfixed32,
                Kind::Sfixed64 => Ty::Sfixed64,
                Kind::Bool => Ty::Bool,
                Kind::String => Ty::String,
                Kind::Bytes => Ty::Bytes,
                Kind::Enum(e) => Ty::Enum(
                    enums
                        .entry(e.full_name().to_owned())
                        .or_insert_with(|| {
                            Arc::new(e.values().map(|v| (v.name().into(), v.number())).collect())
                        })
                        .clone(),
                ),
                Kind::Message(m) => Ty::Message(
                    by_name[m.full_name()],
                    match m.full_name() {
                        VALUE => Fit::Any,
                        LIST_VALUE => Fit::Array,
                        _ => Fit::Object,
                    },
                ),
            }
        };
        let mut field_of = |field: &FieldDescriptor| -> Field {
            let shape = match field.kind() {
                Kind::Message(entry) if field.is_map() => {
                    if entry.map_entry_key_field().kind() == Kind::String {
                        Shape::Map(ty_of(&entry.map_entry_value_field().kind()))
                    } else {
                        Shape::Unsupported
                    }
                }
                _ if field.is_list() => Shape::List,
                _ => Shape::Single,
            };
            Field {
                number: field.number(),
                shape,
                ty: ty_of(&field.kind()),
            }
        };

        let mut plans = Vec::with_capacity(messages.len());
        for message in &messages {
            let mut plan = Plan {
                desc: message.clone(),
                wkt: match message.full_name() {
                    VALUE => Some(Wkt::Value),
                    STRUCT => Some(Wkt::Struct),
                    LIST_VALUE => Some(Wkt::ListValue),
                    _ => None,
                },
                by_key: FastMap::default(),
                extra_number: None,
                variants: FastMap::default(),
                catch_all: None,
                keyed: Vec::new(),
                extra: None,
                variant_kind: HashMap::new(),
            };
            for oneof in message.oneofs().filter(|o| !o.is_synthetic()) {
                let typed = oneof
                    .fields()
                    .any(|f| string_option(&f, &json_type).is_some());
                if !typed {
                    continue;
                }
                for field in oneof.fields() {
                    let variant = if let Some(t) = string_option(&field, &json_type) {
                        if let Kind::Message(m) = field.kind() {
                            let plan_index = by_name[m.full_name()];
                            plan.variants.insert(
                                t.as_str().into(),
                                VariantField {
                                    number: field.number(),
                                    plan: plan_index,
                                },
                            );
                        }
                        Variant::Typed(t)
                    } else {
                        match field.kind() {
                            Kind::Message(m) if m.full_name() == RAW_JSON => {
                                let number =
                                    |name: &str| m.get_field_by_name(name).map(|f| f.number());
                                plan.catch_all = Some(CatchAll::Raw {
                                    number: field.number(),
                                    ty: number("type"),
                                    json: number("json"),
                                });
                                Variant::Raw
                            }
                            Kind::Message(m) if m.full_name() == STRUCT => {
                                plan.catch_all = Some(CatchAll::Struct {
                                    number: field.number(),
                                });
                                Variant::Struct
                            }
                            Kind::Message(_) => continue,
                            _ => Variant::Scalar,
                        }
                    };
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
                    plan.extra_number = Some(field.number());
                    plan.extra = Some(field);
                    continue;
                }
                let key = string_option(&field, &json_key).unwrap_or_else(|| field.name().into());
                plan.keyed.push((key.clone(), field.clone()));
                plan.by_key
                    .entry(key.into())
                    .or_default()
                    .push(field_of(&field));
            }
            plans.push(plan);
        }
        Self { plans, by_name }
    }

    fn plan(&self, desc: &MessageDescriptor) -> &Plan {
        &self.plans[self.index(desc)]
    }

    fn index(&self, desc: &MessageDescriptor) -> usize {
        *self
            .by_name
            .get(desc.full_name())
            .expect("every message of the pool has a plan")
    }

    /// Unions of `desc`'s pool that have no catch-all variant (a contract bug: unknown types would
    /// be dropped). Used by tests.
    pub fn unions_without_catch_all(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .plans
            .iter()
            .filter(|p| p.is_union() && p.catch_all.is_none())
            .map(|p| p.desc.full_name().to_owned())
            .collect();
        names.sort();
        names
    }

    /// The oneof variant of union `desc` that the JSON `type` value `type_name` selects.
    pub fn variant(&self, desc: &MessageDescriptor, type_name: &str) -> Option<FieldDescriptor> {
        let number = self.plan(desc).variants.get(type_name)?.number;
        desc.get_field(number)
    }

    /// Appends the protobuf encoding of the JSON object `object` as a message of type `desc`.
    /// Never fails: what does not fit is kept in `extra_json` (or the union's catch-all). A
    /// `object` that is not an object encodes as an empty message.
    pub fn encode_object<N: Node>(&self, desc: &MessageDescriptor, object: &N, out: &mut Vec<u8>) {
        let plan = self.index(desc);
        if object.is_object() {
            self.message(plan, Obj::whole(object), out);
        }
    }

    /// The JSON object `object` as the generated message type `M` of `desc`.
    pub fn decode_json<M: Message + Default, N: Node>(
        &self,
        desc: &MessageDescriptor,
        object: &N,
    ) -> Result<M, prost::DecodeError> {
        let mut buf = Vec::with_capacity(512);
        self.encode_object(desc, object, &mut buf);
        M::decode(buf.as_slice())
    }

    // --------------------------------------------------------------------------------------------
    // JSON -> protobuf wire bytes.

    fn message<N: Node>(&self, plan: usize, object: Obj<'_, N>, out: &mut Vec<u8>) {
        let plan = &self.plans[plan];
        match plan.wkt {
            Some(Wkt::Struct) => return struct_wire(object, out),
            Some(Wkt::Value) => {
                return nested(out, 5, |out| struct_wire(object, out));
            }
            _ => {}
        }
        if plan.is_union() {
            self.union(plan, object, out);
        } else {
            self.plain(plan, object, out);
        }
    }

    fn plain<N: Node>(&self, plan: &Plan, object: Obj<'_, N>, out: &mut Vec<u8>) {
        let mut extra: Vec<u8> = Vec::new();
        for (key, value) in object.members() {
            match plan.field_for(key, value) {
                Some(field) => self.field(field, value, out),
                None if plan.extra_number.is_some() => {
                    if extra.is_empty() {
                        extra.reserve(64);
                        extra.push(b'{');
                    } else {
                        extra.push(b',');
                    }
                    write_json(&mut extra, key);
                    extra.push(b':');
                    write_json(&mut extra, value);
                }
                None => {}
            }
        }
        if let Some(number) = plan.extra_number
            && !extra.is_empty()
        {
            extra.push(b'}');
            put_bytes(out, number, &extra);
        }
    }

    fn union<N: Node>(&self, plan: &Plan, object: Obj<'_, N>, out: &mut Vec<u8>) {
        let type_name = object.get("type").and_then(N::as_str);
        let Some(variant) = type_name.and_then(|t| plan.variants.get(t)) else {
            // Unknown or missing type: the catch-all keeps the complete object verbatim, and the
            // union's own fields (e.g. sequence_number) are filled too, for convenience.
            match plan.catch_all {
                Some(CatchAll::Raw { number, ty, json }) => nested(out, number, |out| {
                    if let (Some(ty), Some(t)) = (ty, type_name) {
                        put_bytes(out, ty, t.as_bytes());
                    }
                    if let Some(json) = json {
                        nested(out, json, |out| write_json(out, &object));
                    }
                }),
                Some(CatchAll::Struct { number }) => {
                    nested(out, number, |out| struct_wire(object, out));
                }
                None => {}
            }
            for (key, value) in object.members() {
                if let Some(field) = plan.field_for(key, value) {
                    self.field(field, value, out);
                }
            }
            return;
        };
        let mut taken = 0u64;
        for (i, (key, value)) in object.members().enumerate() {
            if key != "type"
                && let Some(field) = plan.field_for(key, value)
            {
                self.field(field, value, out);
                if i < 64 {
                    taken |= 1 << i;
                }
            }
        }
        // `object` is whole here: a variant's own part has no `type`, so it never gets here.
        let inner = Obj {
            node: object.node,
            outside: Some(plan),
            taken,
        };
        nested(out, variant.number, |out| {
            self.message(variant.plan, inner, out);
        });
    }

    /// A value already known to fit `field`.
    fn field<N: Node>(&self, field: &Field, value: &N, out: &mut Vec<u8>) {
        match &field.shape {
            Shape::Single => self.single(field.number, &field.ty, value, out),
            Shape::List => {
                let items = value.as_array().unwrap_or_default();
                if field.ty.packable() {
                    nested(out, field.number, |out| {
                        for item in items {
                            scalar(&field.ty, item, out);
                        }
                    });
                } else {
                    for item in items {
                        self.single(field.number, &field.ty, item, out);
                    }
                }
            }
            Shape::Map(value_ty) => {
                for (key, value) in value.members().into_iter().flatten() {
                    nested(out, field.number, |out| {
                        put_bytes(out, 1, key.as_bytes());
                        self.single(2, value_ty, value, out);
                    });
                }
            }
            Shape::Unsupported => {}
        }
    }

    fn single<N: Node>(&self, number: u32, ty: &Ty, value: &N, out: &mut Vec<u8>) {
        match ty {
            Ty::String => put_bytes(out, number, value.as_str().unwrap_or_default().as_bytes()),
            Ty::Bytes => {}
            Ty::Message(plan, _) => nested(out, number, |out| match self.plans[*plan].wkt {
                Some(Wkt::Value) => value_wire(value, out),
                Some(Wkt::ListValue) => list_wire(value.as_array().unwrap_or_default(), out),
                _ => self.message(*plan, Obj::whole(value), out),
            }),
            _ => {
                put_key(out, number, ty.wire_type());
                scalar(ty, value, out);
            }
        }
    }
}

impl Ty {
    /// Whether a repeated field of this type is packed (proto3 packs every numeric scalar).
    fn packable(&self) -> bool {
        !matches!(self, Ty::String | Ty::Bytes | Ty::Message(..))
    }

    fn wire_type(&self) -> u8 {
        match self {
            Ty::Double | Ty::Fixed64 | Ty::Sfixed64 => WIRE_I64,
            Ty::Float | Ty::Fixed32 | Ty::Sfixed32 => WIRE_I32,
            Ty::String | Ty::Bytes | Ty::Message(..) => WIRE_LEN,
            _ => WIRE_VARINT,
        }
    }
}

/// A scalar's value bytes (no key), for a value already known to fit.
fn scalar<N: Node>(ty: &Ty, value: &N, out: &mut Vec<u8>) {
    let int = || value.as_i64().unwrap_or_default();
    let uint = || value.as_u64().unwrap_or_default();
    match ty {
        Ty::Double => out.extend_from_slice(&value.as_f64().unwrap_or_default().to_le_bytes()),
        Ty::Float => {
            out.extend_from_slice(&(value.as_f64().unwrap_or_default() as f32).to_le_bytes());
        }
        // int32 is sign-extended to 64 bits on the wire.
        Ty::Int32 => put_varint(out, i64::from(int() as i32) as u64),
        Ty::Int64 => put_varint(out, int() as u64),
        Ty::Uint32 => put_varint(out, u64::from(uint() as u32)),
        Ty::Uint64 => put_varint(out, uint()),
        Ty::Sint32 => {
            let n = int() as i32;
            put_varint(out, u64::from(((n << 1) ^ (n >> 31)) as u32));
        }
        Ty::Sint64 => {
            let n = int();
            put_varint(out, ((n << 1) ^ (n >> 63)) as u64);
        }
        Ty::Fixed32 => out.extend_from_slice(&(uint() as u32).to_le_bytes()),
        Ty::Sfixed32 => out.extend_from_slice(&(int() as i32).to_le_bytes()),
        Ty::Fixed64 => out.extend_from_slice(&uint().to_le_bytes()),
        Ty::Sfixed64 => out.extend_from_slice(&int().to_le_bytes()),
        Ty::Bool => out.push(u8::from(value.as_bool().unwrap_or_default())),
        Ty::Enum(names) => {
            let number = value.as_str().and_then(|s| names.get(s)).copied();
            put_varint(out, i64::from(number.unwrap_or_default()) as u64);
        }
        Ty::String | Ty::Bytes | Ty::Message(..) => {}
    }
}

/// An object, or the part of one that a union's variant message holds: without `type` and
/// without the members the union's own fields took.
struct Obj<'a, N> {
    node: &'a N,
    /// The union whose own fields (and `type`) are left out.
    outside: Option<&'a Plan>,
    /// Bit i set: member i went to a field of `outside` (members beyond 64 are looked up again).
    taken: u64,
}

// Not derived: a derive would require `N: Clone`, and only references are copied.
impl<N> Clone for Obj<'_, N> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<N> Copy for Obj<'_, N> {}

impl<'a, N: Node> Obj<'a, N> {
    fn whole(node: &'a N) -> Self {
        Self {
            node,
            outside: None,
            taken: 0,
        }
    }

    fn keeps(&self, index: usize, key: &str, value: &N) -> bool {
        match self.outside {
            None => true,
            Some(_) if key == "type" => false,
            Some(_) if index < 64 => self.taken & (1 << index) == 0,
            Some(union) => union.field_for(key, value).is_none(),
        }
    }

    fn members(self) -> impl Iterator<Item = (&'a str, &'a N)> + Clone {
        self.node
            .members()
            .into_iter()
            .flatten()
            .enumerate()
            .filter(move |(i, (k, v))| self.keeps(*i, k, v))
            .map(|(_, member)| member)
    }

    fn get(self, key: &str) -> Option<&'a N> {
        if self.outside.is_none() {
            return self.node.get(key);
        }
        self.members().find(|(k, _)| *k == key).map(|(_, v)| v)
    }
}

/// Serializes as the JSON object of its members.
impl<N: Node> Serialize for Obj<'_, N> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(None)?;
        for (key, value) in self.members() {
            map.serialize_entry(key, value)?;
        }
        map.end()
    }
}

const WIRE_VARINT: u8 = 0;
const WIRE_I64: u8 = 1;
const WIRE_LEN: u8 = 2;
const WIRE_I32: u8 = 5;

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn put_key(out: &mut Vec<u8>, number: u32, wire_type: u8) {
    put_varint(out, (u64::from(number) << 3) | u64::from(wire_type));
}

fn put_bytes(out: &mut Vec<u8>, number: u32, bytes: &[u8]) {
    put_key(out, number, WIRE_LEN);
    put_varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

/// A length-delimited field whose content `write` appends. One byte is reserved for the length;
/// a longer length moves the content up.
fn nested(out: &mut Vec<u8>, number: u32, write: impl FnOnce(&mut Vec<u8>)) {
    put_key(out, number, WIRE_LEN);
    let at = out.len();
    out.push(0);
    write(out);
    let len = out.len() - at - 1;
    if len < 0x80 {
        out[at] = len as u8;
        return;
    }
    let mut prefix = Vec::with_capacity(10);
    put_varint(&mut prefix, len as u64);
    let grow = prefix.len() - 1;
    out.resize(out.len() + grow, 0);
    out.copy_within(at + 1..at + 1 + len, at + 1 + grow);
    out[at..at + prefix.len()].copy_from_slice(&prefix);
}

/// Compact JSON text, exactly as serde_json writes a `Value`.
fn write_json<T: Serialize + ?Sized>(out: &mut Vec<u8>, value: &T) {
    // Writing JSON into a Vec cannot fail (all map keys are strings).
    let _ = serde_json::to_writer(out, value);
}

/// JSON -> `google.protobuf.Value` fields.
fn value_wire<N: Node>(value: &N, out: &mut Vec<u8>) {
    if let Some(s) = value.as_str() {
        put_bytes(out, 3, s.as_bytes());
    } else if let Some(n) = value.as_f64() {
        put_key(out, 2, WIRE_I64);
        out.extend_from_slice(&n.to_le_bytes());
    } else if let Some(b) = value.as_bool() {
        put_key(out, 4, WIRE_VARINT);
        out.push(u8::from(b));
    } else if let Some(items) = value.as_array() {
        nested(out, 6, |out| list_wire(items, out));
    } else if value.is_object() {
        nested(out, 5, |out| struct_wire(Obj::whole(value), out));
    } else {
        put_key(out, 1, WIRE_VARINT);
        out.push(0);
    }
}

/// JSON object -> `google.protobuf.Struct` fields.
fn struct_wire<N: Node>(object: Obj<'_, N>, out: &mut Vec<u8>) {
    for (key, value) in object.members() {
        nested(out, 1, |out| {
            put_bytes(out, 1, key.as_bytes());
            nested(out, 2, |out| value_wire(value, out));
        });
    }
}

/// JSON array -> `google.protobuf.ListValue` fields.
fn list_wire<N: Node>(items: &[N], out: &mut Vec<u8>) {
    for item in items {
        nested(out, 1, |out| value_wire(item, out));
    }
}

// ------------------------------------------------------------------------------------------------
// Protobuf -> JSON.

impl Schema {
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
