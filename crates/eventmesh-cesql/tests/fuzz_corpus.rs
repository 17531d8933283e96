//! Replays the committed fuzz corpus (`fuzz/corpus/parse_eval/*`) through the same checks the
//! cargo-fuzz target runs, so CI exercises them without nightly or cargo-fuzz.
//!
//! `cargo test -p eventmesh-cesql --test fuzz_corpus -- --ignored write_seed_corpus`
//! regenerates the seed files (named `seed-*`: every expression of the CESQL TCK and a few
//! edge cases); files found by fuzzing are kept beside them.

// Helpers outside #[test] fns unwrap too (clippy.toml allows it only inside them).
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};

#[path = "../fuzz/checks.rs"]
mod checks;

fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/parse_eval")
}

#[test]
fn replay_parse_eval_corpus() {
    let dir = corpus_dir();
    let mut count = 0;
    for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.unwrap().path();
        let data = std::fs::read(&path).unwrap();
        let outcome = std::panic::catch_unwind(|| checks::parse_eval(&data));
        assert!(outcome.is_ok(), "{} failed its check", path.display());
        count += 1;
    }
    assert!(
        count >= 100,
        "only {count} corpus files in {}",
        dir.display()
    );
}

const EXTRA_SEEDS: [&str; 16] = [
    "type = 'com.example.order.created' AND source LIKE '/orders/%'",
    "seq * 2 + 1 > 50 AND flag XOR name NOT IN ('a', 1, TRUE)",
    "-2147483648 / -1 + ABS(-2147483648) - --2147483647",
    "SUBSTRING(name, -3, 2) = LEFT(CONCAT_WS('-', id, big, num), 4)",
    "NOT EXISTS data AND datacontenttype LIKE '%json' OR time = ''",
    "'a''b\\'c\\\\d\\%' LIKE 'a_b%\\\\%'",
    "\"x\" <> \"y\\\"\" <> TRUE",
    "((((((((((((((((((((TRUE))))))))))))))))))))",
    "LOWER(UPPER(TRIM('  É  '))) = 'é'",
    "INT('+0012') + BOOL('FaLsE') + STRING(12) + INT(TRUE)",
    "x LIKE 123",
    "a NOT b",
    "CONCAT_WS()",
    "f(1, 2, 3)",
    "'unterminated",
    "1 2",
];

#[test]
#[ignore = "writes the seed corpus into the source tree; run by hand"]
fn write_seed_corpus() {
    #[derive(serde::Deserialize)]
    struct Suite {
        tests: Vec<Case>,
    }
    #[derive(serde::Deserialize)]
    struct Case {
        expression: String,
    }
    let dir = corpus_dir();
    std::fs::create_dir_all(&dir).unwrap();
    let tck = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/cesql-tck");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&tck)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    for file in files {
        let stem = file.file_stem().unwrap().to_string_lossy().into_owned();
        let suite: Suite =
            serde_norway::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
        for (i, case) in suite.tests.iter().enumerate() {
            std::fs::write(dir.join(format!("seed-{stem}-{i:02}")), &case.expression).unwrap();
        }
    }
    for (i, src) in EXTRA_SEEDS.iter().enumerate() {
        std::fs::write(dir.join(format!("seed-extra-{i:02}")), src).unwrap();
    }
}
