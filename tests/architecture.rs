//! The layout's promises, checked on the source: dependencies between the crate's top-level
//! modules point one way (the order of `LAYERS`, which is the table in `src/lib.rs`), and the
//! OpenAI client and the SSE decoder never touch gRPC, so they could become their own crate.
//!
//! Dependencies are read from the code (comments and `#[cfg(test)]` modules left out): every
//! `crate::module` path, including those inside `use crate::{...}` groups, and every
//! `super::` that climbs out of a module's own folder.

use std::{
    collections::{BTreeMap, BTreeSet},
    fs,
    path::{Path, PathBuf},
};

/// The top-level modules, highest first: each may use only modules after it.
const LAYERS: [&str; 17] = [
    "server",
    "web",
    "demo",
    "api",
    "quotas",
    "store",
    "telemetry",
    "config",
    "auth",
    "error",
    "convert",
    "owners",
    "usage",
    "openai",
    "sse",
    "pb",
    "fake",
];

/// Modules that must not know gRPC, nor the gateway's own gRPC-facing modules.
const GRPC_FREE: [&str; 2] = ["openai", "sse"];
const GRPC_FACING: [&str; 5] = ["api", "config", "error", "server", "web"];

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// Every `.rs` file under `dir`.
fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The file's code: comments removed, and nothing from a `#[cfg(test)]` module on (test
/// modules sit at the end of a file in this crate). Whole test files (`tests.rs`) are empty.
fn code(path: &Path) -> String {
    if path.file_name().is_some_and(|n| n == "tests.rs") {
        return String::new();
    }
    let text = fs::read_to_string(path).unwrap();
    let mut out = String::new();
    let mut lines = text.lines().peekable();
    while let Some(line) = lines.next() {
        let trimmed = line.trim_start();
        if trimmed.starts_with("#[cfg(test)]")
            && lines
                .peek()
                .is_some_and(|next| next.trim_start().starts_with("mod "))
        {
            break;
        }
        let without_comment = match line.find("//") {
            Some(at) if !line[..at].contains('"') => &line[..at],
            _ => line,
        };
        out.push_str(without_comment);
        out.push('\n');
    }
    out
}

/// The top-level module a file belongs to (`api` for `src/api/call.rs`, `lib` for lib.rs).
fn module_of(path: &Path) -> String {
    let rel = path.strip_prefix(src()).unwrap();
    let first = rel
        .components()
        .next()
        .unwrap()
        .as_os_str()
        .to_string_lossy();
    first.trim_end_matches(".rs").to_owned()
}

/// The top-level modules `code` names through `crate::` (and `$crate::`), including every
/// name directly inside a `use crate::{...}` group.
fn crate_paths(code: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    let mut rest = code;
    while let Some(at) = rest.find("crate::") {
        let after = &rest[at + "crate::".len()..];
        if let Some(group) = after.strip_prefix('{') {
            // The top-level names of the group: split at depth-0 commas.
            let mut depth = 0;
            let mut item = String::new();
            for c in group.chars() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => break,
                    '}' => depth -= 1,
                    ',' if depth == 0 => {
                        found.insert(head(&item));
                        item.clear();
                        continue;
                    }
                    _ => {}
                }
                if depth == 0 {
                    item.push(c);
                }
            }
            found.insert(head(&item));
        } else {
            found.insert(head(after));
        }
        rest = after;
    }
    found.retain(|m| !m.is_empty() && m != "self");
    found
}

/// The first path segment of `text`.
fn head(text: &str) -> String {
    text.trim()
        .chars()
        .take_while(|c| c.is_alphanumeric() || *c == '_')
        .collect()
}

/// `super::` paths that leave the file's top-level module (a file two folders deep using
/// `super::super::x` reaches the crate root's `x`).
fn escaping_super_paths(path: &Path, code: &str) -> BTreeSet<String> {
    let rel = path.strip_prefix(src()).unwrap();
    let mut depth = rel.components().count() - 1; // folders between src/ and the file
    if rel.file_name().is_some_and(|n| n == "mod.rs") {
        depth = depth.saturating_sub(1);
    }
    let mut found = BTreeSet::new();
    let climb_out = "super::".repeat(depth + 1);
    let mut rest = code;
    while let Some(at) = rest.find(&climb_out) {
        found.insert(head(&rest[at + climb_out.len()..]));
        rest = &rest[at + climb_out.len()..];
    }
    found
}

/// Top-level module -> the other top-level modules it uses.
fn dependencies() -> BTreeMap<String, BTreeSet<String>> {
    let mut files = Vec::new();
    rust_files(&src(), &mut files);
    let mut deps: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for file in files {
        let module = module_of(&file);
        let code = code(&file);
        let used = deps.entry(module.clone()).or_default();
        used.extend(crate_paths(&code));
        used.extend(escaping_super_paths(&file, &code));
        used.remove(&module);
        // `rpc_span!` is a `#[macro_export]` macro of telemetry.
        if used.remove("rpc_span") {
            used.insert("telemetry".into());
        }
    }
    deps
}

#[test]
fn the_scanner_reads_use_groups_and_paths() {
    let found = crate_paths(
        "use crate::{\n    api::{call::X, pump},\n    error::{self, Violation},\n    pb,\n};\nlet x = crate::usage::Usage::default();",
    );
    assert_eq!(
        found,
        ["api", "error", "pb", "usage"]
            .map(String::from)
            .into_iter()
            .collect()
    );
}

#[test]
fn dependencies_point_one_way() {
    let deps = dependencies();
    let rank = |m: &str| LAYERS.iter().position(|l| *l == m);
    let mut wrong = Vec::new();
    for (module, used) in &deps {
        if module == "lib" || module == "main" {
            continue;
        }
        let Some(own) = rank(module) else {
            wrong.push(format!(
                "src/{module} is not in LAYERS (add it to the table in src/lib.rs and here)"
            ));
            continue;
        };
        for dep in used {
            match rank(dep) {
                Some(r) if r > own => {}
                Some(_) => wrong.push(format!("{module} uses {dep}, which is above it")),
                None => wrong.push(format!("{module} uses {dep}, which is not in LAYERS")),
            }
        }
    }
    assert!(wrong.is_empty(), "layering broken:\n{}", wrong.join("\n"));
}

#[test]
fn the_openai_client_and_the_sse_decoder_know_no_grpc() {
    let deps = dependencies();
    let mut files = Vec::new();
    rust_files(&src(), &mut files);
    for file in files {
        let module = module_of(&file);
        if !GRPC_FREE.contains(&module.as_str()) {
            continue;
        }
        let code = code(&file);
        for word in ["tonic", "prost"] {
            assert!(
                !code.contains(&format!("{word}::")) && !code.contains(&format!("use {word}")),
                "{} uses {word}",
                file.display()
            );
        }
        for facing in GRPC_FACING {
            assert!(
                !deps[&module].contains(facing),
                "{module} imports crate::{facing}"
            );
        }
    }
}

#[test]
fn the_module_map_in_lib_rs_lists_the_layers_in_order() {
    let lib = fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("src/lib.rs")).unwrap();
    let listed: Vec<&str> = lib
        .lines()
        .filter_map(|l| l.strip_prefix("//! | [`"))
        .filter_map(|l| l.split_once('`').map(|(name, _)| name))
        .collect();
    assert_eq!(
        listed, LAYERS,
        "src/lib.rs's table must list the modules in the order of LAYERS"
    );
}
