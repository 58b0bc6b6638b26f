//! The contract check: every member and property of OpenAI's spec that this gateway mirrors is
//! typed in `proto/`, or listed in [`ALLOWED`] with the reason it is not.
//!
//! It reads the checked-in snapshot `spec/openai/snapshot.json` (a trimmed digest of OpenAI's
//! OpenAPI spec, see `spec/openai/README.md`) and the contract's descriptors, and fails naming
//! each gap:
//!
//! * a member of a spec union (`OutputItem`, `InputItem`, `Tool`, `ToolChoiceParam`, the stream
//!   events, content parts, annotations) whose `type` value selects no variant of the proto
//!   union it maps to ([`UNIONS`]);
//! * a property of such a member that the variant's message has no field for (matched by JSON
//!   key: the field name or its `(json_key)`);
//! * a property of `CreateResponse`, `Response`, `CreateImageRequest`, `CreateSpeechRequest` or
//!   the request body of a lifecycle endpoint (`/responses/input_tokens`, `/responses/compact`,
//!   `/conversations`) that the proto message has no field for ([`OBJECTS`]).
//!
//! An allow-list entry that no longer matches a gap fails too, so the list stays short and true.
//! When OpenAI ships: refresh the snapshot (`scripts/refresh-openai-spec.py`, see the README's
//! "When OpenAI ships"), run `cargo test --test contract`, and type what it names.

use std::collections::BTreeSet;

use openai_grpc_gateway::pb::pool;
use prost_reflect::{DynamicMessage, FieldDescriptor, Kind, MessageDescriptor, Value as PValue};
use serde_json::Value;

const SNAPSHOT: &str = include_str!("../spec/openai/snapshot.json");
const PACKAGE: &str = "openai_gateway.v1";

/// Spec union -> the proto unions that must type each of its members. A spec union used on
/// both sides (content parts) maps to the request-side and the response-side union.
const UNIONS: &[(&str, &[&str])] = &[
    ("ResponseStreamEvent", &["CreateResponseResponse"]),
    // Response-side items: Response.output, and the stored-item lists (input items,
    // conversation items, compaction output) that share the same item messages.
    ("OutputItem", &["OutputItem"]),
    ("ItemResource", &["OutputItem"]),
    ("ItemField", &["OutputItem"]),
    ("ConversationItem", &["OutputItem"]),
    // Request-side items (`input`).
    ("InputItem", &["InputItem"]),
    ("Item", &["InputItem"]),
    ("Tool", &["Tool"]),
    ("ToolChoiceParam", &["ToolChoice"]),
    // Input parts are sent (messages, function outputs) and received (stored input items).
    ("InputContent", &["InputContent", "OutputContent"]),
    ("OutputContent", &["OutputContent"]),
    // Assistant parts are received, and replayed in input messages.
    ("OutputMessageContent", &["OutputContent", "InputContent"]),
    ("Annotation", &["Annotation"]),
];

/// Spec object (in the snapshot's `objects`, or a request body in its `schemas`) -> the proto
/// message that must have a field for each of its properties.
const OBJECTS: &[(&str, &str)] = &[
    ("CreateResponse", "CreateResponseRequest"),
    ("Response", "Response"),
    ("CreateImageRequest", "CreateImageRequest"),
    ("CreateSpeechRequest", "CreateSpeechRequest"),
    ("TokenCountsBody", "CountInputTokensRequest"),
    ("CompactResponseMethodPublicBody", "CompactResponseRequest"),
    ("CreateConversationBody", "CreateConversationRequest"),
    ("UpdateConversationBody", "UpdateConversationRequest"),
];

/// What is deliberately not typed, each with its reason. A gap is named `Object.property`,
/// `Union/type` (a member) or `Union/type.property` (a member's property).
const ALLOWED: &[(&str, &str)] = &[
    // The gateway decides whether the upstream call streams (from `partial_images`), because
    // it decodes the answer; a caller cannot choose it.
    (
        "CreateImageRequest.stream",
        "set by the gateway from partial_images",
    ),
    // The gateway picks the speech transport per model (`sse` where supported, else raw audio)
    // and always streams audio to the caller; a caller cannot choose it.
    (
        "CreateSpeechRequest.stream_format",
        "set by the gateway per model",
    ),
];

fn message(name: &str) -> MessageDescriptor {
    pool()
        .get_message_by_name(&format!("{PACKAGE}.{name}"))
        .unwrap_or_else(|| panic!("{PACKAGE}.{name} is not in the contract"))
}

/// A custom field option from options.proto, if set.
fn option(field: &FieldDescriptor, name: &str) -> Option<PValue> {
    let ext = pool().get_extension_by_name(&format!("{PACKAGE}.{name}"))?;
    // Re-decode the options with this pool, which knows the extensions (see convert/json.rs).
    let options_desc = pool().get_message_by_name("google.protobuf.FieldOptions")?;
    let raw = prost::Message::encode_to_vec(&field.options());
    let options = DynamicMessage::decode(options_desc, raw.as_slice()).ok()?;
    options
        .has_extension(&ext)
        .then(|| options.get_extension(&ext).into_owned())
}

/// The JSON keys the fields of `desc` map to (oneof variants of a union excluded). A
/// `(gateway_only)` field counts under its name: the gateway handles that property itself
/// (e.g. `stream`, `output_text`).
fn keys(desc: &MessageDescriptor) -> BTreeSet<String> {
    desc.fields()
        .filter(|f| option(f, "json_type").is_none())
        .map(|f| match option(&f, "json_key") {
            Some(PValue::String(key)) => key,
            _ => f.name().to_owned(),
        })
        .collect()
}

/// The variants of a proto union: `type` value -> the variant's message.
fn variants(union: &MessageDescriptor) -> Vec<(String, MessageDescriptor)> {
    union
        .fields()
        .filter_map(|f| match (option(&f, "json_type"), f.kind()) {
            (Some(PValue::String(ty)), Kind::Message(m)) => Some((ty, m)),
            _ => None,
        })
        .collect()
}

/// Whether the union has a variant holding a bare JSON string (`tool_choice: "auto"`).
fn has_scalar_variant(union: &MessageDescriptor) -> bool {
    union.oneofs().filter(|o| !o.is_synthetic()).any(|o| {
        o.fields()
            .any(|f| f.kind() == Kind::String && option(&f, "json_type").is_none())
    })
}

fn properties(record: &Value) -> Vec<&str> {
    let mut names: Vec<&str> = record
        .get("properties")
        .and_then(Value::as_object)
        .map(|p| p.keys().map(String::as_str).collect())
        .unwrap_or_default();
    names.sort_unstable();
    names
}

/// Every gap between the snapshot and the contract, as `(name, description)`.
fn gaps(snapshot: &Value) -> Vec<(String, String)> {
    let mut gaps = Vec::new();
    for (spec_union, proto_unions) in UNIONS {
        let members = snapshot["unions"][spec_union]["members"]
            .as_array()
            .unwrap_or_else(|| panic!("the snapshot has no union {spec_union}"));
        for proto_name in *proto_unions {
            let union = message(proto_name);
            let union_keys = keys(&union);
            let variants = variants(&union);
            for member in members {
                let schema = member["schema"].as_str().unwrap_or("?");
                let type_values: Vec<&str> = member
                    .get("type_values")
                    .and_then(Value::as_array)
                    .map(|v| v.iter().filter_map(Value::as_str).collect())
                    .unwrap_or_default();
                if type_values.is_empty() {
                    // A member without a `type` (a bare string such as ToolChoiceOptions).
                    if member.get("kind").and_then(Value::as_str) == Some("string")
                        && !has_scalar_variant(&union)
                    {
                        gaps.push((
                            format!("{spec_union}/({schema})"),
                            format!("{PACKAGE}.{proto_name} has no string variant for {schema}"),
                        ));
                    }
                    continue;
                }
                for ty in type_values {
                    let Some((_, variant)) = variants.iter().find(|(t, _)| t == ty) else {
                        gaps.push((
                            format!("{spec_union}/{ty}"),
                            format!(
                                "member {schema}: no variant of {PACKAGE}.{proto_name} has (json_type) = \"{ty}\""
                            ),
                        ));
                        continue;
                    };
                    let variant_keys = keys(variant);
                    for property in properties(member) {
                        if property == "type"
                            || variant_keys.contains(property)
                            || union_keys.contains(property)
                        {
                            continue;
                        }
                        gaps.push((
                            format!("{spec_union}/{ty}.{property}"),
                            format!(
                                "member {schema}: {} has no field for `{property}`",
                                variant.full_name()
                            ),
                        ));
                    }
                }
            }
        }
    }
    for (spec_object, proto_name) in OBJECTS {
        let object = match &snapshot["objects"][spec_object] {
            Value::Null => &snapshot["schemas"][spec_object],
            object => object,
        };
        assert!(
            object.is_object(),
            "the snapshot has no object {spec_object}"
        );
        let proto_keys = keys(&message(proto_name));
        for property in properties(object) {
            if !proto_keys.contains(property) {
                gaps.push((
                    format!("{spec_object}.{property}"),
                    format!("{PACKAGE}.{proto_name} has no field for `{property}`"),
                ));
            }
        }
    }
    // A spec union mapped to two proto unions names the same gap twice only if both miss it.
    gaps.sort();
    gaps.dedup();
    gaps
}

#[test]
fn the_contract_types_every_member_and_property_of_the_spec_snapshot() {
    let snapshot: Value = serde_json::from_str(SNAPSHOT).expect("the snapshot is JSON");
    let commit = snapshot["header"]["commit"].as_str().unwrap_or("?");
    let gaps = gaps(&snapshot);
    let allowed: BTreeSet<&str> = ALLOWED.iter().map(|(name, _)| *name).collect();
    let untyped: Vec<String> = gaps
        .iter()
        .filter(|(name, _)| !allowed.contains(name.as_str()))
        .map(|(name, why)| format!("  {name}: {why}"))
        .collect();
    let stale: Vec<&str> = allowed
        .iter()
        .filter(|name| !gaps.iter().any(|(gap, _)| gap == *name))
        .copied()
        .collect();
    assert!(
        untyped.is_empty() && stale.is_empty(),
        "the contract is behind OpenAI's spec (openai-openapi {commit}).\n\
         Untyped ({}): type each in proto/ (or, if it must stay raw JSON, add it to ALLOWED in \
         tests/contract.rs with the reason):\n{}\n\
         Allow-list entries that are no longer needed (delete them): {stale:?}",
        untyped.len(),
        untyped.join("\n"),
    );
}

#[test]
fn the_allow_list_stays_short_and_explained() {
    assert!(ALLOWED.len() <= 5, "{} entries", ALLOWED.len());
    for (name, why) in ALLOWED {
        assert!(!why.trim().is_empty(), "{name} has no reason");
    }
}

#[test]
fn the_check_sees_a_member_and_a_property_the_contract_lacks() {
    // The check itself: a spec with one made-up item type and made-up properties (of a member,
    // an object and a request body) must fail naming each, so a broken check cannot pass
    // silently.
    let mut snapshot: Value = serde_json::from_str(SNAPSHOT).unwrap();
    let members = snapshot["unions"]["OutputItem"]["members"]
        .as_array_mut()
        .unwrap();
    members.push(serde_json::json!({
        "schema": "HologramCall",
        "type_values": ["hologram_call"],
        "properties": {"type": {"type": "string"}, "id": {"type": "string"}},
    }));
    members[0]["properties"]["sparkle"] = serde_json::json!({"type": "string"});
    snapshot["objects"]["CreateSpeechRequest"]["properties"]["pitch"] =
        serde_json::json!({"type": "number"});
    snapshot["schemas"]["CompactResponseMethodPublicBody"]["properties"]["brevity"] =
        serde_json::json!({"type": "string"});
    let names: Vec<String> = gaps(&snapshot).into_iter().map(|(n, _)| n).collect();
    for expected in [
        "OutputItem/hologram_call",
        "OutputItem/message.sparkle",
        "CreateSpeechRequest.pitch",
        "CompactResponseMethodPublicBody.brevity",
    ] {
        assert!(
            names.iter().any(|n| n == expected),
            "{expected} not found in {names:?}"
        );
    }
}
