//! Any text as a mapping (`SELECT … INTO user BY …`): parsing and checking never panic, and
//! an error's position lies inside the text.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Err(e) = tributary_lang::parse_mapping(text) {
        // Positions are 1-based and point into the text (or just past its end).
        let lines = text.split('\n').count() as u32;
        assert!(e.line >= 1 && e.line <= lines, "{e:?} in {lines} lines");
        assert!(e.column >= 1, "{e:?}");
        let _ = e.to_string();
    }
});
