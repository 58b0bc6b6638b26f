//! The Conversations API (`/v1/conversations…`): conversations with metadata and items, kept in
//! the fake's [`super::store::Store`]. Responses created with `conversation` add their input and
//! output items here (see `routes::responses`).

use serde_json::{Value, json};
use tokio::time::Instant;

use super::lifecycle::PageParams;
use super::routes::{bad_request, missing, non_null, object_body};
use super::store::{self, kind};
use super::{RecordedRequest, Reply, Shared};

/// Most items one create or add-items call may carry.
const MAX_ITEMS_PER_CALL: usize = 20;
/// Metadata limits (OpenAI's documented ones).
const MAX_METADATA_PAIRS: usize = 16;
const MAX_METADATA_KEY: usize = 64;
const MAX_METADATA_VALUE: usize = 512;

/// 404 for an unknown or deleted conversation; `param` names the field that referred to it.
pub(super) fn not_found(id: &str, param: Option<&str>) -> Reply {
    Reply::error(
        404,
        &format!("Conversation with id '{id}' not found."),
        "invalid_request_error",
        param,
        None,
    )
}

fn item_not_found(id: &str) -> Reply {
    Reply::error(
        404,
        &format!("Item with id '{id}' not found."),
        "invalid_request_error",
        None,
        None,
    )
}

/// Dispatches `/v1/conversations` + `rest`; `None` for a route that does not exist.
pub(super) fn route(
    req: &RecordedRequest,
    shared: &Shared,
    rest: &[&str],
) -> Option<Result<Reply, Reply>> {
    Some(match (req.method.as_str(), rest) {
        ("POST", []) => create(req, shared),
        ("GET", [id]) => with(shared, id, |c| Ok(c.resource())),
        ("POST", [id]) => update(req, shared, id),
        ("DELETE", [id]) => {
            if shared.lock().store.delete_conversation(id) {
                Ok(Reply::json(
                    200,
                    &json!({"id": id, "object": "conversation.deleted", "deleted": true}),
                ))
            } else {
                Err(not_found(id, None))
            }
        }
        ("POST", [id, "items"]) => add_items(req, shared, id),
        ("GET", [id, "items"]) => {
            let paging = match PageParams::parse(req) {
                Ok(p) => p,
                Err(e) => return Some(Err(e)),
            };
            with(shared, id, |c| Ok(paging.page(&c.items)))
        }
        ("GET", [id, "items", item]) => with(shared, id, |c| {
            c.items
                .iter()
                .find(|i| i.get("id").and_then(Value::as_str) == Some(item))
                .cloned()
                .ok_or_else(|| item_not_found(item))
        }),
        ("DELETE", [id, "items", item]) => {
            let now = Instant::now();
            let mut inner = shared.lock();
            inner.store.settle(now);
            match inner.store.conversation_mut(id) {
                None => Err(not_found(id, None)),
                Some(c) => {
                    let before = c.items.len();
                    c.items
                        .retain(|i| i.get("id").and_then(Value::as_str) != Some(item));
                    if c.items.len() == before {
                        Err(item_not_found(item))
                    } else {
                        Ok(Reply::json(200, &c.resource()))
                    }
                }
            }
        }
        _ => return None,
    })
}

/// Runs `f` on conversation `id` (after settling finished background responses) and replies
/// with its JSON.
fn with(
    shared: &Shared,
    id: &str,
    f: impl FnOnce(&store::Conversation) -> Result<Value, Reply>,
) -> Result<Reply, Reply> {
    let mut inner = shared.lock();
    inner.store.settle(Instant::now());
    let c = inner
        .store
        .conversation(id)
        .ok_or_else(|| not_found(id, None))?;
    f(c).map(|v| Reply::json(200, &v))
}

/// Checks `metadata` against OpenAI's limits: string values, at most 16 pairs, keys up to 64
/// and values up to 512 characters. Null or absent gives `{}`.
fn metadata(value: Option<&Value>) -> Result<Value, Reply> {
    let bad = |message: String, code: &str| bad_request(&message, Some("metadata"), Some(code));
    let map = match value {
        None | Some(Value::Null) => return Ok(json!({})),
        Some(Value::Object(m)) => m,
        Some(other) => {
            return Err(bad(
                format!(
                    "Invalid type for 'metadata': expected an object, but got {} instead.",
                    kind(other)
                ),
                "invalid_type",
            ));
        }
    };
    if map.len() > MAX_METADATA_PAIRS {
        return Err(bad(
            format!(
                "Invalid 'metadata': too many properties. Expected an object with at most {MAX_METADATA_PAIRS} properties, but got an object with {} properties instead.",
                map.len()
            ),
            "object_above_max_properties",
        ));
    }
    for (k, v) in map {
        let key_len = k.chars().count();
        if key_len > MAX_METADATA_KEY {
            return Err(bad(
                format!(
                    "Invalid 'metadata': key too long. Expected a key with maximum length {MAX_METADATA_KEY}, but got a key with length {key_len} instead."
                ),
                "string_above_max_length",
            ));
        }
        let Value::String(s) = v else {
            return Err(bad(
                format!(
                    "Invalid type for 'metadata.{k}': expected a string, but got {} instead.",
                    kind(v)
                ),
                "invalid_type",
            ));
        };
        let len = s.chars().count();
        if len > MAX_METADATA_VALUE {
            return Err(bad(
                format!(
                    "Invalid 'metadata.{k}': string too long. Expected a string with maximum length {MAX_METADATA_VALUE}, but got a string with length {len} instead."
                ),
                "string_above_max_length",
            ));
        }
    }
    Ok(Value::Object(map.clone()))
}

/// Checks and normalises `items` (an array of at most 20 input items; with `required`, at
/// least one).
fn items(body: &Value, required: bool) -> Result<Vec<Value>, Reply> {
    let list = match non_null(body, "items") {
        None if required => return Err(missing("items")),
        None => return Ok(Vec::new()),
        Some(Value::Array(list)) => list,
        Some(other) => {
            return Err(bad_request(
                &format!(
                    "Invalid type for 'items': expected an array of input items, but got {} instead.",
                    kind(other)
                ),
                Some("items"),
                Some("invalid_type"),
            ));
        }
    };
    if list.len() > MAX_ITEMS_PER_CALL {
        return Err(bad_request(
            &format!(
                "Invalid 'items': array too long. Expected an array with maximum length {MAX_ITEMS_PER_CALL}, but got an array with length {} instead.",
                list.len()
            ),
            Some("items"),
            Some("array_above_max_length"),
        ));
    }
    if required && list.is_empty() {
        return Err(bad_request(
            "Invalid 'items': empty array. Expected an array with minimum length 1, but got an empty array instead.",
            Some("items"),
            Some("empty_array"),
        ));
    }
    list.iter()
        .enumerate()
        .map(|(i, item)| {
            store::normalize_item(item, &format!("items[{i}]"))
                .map_err(|(m, p, c)| bad_request(&m, Some(&p), Some(c)))
        })
        .collect()
}

/// `POST /v1/conversations` (the body is optional).
fn create(req: &RecordedRequest, shared: &Shared) -> Result<Reply, Reply> {
    let body = object_body(req, true)?;
    let items = items(&body, false)?;
    let metadata = metadata(body.get("metadata"))?;
    let resource = shared.lock().store.create_conversation(metadata, items);
    Ok(Reply::json(200, &resource))
}

/// `POST /v1/conversations/{id}`: replaces the metadata.
fn update(req: &RecordedRequest, shared: &Shared, id: &str) -> Result<Reply, Reply> {
    let body = object_body(req, true)?;
    if body.get("metadata").is_none() {
        return Err(missing("metadata"));
    }
    let metadata = metadata(body.get("metadata"))?;
    let mut inner = shared.lock();
    let c = inner
        .store
        .conversation_mut(id)
        .ok_or_else(|| not_found(id, None))?;
    c.metadata = metadata;
    Ok(Reply::json(200, &c.resource()))
}

/// `POST /v1/conversations/{id}/items`: appends 1 to 20 items; replies with them (with ids).
fn add_items(req: &RecordedRequest, shared: &Shared, id: &str) -> Result<Reply, Reply> {
    let body = object_body(req, true)?;
    let added = items(&body, true)?;
    let mut inner = shared.lock();
    inner.store.settle(Instant::now());
    let c = inner
        .store
        .conversation_mut(id)
        .ok_or_else(|| not_found(id, None))?;
    c.items.extend(added.iter().cloned());
    Ok(Reply::json(200, &store::list(added, false)))
}

#[cfg(test)]
mod tests {
    use serde_json::Map;

    use super::*;

    #[test]
    fn metadata_limits() {
        assert_eq!(metadata(None).ok(), Some(json!({})));
        assert_eq!(
            metadata(Some(&json!({"a": "b"}))).ok(),
            Some(json!({"a": "b"}))
        );
        let many: Map<String, Value> = (0..17).map(|i| (format!("k{i}"), json!("v"))).collect();
        for bad in [
            Value::Object(many),
            json!({"k".repeat(65): "v"}),
            json!({"k": "v".repeat(513)}),
            json!({"k": 1}),
            json!("x"),
        ] {
            assert!(metadata(Some(&bad)).is_err(), "{bad}");
        }
        let ok: Map<String, Value> = (0..16)
            .map(|i| (format!("{i:064}"), json!("v".repeat(512))))
            .collect();
        assert!(metadata(Some(&Value::Object(ok))).is_ok());
    }
}
