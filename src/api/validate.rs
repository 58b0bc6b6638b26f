//! Local request validation, run before any upstream call. Each problem is one [`Violation`]
//! naming the proto path of the field, so a caller sees every mistake at once.
//!
//! Never stricter than OpenAI: a rule is checked here only if OpenAI's spec states it (a
//! schema constraint such as `max_output_tokens >= 16`, or a documented rule such as the
//! metadata limits); where the spec is silent, the request goes to OpenAI, which decides. Open
//! sets (models, effort levels, service tiers, include values, image detail levels) are left for
//! OpenAI to judge, so new values work the day they ship. Refusing a valid request is a bug;
//! letting an invalid one through costs one round trip.

use super::call::Checked;
use crate::{
    error::Violation,
    pb::{
        CreateResponseRequest, InputContent, InputItem, Tool, ToolChoice, input_content,
        input_item, text_format, tool, tool_choice,
    },
};

/// OpenAI's metadata limits (the `Metadata` schema of OpenAI's API reference): 16 pairs,
/// 64-char keys, 512-char values.
const METADATA_MAX_PAIRS: usize = 16;
const METADATA_MAX_KEY: usize = 64;
const METADATA_MAX_VALUE: usize = 512;

/// `CreateResponse.max_output_tokens` minimum (OpenAI's schema).
const MIN_OUTPUT_TOKENS: i64 = 16;
/// `CreateResponse.top_logprobs` range (OpenAI's schema).
const MAX_TOP_LOGPROBS: i32 = 20;
/// `ContextManagementParam.compact_threshold` minimum (OpenAI's schema).
const MIN_COMPACT_THRESHOLD: i64 = 1000;

/// Checks a `CreateResponseRequest`; an empty result means it may be sent.
impl Checked for CreateResponseRequest {
    fn model(&self) -> &str {
        &self.model
    }

    fn violations(&self) -> Vec<Violation> {
        create_response(self)
    }
}

fn create_response(req: &CreateResponseRequest) -> Vec<Violation> {
    let mut v = Vec::new();
    // A stored prompt template can supply the model and the input.
    let template = req.prompt.is_some();
    if req.model.trim().is_empty() && !template {
        v.push(Violation::new(
            "model",
            "required (unless prompt names a template): the model id, e.g. \"gpt-4.1\"",
        ));
    }
    match (&req.input_text, req.input_items.is_empty()) {
        (None, true) if !template => v.push(Violation::new(
            "input_text",
            "required: give the input as input_text (plain text) or input_items (an array of items), or a prompt template",
        )),
        (Some(_), false) => v.push(Violation::new(
            "input_items",
            "conflicts with input_text: give exactly one of input_text and input_items",
        )),
        _ => {}
    }
    if let Some(prompt) = &req.prompt
        && prompt.id.trim().is_empty()
    {
        v.push(Violation::new(
            "prompt.id",
            "required: the prompt template id, e.g. \"pmpt_123\"",
        ));
    }
    for (i, item) in req.input_items.iter().enumerate() {
        input_item(&mut v, &format!("input_items[{i}]"), item);
    }
    if let Some(t) = req.temperature
        && !(0.0..=2.0).contains(&t)
    {
        v.push(Violation::new("temperature", format!("{t} is outside 0-2")));
    }
    if let Some(p) = req.top_p
        && !(0.0..=1.0).contains(&p)
    {
        v.push(Violation::new("top_p", format!("{p} is outside 0-1")));
    }
    if let Some(n) = req.max_output_tokens
        && n < MIN_OUTPUT_TOKENS
    {
        v.push(Violation::new(
            "max_output_tokens",
            format!("{n} must be at least {MIN_OUTPUT_TOKENS}"),
        ));
    }
    if let Some(n) = req.top_logprobs
        && !(0..=MAX_TOP_LOGPROBS).contains(&n)
    {
        v.push(Violation::new(
            "top_logprobs",
            format!("{n} is outside 0-{MAX_TOP_LOGPROBS}"),
        ));
    }
    for (i, entry) in req.context_management.iter().enumerate() {
        if entry.r#type.trim().is_empty() {
            v.push(Violation::new(
                format!("context_management[{i}].type"),
                "required, e.g. \"compaction\"",
            ));
        }
        if let Some(t) = entry.compact_threshold
            && t < MIN_COMPACT_THRESHOLD
        {
            v.push(Violation::new(
                format!("context_management[{i}].compact_threshold"),
                format!("{t} must be at least {MIN_COMPACT_THRESHOLD}"),
            ));
        }
    }
    if let Some(m) = &req.moderation
        && m.model.trim().is_empty()
    {
        v.push(Violation::new(
            "moderation.model",
            "required: the moderation model, e.g. \"omni-moderation-latest\"",
        ));
    }
    if let Some(id) = &req.previous_response_id
        && id.trim().is_empty()
    {
        v.push(Violation::new(
            "previous_response_id",
            "must not be empty when set (the id of a stored response, e.g. \"resp_123\")",
        ));
    }
    conversation(&mut v, req);
    metadata(&mut v, "metadata", &req.metadata);
    for (i, t) in req.tools.iter().enumerate() {
        tool(&mut v, &format!("tools[{i}]"), t);
    }
    if let Some(choice) = &req.tool_choice {
        tool_choice(&mut v, choice);
    }
    if let Some(format) = req.text.as_ref().and_then(|t| t.format.as_ref()) {
        match &format.format {
            None => v.push(Violation::new(
                "text.format",
                "set one of text, json_schema, json_object or other",
            )),
            Some(text_format::Format::JsonSchema(s)) => {
                if !is_identifier(&s.name) {
                    v.push(Violation::new(
                        "text.format.json_schema.name",
                        "required: 1-64 characters from a-z, A-Z, 0-9, _ and -",
                    ));
                }
                if s.schema.is_none() {
                    v.push(Violation::new(
                        "text.format.json_schema.schema",
                        "required: the JSON Schema the output must follow",
                    ));
                }
            }
            Some(_) => {}
        }
    }
    if let Some(t) = &req.truncation
        && !matches!(t.as_str(), "auto" | "disabled")
    {
        v.push(Violation::new(
            "truncation",
            format!("{t:?} is not one of \"auto\", \"disabled\""),
        ));
    }
    if let Some(extra) = &req.extra_body
        && extra.fields.contains_key("stream")
    {
        v.push(Violation::new(
            "extra_body",
            "must not set \"stream\": use the request's stream field",
        ));
    }
    v
}

/// `conversation` in either form, never both, and not with `previous_response_id` (OpenAI's
/// reference: "cannot be used in conjunction").
fn conversation(v: &mut Vec<Violation>, req: &CreateResponseRequest) {
    if req.conversation.is_some() && req.conversation_object.is_some() {
        v.push(Violation::new(
            "conversation_object",
            "conflicts with conversation: give the conversation id once, in either form",
        ));
    }
    let named = req.conversation.is_some() || req.conversation_object.is_some();
    if named && req.previous_response_id.is_some() {
        v.push(Violation::new(
            "previous_response_id",
            "cannot be used together with a conversation: the conversation already holds the history",
        ));
    }
    for (field, id) in [
        ("conversation", req.conversation.as_deref()),
        (
            "conversation_object.id",
            req.conversation_object.as_ref().map(|c| c.id.as_str()),
        ),
    ] {
        if id.is_some_and(|id| id.trim().is_empty()) {
            v.push(Violation::new(
                field,
                "must not be empty when set (a conversation id, e.g. \"conv_123\")",
            ));
        }
    }
}

/// Checks the items of an input list (for requests that take items, like a conversation's).
pub(super) fn input_items(v: &mut Vec<Violation>, path: &str, items: &[InputItem]) {
    for (i, item) in items.iter().enumerate() {
        input_item(v, &format!("{path}[{i}]"), item);
    }
}

/// Checks metadata pairs against OpenAI's limits.
pub(super) fn metadata_limits(
    v: &mut Vec<Violation>,
    path: &str,
    map: &std::collections::HashMap<String, String>,
) {
    metadata(v, path, map);
}

/// Checks `tools` and `tool_choice`, as for `CreateResponse`.
pub(super) fn tools(v: &mut Vec<Violation>, list: &[Tool], choice: Option<&ToolChoice>) {
    for (i, t) in list.iter().enumerate() {
        tool(v, &format!("tools[{i}]"), t);
    }
    if let Some(choice) = choice {
        tool_choice(v, choice);
    }
}

fn input_item(v: &mut Vec<Violation>, path: &str, item: &InputItem) {
    match &item.item {
        None => v.push(Violation::new(
            path,
            "set one kind of item, e.g. message, function_call_output or other",
        )),
        Some(input_item::Item::Message(m)) => {
            if !matches!(
                m.role.as_str(),
                "user" | "assistant" | "system" | "developer"
            ) {
                v.push(Violation::new(
                    format!("{path}.message.role"),
                    format!(
                        "{:?} is not one of \"user\", \"assistant\", \"system\", \"developer\"",
                        m.role
                    ),
                ));
            }
            match (&m.content_text, m.content.is_empty()) {
                (None, true) => v.push(Violation::new(
                    format!("{path}.message.content"),
                    "required: give content_text or content parts",
                )),
                (Some(_), false) => v.push(Violation::new(
                    format!("{path}.message.content"),
                    "conflicts with content_text: give exactly one",
                )),
                _ => {}
            }
            for (j, part) in m.content.iter().enumerate() {
                content_part(v, &format!("{path}.message.content[{j}]"), part);
            }
        }
        Some(input_item::Item::FunctionCallOutput(o)) => {
            if o.output.is_none() && o.output_parts.is_empty() {
                v.push(Violation::new(
                    format!("{path}.function_call_output.output"),
                    "required: the function's result as output (text) or output_parts",
                ));
            } else if o.output.is_some() && !o.output_parts.is_empty() {
                v.push(Violation::new(
                    format!("{path}.function_call_output.output_parts"),
                    "conflicts with output: give exactly one",
                ));
            }
            for (j, part) in o.output_parts.iter().enumerate() {
                content_part(
                    v,
                    &format!("{path}.function_call_output.output_parts[{j}]"),
                    part,
                );
            }
        }
        Some(input_item::Item::FunctionCall(c)) => {
            if c.call_id.is_empty() || c.name.is_empty() {
                v.push(Violation::new(
                    format!("{path}.function_call"),
                    "call_id and name are required",
                ));
            }
        }
        Some(input_item::Item::ItemReference(r)) => {
            if r.id.is_empty() {
                v.push(Violation::new(
                    format!("{path}.item_reference.id"),
                    "required",
                ));
            }
        }
        Some(input_item::Item::Other(s)) => require_type(v, &format!("{path}.other"), s),
        // Replayed output items and tool outputs: their shapes are OpenAI's to judge.
        Some(_) => {}
    }
}

fn content_part(v: &mut Vec<Violation>, path: &str, part: &InputContent) {
    match &part.part {
        None => v.push(Violation::new(
            path,
            "set one of input_text, input_image, input_file, output_text, refusal or other",
        )),
        Some(input_content::Part::InputText(t)) if t.text.is_empty() => {
            v.push(Violation::new(
                format!("{path}.input_text.text"),
                "required",
            ));
        }
        // Image and file parts: which of image_url / file_id (file_id / file_url / file_data)
        // to give, and the detail levels, are not constraints of OpenAI's schema (`detail` has
        // grown, e.g. `original`); OpenAI judges them.
        Some(input_content::Part::Other(s)) => require_type(v, &format!("{path}.other"), s),
        Some(_) => {}
    }
}

fn tool(v: &mut Vec<Violation>, path: &str, t: &Tool) {
    match &t.tool {
        None => v.push(Violation::new(
            path,
            "set one kind of tool, e.g. function, web_search, mcp or other",
        )),
        // OpenAI's schema puts no pattern on a function's name (only inside a namespace).
        Some(tool::Tool::Function(f)) => {
            if f.name.is_empty() {
                v.push(Violation::new(
                    format!("{path}.function.name"),
                    "required: the function name",
                ));
            }
        }
        Some(tool::Tool::Custom(c)) => {
            if c.name.is_empty() {
                v.push(Violation::new(
                    format!("{path}.custom.name"),
                    "required: the tool name",
                ));
            }
        }
        Some(tool::Tool::Namespace(n)) => {
            if n.name.is_empty() {
                v.push(Violation::new(
                    format!("{path}.namespace.name"),
                    "required: the namespace name",
                ));
            }
            if n.tools.is_empty() {
                v.push(Violation::new(
                    format!("{path}.namespace.tools"),
                    "required: at least one function or custom tool",
                ));
            }
            for (i, inner) in n.tools.iter().enumerate() {
                tool(v, &format!("{path}.namespace.tools[{i}]"), inner);
            }
        }
        Some(tool::Tool::FileSearch(f)) => {
            if f.vector_store_ids.is_empty() {
                v.push(Violation::new(
                    format!("{path}.file_search.vector_store_ids"),
                    "required: at least one vector store id",
                ));
            }
            if let Some(n) = f.max_num_results
                && !(1..=50).contains(&n)
            {
                v.push(Violation::new(
                    format!("{path}.file_search.max_num_results"),
                    format!("{n} is outside 1-50"),
                ));
            }
        }
        Some(tool::Tool::CodeInterpreter(c)) => {
            if c.container.is_none() {
                v.push(Violation::new(
                    format!("{path}.code_interpreter.container"),
                    "required: a container id or {\"type\": \"auto\"}",
                ));
            }
        }
        Some(tool::Tool::ImageGeneration(i)) => {
            if let Some(c) = i.output_compression
                && !(0..=100).contains(&c)
            {
                v.push(Violation::new(
                    format!("{path}.image_generation.output_compression"),
                    format!("{c} is outside 0-100"),
                ));
            }
            if let Some(p) = i.partial_images
                && !(0..=3).contains(&p)
            {
                v.push(Violation::new(
                    format!("{path}.image_generation.partial_images"),
                    format!("{p} is outside 0-3"),
                ));
            }
        }
        Some(tool::Tool::Mcp(m)) => {
            if m.server_label.is_empty() {
                v.push(Violation::new(
                    format!("{path}.mcp.server_label"),
                    "required",
                ));
            }
            // OpenAI: "One of server_url, connector_id, or tunnel_id must be provided."
            if m.server_url.is_none() && m.connector_id.is_none() && m.tunnel_id.is_none() {
                v.push(Violation::new(
                    format!("{path}.mcp"),
                    "give one of server_url, connector_id and tunnel_id",
                ));
            }
        }
        Some(tool::Tool::Other(s)) => require_type(v, &format!("{path}.other"), s),
        Some(_) => {}
    }
}

fn tool_choice(v: &mut Vec<Violation>, choice: &ToolChoice) {
    match &choice.choice {
        None => v.push(Violation::new(
            "tool_choice",
            "set one form, e.g. mode, function, allowed_tools or other",
        )),
        Some(tool_choice::Choice::Mode(m))
            if !matches!(m.as_str(), "auto" | "none" | "required") =>
        {
            v.push(Violation::new(
                "tool_choice.mode",
                format!("{m:?} is not one of \"auto\", \"none\", \"required\""),
            ));
        }
        Some(tool_choice::Choice::Function(f)) if f.name.is_empty() => {
            v.push(Violation::new("tool_choice.function.name", "required"));
        }
        Some(tool_choice::Choice::Mcp(m)) if m.server_label.is_empty() => {
            v.push(Violation::new("tool_choice.mcp.server_label", "required"));
        }
        Some(tool_choice::Choice::Custom(c)) if c.name.is_empty() => {
            v.push(Violation::new("tool_choice.custom.name", "required"));
        }
        Some(tool_choice::Choice::AllowedTools(a))
            if !matches!(a.mode.as_str(), "auto" | "required") =>
        {
            v.push(Violation::new(
                "tool_choice.allowed_tools.mode",
                format!("{:?} is not one of \"auto\", \"required\"", a.mode),
            ));
        }
        Some(tool_choice::Choice::Other(s)) => require_type(v, "tool_choice.other", s),
        Some(_) => {}
    }
}

/// A pass-through JSON object still needs OpenAI's `type` discriminator.
fn require_type(v: &mut Vec<Violation>, path: &str, s: &prost_types::Struct) {
    let has_type = s.fields.get("type").is_some_and(
        |t| matches!(&t.kind, Some(prost_types::value::Kind::StringValue(x)) if !x.is_empty()),
    );
    if !has_type {
        v.push(Violation::new(
            path,
            "must have a string \"type\" key, e.g. {\"type\": \"web_search_preview\"}",
        ));
    }
}

fn metadata(v: &mut Vec<Violation>, path: &str, map: &std::collections::HashMap<String, String>) {
    if map.len() > METADATA_MAX_PAIRS {
        v.push(Violation::new(
            path,
            format!(
                "has {} pairs; at most {METADATA_MAX_PAIRS} are allowed",
                map.len()
            ),
        ));
    }
    let mut keys: Vec<&String> = map.keys().collect();
    keys.sort();
    for key in keys {
        if key.chars().count() > METADATA_MAX_KEY {
            v.push(Violation::new(
                format!("{path}[{key:?}]"),
                format!("key is longer than {METADATA_MAX_KEY} characters"),
            ));
        }
        if map[key].chars().count() > METADATA_MAX_VALUE {
            v.push(Violation::new(
                format!("{path}[{key:?}]"),
                format!("value is longer than {METADATA_MAX_VALUE} characters"),
            ));
        }
    }
}

/// OpenAI's rule for structured output format names (`text.format.name`): 1-64 of
/// `[a-zA-Z0-9_-]`.
fn is_identifier(s: &str) -> bool {
    (1..=64).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pb::{
        ContextManagement, FunctionTool, InputImagePart, InputMessage, JsonSchemaFormat, McpTool,
        Prompt, TextConfig, TextFormat,
    };

    fn ok() -> CreateResponseRequest {
        CreateResponseRequest {
            model: "gpt-4.1".into(),
            input_text: Some("hi".into()),
            ..Default::default()
        }
    }

    fn fields(req: &CreateResponseRequest) -> Vec<String> {
        create_response(req).into_iter().map(|v| v.field).collect()
    }

    #[test]
    fn minimal_request_is_valid() {
        assert!(create_response(&ok()).is_empty());
    }

    #[test]
    fn model_and_input_are_required_and_exclusive() {
        let r = CreateResponseRequest::default();
        assert_eq!(fields(&r), ["model", "input_text"]);
        let mut r = ok();
        r.input_items.push(InputItem::default());
        assert!(fields(&r).contains(&"input_items".to_owned()));
        // An empty text is OpenAI's to judge: the spec sets no minimum length.
        let mut r = ok();
        r.input_text = Some(String::new());
        assert!(fields(&r).is_empty());
    }

    #[test]
    fn a_prompt_template_supplies_model_and_input() {
        let r = CreateResponseRequest {
            prompt: Some(Prompt {
                id: "pmpt_123".into(),
                ..Default::default()
            }),
            ..Default::default()
        };
        assert!(fields(&r).is_empty(), "{:?}", fields(&r));
        let r = CreateResponseRequest {
            prompt: Some(Prompt::default()),
            ..Default::default()
        };
        assert_eq!(fields(&r), ["prompt.id"]);
    }

    #[test]
    fn ranges() {
        let mut r = ok();
        r.temperature = Some(2.5);
        r.top_p = Some(-0.1);
        r.max_output_tokens = Some(15);
        r.top_logprobs = Some(21);
        r.context_management.push(ContextManagement {
            r#type: "compaction".into(),
            compact_threshold: Some(999),
        });
        assert_eq!(
            fields(&r),
            [
                "temperature",
                "top_p",
                "max_output_tokens",
                "top_logprobs",
                "context_management[0].compact_threshold"
            ]
        );
        let mut r = ok();
        r.temperature = Some(2.0);
        r.top_p = Some(1.0);
        r.max_output_tokens = Some(16);
        r.top_logprobs = Some(0);
        r.context_management.push(ContextManagement {
            r#type: "compaction".into(),
            compact_threshold: Some(1000),
        });
        assert!(fields(&r).is_empty());
        r.temperature = Some(f64::NAN);
        assert_eq!(fields(&r), ["temperature"]);
    }

    #[test]
    fn what_the_spec_does_not_constrain_is_left_to_openai() {
        let mut r = ok();
        r.input_text = None;
        r.input_items.push(InputItem {
            item: Some(input_item::Item::Message(InputMessage {
                role: "user".into(),
                content: vec![
                    InputContent {
                        part: Some(input_content::Part::InputImage(InputImagePart {
                            image_url: Some("https://example.com/a.png".into()),
                            detail: Some("original".into()),
                            ..Default::default()
                        })),
                    },
                    InputContent {
                        part: Some(input_content::Part::InputImage(InputImagePart {
                            detail: Some("a-level-from-next-year".into()),
                            ..Default::default()
                        })),
                    },
                ],
                ..Default::default()
            })),
        });
        // A function_call_output without call_id: the spec does not require it.
        r.input_items.push(InputItem {
            item: Some(input_item::Item::FunctionCallOutput(
                crate::pb::InputFunctionCallOutput {
                    output: Some("{}".into()),
                    ..Default::default()
                },
            )),
        });
        r.tools.push(Tool {
            tool: Some(tool::Tool::Mcp(McpTool {
                server_label: "internal".into(),
                tunnel_id: Some(format!("tunnel_{}", "a".repeat(32))),
                ..Default::default()
            })),
        });
        // Function names: no pattern in the spec outside namespaces.
        r.tools.push(Tool {
            tool: Some(tool::Tool::Function(FunctionTool {
                name: "lookup.weather v2".into(),
                ..Default::default()
            })),
        });
        assert!(fields(&r).is_empty(), "{:?}", fields(&r));
    }

    #[test]
    fn metadata_limits() {
        let mut r = ok();
        for i in 0..17 {
            r.metadata.insert(format!("k{i}"), "v".into());
        }
        assert_eq!(fields(&r), ["metadata"]);
        let mut r = ok();
        r.metadata.insert("k".repeat(65), "v".into());
        r.metadata.insert("ok".into(), "v".repeat(513));
        r.metadata.insert("fine".into(), "v".repeat(512));
        assert_eq!(create_response(&r).len(), 2);
    }

    #[test]
    fn items_tools_and_formats() {
        let mut r = ok();
        r.input_text = None;
        r.input_items.push(InputItem {
            item: Some(input_item::Item::Message(InputMessage {
                role: "robot".into(),
                ..Default::default()
            })),
        });
        r.tools.push(Tool {
            tool: Some(tool::Tool::Function(FunctionTool::default())),
        });
        r.tools.push(Tool {
            tool: Some(tool::Tool::Mcp(McpTool {
                server_label: "x".into(),
                ..Default::default()
            })),
        });
        r.tool_choice = Some(ToolChoice {
            choice: Some(tool_choice::Choice::Mode("sometimes".into())),
        });
        r.text = Some(TextConfig {
            format: Some(TextFormat {
                format: Some(text_format::Format::JsonSchema(JsonSchemaFormat::default())),
            }),
            verbosity: None,
        });
        assert_eq!(
            fields(&r),
            [
                "input_items[0].message.role",
                "input_items[0].message.content",
                "tools[0].function.name",
                "tools[1].mcp",
                "tool_choice.mode",
                "text.format.json_schema.name",
                "text.format.json_schema.schema",
            ]
        );
    }
}
