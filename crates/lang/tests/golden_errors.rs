//! Golden error tests: each case in `tests/golden/*_errors.txt` is an input text, a `----`
//! line, and the exact expected error (`line L, column C: message`); cases are separated by
//! `====` lines. Run with `BLESS=1` to rewrite the files with the current output (then review
//! the diff).

use std::fmt::Write as _;
use std::path::PathBuf;

use tributary_lang::{parse_filter, parse_mapping};

fn run(file: &str, parse: fn(&str) -> Result<(), String>) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(file);
    let text = std::fs::read_to_string(&path).unwrap();
    let bless = std::env::var_os("BLESS").is_some();
    let mut out = String::new();
    let mut failures = Vec::new();
    for case in text.split("\n====\n") {
        let (input, expected) = case
            .split_once("\n----\n")
            .unwrap_or_else(|| panic!("{file}: case without ----:\n{case}"));
        let expected = expected.trim_end();
        let actual = match parse(input) {
            Ok(()) => "OK".to_string(),
            Err(e) => e,
        };
        if actual != expected {
            failures.push(format!(
                "input:\n{input}\nexpected: {expected}\nactual:   {actual}\n"
            ));
        }
        if !out.is_empty() {
            out.push_str("\n====\n");
        }
        write!(out, "{input}\n----\n{actual}").unwrap();
    }
    out.push('\n');
    if bless {
        std::fs::write(&path, out).unwrap();
    } else {
        assert!(failures.is_empty(), "{file}:\n{}", failures.join("\n"));
    }
}

#[test]
fn mapping_errors() {
    run("mapping_errors.txt", |t| {
        parse_mapping(t).map(|_| ()).map_err(|e| e.to_string())
    });
}

#[test]
fn filter_errors() {
    run("filter_errors.txt", |t| {
        parse_filter(t).map(|_| ()).map_err(|e| e.to_string())
    });
}
