//! The examples of README.md's qlbridge function table hold: each `` `call` → `result` ``
//! is evaluated at the README's `now` and compared with the JSON result (or "no value").
//! Examples that need an event (`match(…)`, "events with …") are covered by
//! `lytics_compat.rs` instead.

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};
use tributary_lang::eval::{eval_value, Ctx};
use tributary_lang::parser::Parser;

const README: &str = include_str!("../README.md");

fn examples() -> Vec<(String, String)> {
    let table = README
        .split("### Functions from qlbridge")
        .nth(1)
        .expect("the qlbridge function table")
        .split("\n## ")
        .next()
        .unwrap();
    let mut out = Vec::new();
    for row in table.lines().filter(|l| l.starts_with("| `")) {
        let example = row.trim_end_matches('|').rsplit('|').next().unwrap();
        for case in example.split(';') {
            let Some((call, result)) = case.split_once('→') else {
                continue;
            };
            let call = call.trim().trim_matches('`');
            if call.starts_with("events") || call.contains("match(") || call.contains("missing") {
                continue;
            }
            out.push((
                call.to_string(),
                result.trim().trim_matches('`').to_string(),
            ));
        }
    }
    out
}

#[test]
fn function_table_examples_hold() {
    let now: DateTime<Utc> = "2024-06-05T13:30:00Z".parse().unwrap();
    let root = Map::new();
    let ctx = Ctx {
        root: &root,
        now,
        includes: None,
    };
    let examples = examples();
    assert!(examples.len() >= 20, "{examples:?}");
    for (call, result) in examples {
        // `["a", "b"]` in a call is a list literal: give it as a JSON field instead.
        let (call, root) = match call.split_once('[') {
            Some((head, tail)) => {
                let (list, rest) = tail.split_once(']').unwrap();
                let list: Value = serde_json::from_str(&format!("[{list}]")).unwrap();
                let mut root = Map::new();
                root.insert("list".to_string(), list);
                (format!("{head}list{rest}"), root)
            }
            None => (call, root.clone()),
        };
        let ctx = Ctx { root: &root, ..ctx };
        let expr = Parser::new(&call)
            .and_then(|mut p| p.parse_value())
            .unwrap_or_else(|e| panic!("{call}: {e}"));
        let actual = eval_value(&expr, &ctx).map(|v| v.to_json());
        let expected = (result != "no value").then(|| {
            serde_json::from_str::<Value>(&result)
                .unwrap_or_else(|e| panic!("{call} → {result}: {e}"))
        });
        assert_eq!(actual, expected, "{call}");
    }
}
