//! Tributary: a self-hostable customer data platform connector for Amazon Kinesis Data Streams.
//!
//! The data path runs one way: Kinesis shards → decode → event log → profiles → audience
//! changes (outbox) → export to Kinesis. See `README.md` and the module docs for each step.

pub mod api;
pub mod app;
pub mod audiences;
pub mod aws;
pub mod cdp;
pub mod cli;
pub mod cluster;
pub mod config;
pub mod jobs;
pub mod kinesis;
pub mod metrics;
pub mod secrets;
pub mod server;
pub mod store;

/// The layers of `src/`, checked: a module may use only modules of lower layers, so there is
/// no import cycle between them and the data path's direction is visible in the code.
#[cfg(test)]
mod layers {
    use std::collections::BTreeSet;
    use std::path::Path;

    /// Lowest first. Modules of one layer do not use each other.
    const LAYERS: &[&[&str]] = &[
        &["config", "metrics", "secrets"],
        &["store"],
        &["audiences", "aws", "cluster"],
        &["cdp", "kinesis"],
        &["jobs"],
        &["app"],
        &["api"],
        &["cli", "server"],
    ];

    fn layer(module: &str) -> Option<usize> {
        LAYERS.iter().position(|l| l.contains(&module))
    }

    /// The top-level modules a file names as `crate::NAME` outside comments.
    fn uses(text: &str) -> BTreeSet<String> {
        let mut found = BTreeSet::new();
        for line in text.lines() {
            let code = line.split("//").next().unwrap_or("");
            for (i, _) in code.match_indices("crate::") {
                let rest = &code[i + "crate::".len()..];
                let name: String = rest
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                if !name.is_empty() {
                    found.insert(name);
                }
            }
        }
        found
    }

    fn files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                files(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }

    #[test]
    fn modules_only_use_lower_layers() {
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let mut all = Vec::new();
        files(&src, &mut all);
        let mut wrong = Vec::new();
        for path in all {
            let relative = path.strip_prefix(&src).unwrap();
            let first = relative.components().next().unwrap();
            let module = first
                .as_os_str()
                .to_string_lossy()
                .trim_end_matches(".rs")
                .to_owned();
            let Some(from) = layer(&module) else {
                assert!(
                    ["lib", "main"].contains(&module.as_str()),
                    "{module} is in no layer: add it to LAYERS"
                );
                continue;
            };
            let text = std::fs::read_to_string(&path).unwrap();
            for used in uses(&text) {
                // Macros exported at the crate root (`crate::conformance_tests!`).
                let Some(to) = layer(&used) else { continue };
                if used != module && to >= from {
                    wrong.push(format!("{} uses crate::{used}", relative.display()));
                }
            }
        }
        assert!(
            wrong.is_empty(),
            "against the layering:\n{}",
            wrong.join("\n")
        );
    }
}
