//! Local checks of the lifecycle and conversation RPCs: ids that go into an upstream URL path,
//! paging parameters, and the limits OpenAI's reference states for these endpoints. Nothing
//! else: where the reference is silent, OpenAI decides.

use super::{
    call::Checked,
    validate::{input_items, metadata_limits, tools},
};
use crate::{
    error::Violation,
    pb::{
        CancelResponseRequest, CompactResponseRequest, CountInputTokensRequest,
        CreateConversationItemsRequest, CreateConversationRequest, DeleteConversationItemRequest,
        DeleteConversationRequest, DeleteResponseRequest, GetConversationItemRequest,
        GetConversationRequest, GetResponseRequest, ListConversationItemsRequest,
        ListInputItemsRequest, ResumeResponseRequest, UpdateConversationRequest,
    },
};

/// Items one conversation call may add (OpenAI's `maxItems: 20`).
const MAX_ITEMS_PER_CALL: usize = 20;
/// Page sizes OpenAI accepts for item lists.
const PAGE_SIZES: std::ops::RangeInclusive<i64> = 1..=100;
/// OpenAI's `maxLength` of `prompt_cache_key` on `/responses/compact`.
const PROMPT_CACHE_KEY_MAX: usize = 64;

/// An id goes into the upstream URL path, so it must be one path segment and nothing else:
/// non-empty, without `/`, `?`, `#`, `%`, whitespace or control characters (ids are opaque
/// otherwise: OpenAI decides whether one exists).
fn id(v: &mut Vec<Violation>, field: &str, value: &str) {
    if value.is_empty() {
        v.push(Violation::new(field, "required"));
    } else if value
        .chars()
        .any(|c| matches!(c, '/' | '?' | '#' | '%') || c.is_whitespace() || c.is_control())
    {
        v.push(Violation::new(
            field,
            "must not contain '/', '?', '#', '%', whitespace or control characters",
        ));
    }
}

/// `limit` 1-100 and `order` `asc` / `desc`, when set.
fn page(v: &mut Vec<Violation>, limit: Option<i64>, order: Option<&str>) {
    if let Some(n) = limit
        && !PAGE_SIZES.contains(&n)
    {
        v.push(Violation::new("limit", format!("{n} is outside 1-100")));
    }
    if let Some(order) = order
        && !matches!(order, "asc" | "desc")
    {
        v.push(Violation::new(
            "order",
            format!("{order:?} is not one of \"asc\", \"desc\""),
        ));
    }
}

/// Exactly one input form at most (`input_text` or `input_items`).
fn one_input_form(v: &mut Vec<Violation>, text: Option<&str>, items: usize) {
    if text.is_some() && items > 0 {
        v.push(Violation::new(
            "input_items",
            "conflicts with input_text: give at most one of input_text and input_items",
        ));
    }
}

macro_rules! checked_by_id {
    ($($request:ty => $field:ident),* $(,)?) => {
        $(
            impl Checked for $request {
                fn violations(&self) -> Vec<Violation> {
                    let mut v = Vec::new();
                    id(&mut v, stringify!($field), &self.$field);
                    v
                }
            }
        )*
    };
}

checked_by_id!(
    GetResponseRequest => response_id,
    DeleteResponseRequest => response_id,
    CancelResponseRequest => response_id,
    ResumeResponseRequest => response_id,
    GetConversationRequest => conversation_id,
    DeleteConversationRequest => conversation_id,
);

impl Checked for ListInputItemsRequest {
    fn violations(&self) -> Vec<Violation> {
        let mut v = Vec::new();
        id(&mut v, "response_id", &self.response_id);
        page(&mut v, self.limit, self.order.as_deref());
        v
    }
}

impl Checked for CountInputTokensRequest {
    fn model(&self) -> &str {
        self.model.as_deref().unwrap_or_default()
    }

    fn violations(&self) -> Vec<Violation> {
        let mut v = Vec::new();
        one_input_form(&mut v, self.input_text.as_deref(), self.input_items.len());
        input_items(&mut v, "input_items", &self.input_items);
        if self.previous_response_id.is_some() && self.conversation.is_some() {
            v.push(Violation::new(
                "previous_response_id",
                "cannot be used together with conversation",
            ));
        }
        tools(&mut v, &self.tools, self.tool_choice.as_ref());
        v
    }
}

impl Checked for CompactResponseRequest {
    fn model(&self) -> &str {
        &self.model
    }

    fn violations(&self) -> Vec<Violation> {
        let mut v = Vec::new();
        if self.model.trim().is_empty() {
            v.push(Violation::new(
                "model",
                "required: the model id, e.g. \"gpt-5\"",
            ));
        }
        one_input_form(&mut v, self.input_text.as_deref(), self.input_items.len());
        input_items(&mut v, "input_items", &self.input_items);
        if let Some(key) = &self.prompt_cache_key
            && key.chars().count() > PROMPT_CACHE_KEY_MAX
        {
            v.push(Violation::new(
                "prompt_cache_key",
                format!("at most {PROMPT_CACHE_KEY_MAX} characters"),
            ));
        }
        v
    }
}

impl Checked for CreateConversationRequest {
    fn violations(&self) -> Vec<Violation> {
        let mut v = Vec::new();
        if self.items.len() > MAX_ITEMS_PER_CALL {
            v.push(Violation::new(
                "items",
                format!(
                    "{} items: at most {MAX_ITEMS_PER_CALL} at creation (add more with CreateConversationItems)",
                    self.items.len()
                ),
            ));
        }
        input_items(&mut v, "items", &self.items);
        metadata_limits(&mut v, "metadata", &self.metadata);
        v
    }
}

impl Checked for UpdateConversationRequest {
    fn violations(&self) -> Vec<Violation> {
        let mut v = Vec::new();
        id(&mut v, "conversation_id", &self.conversation_id);
        metadata_limits(&mut v, "metadata", &self.metadata);
        v
    }
}

impl Checked for CreateConversationItemsRequest {
    fn violations(&self) -> Vec<Violation> {
        let mut v = Vec::new();
        id(&mut v, "conversation_id", &self.conversation_id);
        if self.items.is_empty() || self.items.len() > MAX_ITEMS_PER_CALL {
            v.push(Violation::new(
                "items",
                format!(
                    "{} items: give 1 to {MAX_ITEMS_PER_CALL} per call",
                    self.items.len()
                ),
            ));
        }
        input_items(&mut v, "items", &self.items);
        v
    }
}

impl Checked for ListConversationItemsRequest {
    fn violations(&self) -> Vec<Violation> {
        let mut v = Vec::new();
        id(&mut v, "conversation_id", &self.conversation_id);
        page(&mut v, self.limit, self.order.as_deref());
        v
    }
}

impl Checked for GetConversationItemRequest {
    fn violations(&self) -> Vec<Violation> {
        let mut v = Vec::new();
        id(&mut v, "conversation_id", &self.conversation_id);
        id(&mut v, "item_id", &self.item_id);
        v
    }
}

impl Checked for DeleteConversationItemRequest {
    fn violations(&self) -> Vec<Violation> {
        let mut v = Vec::new();
        id(&mut v, "conversation_id", &self.conversation_id);
        id(&mut v, "item_id", &self.item_id);
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(v: &[Violation]) -> Vec<&str> {
        v.iter().map(|v| v.field.as_str()).collect()
    }

    #[test]
    fn ids_must_be_one_path_segment() {
        for bad in ["../files", "a?b", "a/b", "a#b", "a%2Fb", "a b", "a\nb", ""] {
            let request = GetResponseRequest {
                response_id: bad.into(),
                ..Default::default()
            };
            assert_eq!(fields(&request.violations()), ["response_id"], "{bad:?}");
        }
        for good in ["resp_123", "resp-ABC.def_0", "conv_ü"] {
            let request = GetResponseRequest {
                response_id: good.into(),
                ..Default::default()
            };
            assert!(request.violations().is_empty(), "{good:?}");
        }
    }

    #[test]
    fn paging_is_checked_where_set() {
        let page = |limit, order: Option<&str>| ListInputItemsRequest {
            response_id: "resp_1".into(),
            limit,
            order: order.map(str::to_owned),
            ..Default::default()
        };
        assert!(page(None, None).violations().is_empty());
        assert!(page(Some(1), Some("asc")).violations().is_empty());
        assert!(page(Some(100), Some("desc")).violations().is_empty());
        assert_eq!(fields(&page(Some(0), None).violations()), ["limit"]);
        assert_eq!(fields(&page(Some(101), None).violations()), ["limit"]);
        assert_eq!(fields(&page(None, Some("up")).violations()), ["order"]);
    }

    #[test]
    fn conversation_items_per_call() {
        let item = crate::pb::InputItem::default();
        let add = |n| CreateConversationItemsRequest {
            conversation_id: "conv_1".into(),
            items: vec![item.clone(); n],
            ..Default::default()
        };
        assert!(fields(&add(0).violations()).contains(&"items"));
        assert!(fields(&add(21).violations()).contains(&"items"));
    }
}
