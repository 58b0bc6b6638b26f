//! One of each output item type of OpenAI's spec (the 28 members of the `OutputItem` union in
//! `spec/openai/snapshot.json`), each with every property the spec gives it, and a stream whose
//! `response.completed` holds them all. Fixtures for the lossless tests: every item must come out
//! typed (never `unknown`, nothing but nulls in `extra_json`) and back to the same JSON.
//!
//! Shapes and values follow OpenAI's API reference for each item (ids in OpenAI's formats, fixed
//! so the output is deterministic).

use serde_json::{Value, json};

/// The 28 output item types, one item each, in the spec's order.
pub fn every_output_item_type() -> Vec<Value> {
    let direct = json!({"type": "direct"});
    vec![
        json!({
            "id": "msg_68f2a1b0c4d88196a1b2c3d4e5f60718", "type": "message", "status": "completed",
            "role": "assistant", "phase": "final_answer",
            "content": [
                {"type": "output_text", "text": "It is 18°C and sunny in Paris.",
                 "annotations": [
                     {"type": "file_citation", "file_id": "file-9Xb2", "filename": "climate.md", "index": 12},
                     {"type": "url_citation", "url": "https://example.com/paris", "title": "Paris weather", "start_index": 0, "end_index": 10},
                     {"type": "container_file_citation", "container_id": "cntr_68f2a1", "file_id": "cfile_1", "filename": "plot.png", "start_index": 3, "end_index": 9},
                     {"type": "file_path", "file_id": "cfile_2", "index": 5}
                 ],
                 "logprobs": [{"token": "It", "logprob": -0.0021, "bytes": [73, 116], "top_logprobs": [{"token": "It", "logprob": -0.0021, "bytes": [73, 116]}]}]},
                {"type": "refusal", "refusal": "I can't share the exact address."}
            ]
        }),
        json!({
            "id": "fs_68f2a1b1d5e98196b2c3d4e5f6071829", "type": "file_search_call", "status": "completed",
            "queries": ["paris climate", "average temperature"],
            "results": [{"file_id": "file-9Xb2", "filename": "climate.md", "score": 0.9312,
                         "text": "Paris has an oceanic climate.", "attributes": {"region": "eu", "year": 2026, "public": true}}]
        }),
        json!({
            "id": "fc_68f2a1b2e6fa8196c3d4e5f60718293a", "type": "function_call", "status": "completed",
            "call_id": "call_Wq3nJ8", "name": "get_weather", "namespace": "weather",
            "arguments": "{\"city\":\"Paris\"}", "caller": direct
        }),
        json!({
            "id": "fco_68f2a1b3f70b8196d4e5f60718293a4b", "type": "function_call_output", "status": "completed",
            "call_id": "call_Wq3nJ8", "name": "get_weather", "namespace": "weather",
            "caller": direct, "created_by": "user_2s8k",
            "output": [
                {"type": "input_text", "text": "{\"temp_c\":18}"},
                {"type": "input_image", "image_url": "https://example.com/radar.png", "file_id": "file-radar", "detail": "original"},
                {"type": "input_file", "file_id": "file-report", "filename": "report.pdf", "file_url": "https://example.com/report.pdf", "detail": "low", "prompt_cache_breakpoint": {"mode": "explicit"}}
            ]
        }),
        json!({
            "id": "ws_68f2a1b4081c8196e5f60718293a4b5c", "type": "web_search_call", "status": "completed",
            "action": {"type": "search", "query": "paris weather", "queries": ["paris weather"],
                       "sources": [{"type": "url", "url": "https://example.com/paris"}]}
        }),
        json!({
            "id": "cu_68f2a1b5192d8196f60718293a4b5c6d", "type": "computer_call", "status": "completed",
            "call_id": "call_cu7Hq2",
            "action": {"type": "click", "button": "left", "x": 412, "y": 96, "keys": ["shift"]},
            "actions": [
                {"type": "double_click", "x": 10, "y": 20, "keys": ["ctrl"]},
                {"type": "drag", "path": [{"x": 0, "y": 0}, {"x": 120, "y": 48}], "keys": ["alt"]},
                {"type": "keypress", "keys": ["ctrl", "l"]},
                {"type": "move", "x": 640, "y": 360},
                {"type": "screenshot"},
                {"type": "scroll", "x": 640, "y": 360, "scroll_x": 0, "scroll_y": -480},
                {"type": "type", "text": "weather paris"},
                {"type": "wait"}
            ],
            "pending_safety_checks": [{"id": "cu_sc_1", "code": "malicious_instructions", "message": "The page asks to ignore the user."}]
        }),
        json!({
            "id": "cuo_68f2a1b62a3e8196718293a4b5c6d7e8", "type": "computer_call_output", "status": "completed",
            "call_id": "call_cu7Hq2", "created_by": "user_2s8k",
            "output": {"type": "computer_screenshot", "image_url": "data:image/png;base64,iVBORw0KGgo=", "file_id": "file-shot1"},
            "acknowledged_safety_checks": [{"id": "cu_sc_1", "code": "malicious_instructions", "message": "The page asks to ignore the user."}]
        }),
        json!({
            "id": "rs_68f2a1b73b4f819682938a4b5c6d7e8f", "type": "reasoning", "status": "completed",
            "summary": [{"type": "summary_text", "text": "**Checking the weather**"}],
            "content": [{"type": "reasoning_text", "text": "The user wants the weather in Paris."}],
            "encrypted_content": "gAAAAABo8qG3encrypted"
        }),
        json!({
            "id": "prg_68f2a1b84c608196938a4b5c6d7e8f90", "type": "program", "call_id": "call_prg1",
            "code": "const w = await tools.weather.get_weather({city: 'Paris'}); return w;",
            "fingerprint": "fp_3kq9Zx"
        }),
        json!({
            "id": "prgo_68f2a1b95d718196a4b5c6d7e8f90a1b", "type": "program_output", "call_id": "call_prg1",
            "result": "{\"temp_c\":18}", "status": "completed"
        }),
        json!({
            "id": "tsc_68f2a1ba6e828196b5c6d7e8f90a1b2c", "type": "tool_search_call", "status": "completed",
            "call_id": "call_ts1", "execution": "server", "arguments": {"query": "weather"},
            "created_by": "resp_68f2a1"
        }),
        json!({
            "id": "tso_68f2a1bb7f938196c6d7e8f90a1b2c3d", "type": "tool_search_output", "status": "completed",
            "call_id": "call_ts1", "execution": "server", "created_by": "resp_68f2a1",
            "tools": [{"type": "function", "name": "get_weather", "description": "Current weather",
                       "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}, "strict": true, "defer_loading": true}]
        }),
        json!({
            "id": "at_68f2a1bc80a48196d7e8f90a1b2c3d4e", "type": "additional_tools", "role": "developer",
            "tools": [{"type": "apply_patch"}, {"type": "shell", "environment": {"type": "local"}}]
        }),
        json!({
            "id": "cmp_68f2a1bd91b58196e8f90a1b2c3d4e5f", "type": "compaction",
            "encrypted_content": "gAAAAABo8qG9compacted", "created_by": "resp_68f2a1"
        }),
        json!({
            "id": "ig_68f2a1bea2c68196f90a1b2c3d4e5f60", "type": "image_generation_call", "status": "completed",
            "result": "iVBORw0KGgoAAAANSUhEUg=="
        }),
        json!({
            "id": "ci_68f2a1bfb3d781960a1b2c3d4e5f6071", "type": "code_interpreter_call", "status": "completed",
            "container_id": "cntr_68f2a1", "code": "print(1 + 1)",
            "outputs": [{"type": "logs", "logs": "2\n"}, {"type": "image", "url": "https://example.com/plot.png"}]
        }),
        json!({
            "id": "lsh_68f2a1c0c4e881961b2c3d4e5f607182", "type": "local_shell_call", "status": "completed",
            "call_id": "call_ls1",
            "action": {"type": "exec", "command": ["ls", "-la"], "env": {"LANG": "C.UTF-8"},
                       "timeout_ms": 10000, "user": "dev", "working_directory": "/srv/app"}
        }),
        json!({
            "id": "lsh_68f2a1c0c4e881961b2c3d4e5f607182", "type": "local_shell_call_output", "status": "completed",
            "output": "{\"stdout\":\"total 0\\n\",\"stderr\":\"\",\"exit_code\":0}"
        }),
        json!({
            "id": "sh_68f2a1c1d5f981962c3d4e5f60718293", "type": "shell_call", "status": "completed",
            "call_id": "call_sh1",
            "action": {"commands": ["ls -la", "cat README.md"], "timeout_ms": 60000, "max_output_length": 4096},
            "environment": {"type": "container_reference", "container_id": "cntr_68f2a1"},
            "caller": {"type": "program", "caller_id": "prg_68f2a1b84c608196938a4b5c6d7e8f90"},
            "created_by": "resp_68f2a1"
        }),
        json!({
            "id": "sho_68f2a1c2e70a81963d4e5f60718293a4", "type": "shell_call_output", "status": "completed",
            "call_id": "call_sh1", "max_output_length": 4096, "caller": direct, "created_by": "resp_68f2a1",
            "output": [
                {"stdout": "total 0\n", "stderr": "", "outcome": {"type": "exit", "exit_code": 0}, "created_by": "resp_68f2a1"},
                {"stdout": "", "stderr": "still running", "outcome": {"type": "timeout"}}
            ]
        }),
        json!({
            "id": "apc_68f2a1c3f81b81964e5f60718293a4b5", "type": "apply_patch_call", "status": "completed",
            "call_id": "call_ap1", "caller": direct, "created_by": "resp_68f2a1",
            "operation": {"type": "update_file", "path": "src/main.rs", "diff": "@@ -1 +1 @@\n-fn main() {}\n+fn main() { run() }\n"}
        }),
        json!({
            "id": "apco_68f2a1c4092c81965f60718293a4b5c6", "type": "apply_patch_call_output", "status": "completed",
            "call_id": "call_ap1", "output": "Applied 1 hunk to src/main.rs.", "caller": direct,
            "created_by": "user_2s8k"
        }),
        json!({
            "id": "mcp_68f2a1c51a3d8196718293a4b5c6d7e8", "type": "mcp_call", "status": "failed",
            "server_label": "github", "name": "search_issues", "arguments": "{\"repo\":\"openai/openai-python\"}",
            "approval_request_id": "mcpr_68f2a1c62b4e8196",
            "error": {"type": "http_error", "code": 503, "message": "The MCP server is unavailable."}
        }),
        json!({
            "id": "mcpl_68f2a1c73c5f819682938a4b5c6d7e8f", "type": "mcp_list_tools", "server_label": "github",
            "tools": [{"name": "search_issues", "description": "Search issues",
                       "input_schema": {"type": "object", "properties": {"repo": {"type": "string"}}},
                       "annotations": {"read_only": true}}]
        }),
        json!({
            "id": "mcpr_68f2a1c62b4e8196", "type": "mcp_approval_request", "server_label": "github",
            "name": "create_issue", "arguments": "{\"title\":\"Bug\"}"
        }),
        json!({
            "id": "mcpa_68f2a1c84d608196938a4b5c6d7e8f90", "type": "mcp_approval_response",
            "approval_request_id": "mcpr_68f2a1c62b4e8196", "approve": false, "reason": "Not this repository."
        }),
        json!({
            "id": "ctc_68f2a1c95e718196a4b5c6d7e8f90a1b", "type": "custom_tool_call", "call_id": "call_ct1",
            "name": "run_sql", "namespace": "db", "input": "SELECT 1;", "caller": direct
        }),
        json!({
            "id": "ctco_68f2a1ca6f828196b5c6d7e8f90a1b2c", "type": "custom_tool_call_output", "status": "completed",
            "call_id": "call_ct1", "output": "1 row", "caller": direct, "created_by": "user_2s8k"
        }),
    ]
}

/// A stream whose `response.completed` holds [`every_output_item_type`]: `created`,
/// `in_progress`, one `output_item.done` per item, then `completed`. The Response also carries
/// the newer Response properties (`moderation`, `prompt_cache_options`, `prompt`, the effective
/// reasoning `context` and `mode`).
pub fn every_item_events() -> Vec<Value> {
    let items = every_output_item_type();
    let base = json!({
        "id": "resp_68f2a1ab11228196a0b1c2d3e4f50617",
        "object": "response",
        "created_at": 1767225600,
        "status": "in_progress",
        "background": false,
        "model": "gpt-5.6-terra-2026-08-01",
        "output": [],
        "parallel_tool_calls": true,
        "prompt": {"id": "pmpt_68f2a1", "version": "3", "variables": {"city": "Paris"}},
        "prompt_cache_options": {"mode": "implicit", "ttl": "30m"},
        "reasoning": {"effort": "medium", "summary": "auto", "context": "all_turns", "mode": "standard"},
        "service_tier": "default",
        "store": true,
        "temperature": 1.0,
        "text": {"format": {"type": "text"}, "verbosity": "medium"},
        "tool_choice": "auto",
        "tools": [{"type": "shell", "environment": {"type": "local"}}, {"type": "apply_patch"}],
        "top_p": 1.0,
        "truncation": "disabled",
        "metadata": {"tenant": "acme"}
    });
    let mut completed = base.clone();
    completed["status"] = json!("completed");
    completed["completed_at"] = json!(1767225642);
    completed["output"] = Value::Array(items.clone());
    completed["moderation"] = json!({
        "input": {"type": "moderation_result", "flagged": false, "model": "omni-moderation-latest",
                  "categories": {"violence": false, "harassment": false},
                  "category_scores": {"violence": 0.0012, "harassment": 0.0003},
                  "category_applied_input_types": {"violence": ["text"], "harassment": ["text", "image"]}},
        "output": {"type": "error", "code": "moderation_unavailable", "message": "Moderation timed out."}
    });
    completed["usage"] = json!({
        "input_tokens": 812,
        "input_tokens_details": {"cached_tokens": 512, "cache_write_tokens": 128},
        "output_tokens": 640,
        "output_tokens_details": {"reasoning_tokens": 256},
        "total_tokens": 1452
    });
    let mut events = vec![
        json!({"type": "response.created", "response": base}),
        json!({"type": "response.in_progress", "response": base}),
    ];
    for (i, item) in items.into_iter().enumerate() {
        events.push(json!({"type": "response.output_item.done", "output_index": i, "item": item}));
    }
    events.push(json!({"type": "response.completed", "response": completed}));
    for (seq, event) in events.iter_mut().enumerate() {
        event["sequence_number"] = json!(seq);
    }
    events
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_item_of_each_type_of_the_spec_snapshot() {
        let snapshot: Value =
            serde_json::from_str(include_str!("../../spec/openai/snapshot.json")).unwrap();
        let spec: Vec<&str> = snapshot["unions"]["OutputItem"]["members"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["type_values"][0].as_str().unwrap())
            .collect();
        let ours: Vec<String> = every_output_item_type()
            .iter()
            .map(|i| i["type"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(ours, spec);
        assert_eq!(ours.len(), 28);
        // Each item has every property the spec lists for its type.
        for (item, member) in every_output_item_type().iter().zip(
            snapshot["unions"]["OutputItem"]["members"]
                .as_array()
                .unwrap(),
        ) {
            for property in member["properties"].as_object().unwrap().keys() {
                let optional_and_absent = matches!(
                    (item["type"].as_str().unwrap(), property.as_str()),
                    // Mutually exclusive on a successful / failed call: the fixture's call failed.
                    ("mcp_call", "output")
                        // Only set when listing failed.
                        | ("mcp_list_tools", "error")
                );
                assert!(
                    optional_and_absent || item.get(property).is_some(),
                    "{}: no {property}",
                    item["type"]
                );
            }
        }
    }

    #[test]
    fn the_stream_is_well_formed() {
        let events = every_item_events();
        assert_eq!(events.len(), 2 + 28 + 1);
        for (i, e) in events.iter().enumerate() {
            assert_eq!(e["sequence_number"], i);
        }
        assert_eq!(
            events.last().unwrap()["response"]["output"]
                .as_array()
                .unwrap()
                .len(),
            28
        );
    }
}
