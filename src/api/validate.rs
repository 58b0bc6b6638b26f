//! Local request validation, run before any upstream call. Each problem is one [`Violation`]
//! naming the proto path of the field, so a caller sees every mistake at once. Only rules that
//! OpenAI documents as fixed are enforced here; open sets (models, effort levels, service tiers,
//! include values) are left for OpenAI to judge, so new values work the day they ship.

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
    if req.model.trim().is_empty() {
        v.push(Violation::new(
            "model",
            "required: the model id, e.g. \"gpt-4.1\"",
        ));
    }
    match (&req.input_text, req.input_items.is_empty()) {
        (None, true) => v.push(Violation::new(
            "input_text",
            "required: give the input as input_text (plain text) or input_items (an array of items)",
        )),
        (Some(_), false) => v.push(Violation::new(
            "input_items",
            "conflicts with input_text: give exactly one of input_text and input_items",
        )),
        (Some(text), true) if text.is_empty() => {
            v.push(Violation::new("input_text", "must not be empty"));
        }
        _ => {}
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
        && n < 1
    {
        v.push(Violation::new(
            "max_output_tokens",
            format!("{n} must be at least 1"),
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

fn input_item(v: &mut Vec<Violation>, path: &str, item: &InputItem) {
    match &item.item {
        None => v.push(Violation::new(
            path,
            "set one of message, function_call_output, function_call, item_reference or other",
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
            if o.call_id.is_empty() {
                v.push(Violation::new(
                    format!("{path}.function_call_output.call_id"),
                    "required: the call_id of the function_call this output answers",
                ));
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
        Some(input_content::Part::InputImage(i)) => {
            if i.image_url.is_some() == i.file_id.is_some() {
                v.push(Violation::new(
                    format!("{path}.input_image"),
                    "give exactly one of image_url (a URL or data: URL) and file_id",
                ));
            }
            if let Some(d) = &i.detail
                && !matches!(d.as_str(), "low" | "high" | "auto")
            {
                v.push(Violation::new(
                    format!("{path}.input_image.detail"),
                    format!("{d:?} is not one of \"low\", \"high\", \"auto\""),
                ));
            }
        }
        Some(input_content::Part::InputFile(f)) => {
            if f.file_id.is_none() && f.file_url.is_none() && f.file_data.is_none() {
                v.push(Violation::new(
                    format!("{path}.input_file"),
                    "give file_id, file_url or file_data",
                ));
            }
        }
        Some(input_content::Part::Other(s)) => require_type(v, &format!("{path}.other"), s),
        Some(_) => {}
    }
}

fn tool(v: &mut Vec<Violation>, path: &str, t: &Tool) {
    match &t.tool {
        None => v.push(Violation::new(
            path,
            "set one of function, web_search, file_search, code_interpreter, image_generation, mcp or other",
        )),
        Some(tool::Tool::Function(f)) => {
            if !is_identifier(&f.name) {
                v.push(Violation::new(
                    format!("{path}.function.name"),
                    "required: 1-64 characters from a-z, A-Z, 0-9, _ and -",
                ));
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
            if m.server_url.is_some() == m.connector_id.is_some() {
                v.push(Violation::new(
                    format!("{path}.mcp"),
                    "give exactly one of server_url and connector_id",
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
            "set one of mode, function, mcp or other",
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

/// OpenAI's rule for function and schema names: 1-64 of `[a-zA-Z0-9_-]`.
fn is_identifier(s: &str) -> bool {
    (1..=64).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pb::{
        FunctionTool, InputMessage, JsonSchemaFormat, McpTool, TextConfig, TextFormat,
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
        let mut r = ok();
        r.input_text = Some(String::new());
        assert_eq!(fields(&r), ["input_text"]);
    }

    #[test]
    fn ranges() {
        let mut r = ok();
        r.temperature = Some(2.5);
        r.top_p = Some(-0.1);
        r.max_output_tokens = Some(0);
        assert_eq!(fields(&r), ["temperature", "top_p", "max_output_tokens"]);
        let mut r = ok();
        r.temperature = Some(2.0);
        r.top_p = Some(1.0);
        assert!(fields(&r).is_empty());
        r.temperature = Some(f64::NAN);
        assert_eq!(fields(&r), ["temperature"]);
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
            tool: Some(tool::Tool::Function(FunctionTool {
                name: "bad name".into(),
                ..Default::default()
            })),
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
