//! Helpers shared by the viewer's integration tests: the test data, the `pyrometer` binary, and
//! go tool pprof as the reference reader.

#![allow(dead_code)] // each test file uses its own subset

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// A file of the repository's testdata/.
pub fn testdata(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../testdata")
        .join(name)
}

/// Runs the `pyrometer` binary with `stdin` as its standard input.
pub fn pyrometer(args: &[&str], stdin: &[u8]) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_pyrometer"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the pyrometer binary runs");
    let mut input = child.stdin.take().unwrap();
    // The command may exit before reading everything (an error on the first bytes).
    let _ = std::io::Write::write_all(&mut input, stdin);
    drop(input);
    child.wait_with_output().unwrap()
}

pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// One row of `go tool pprof -top`: flat and cum in the unit asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GoRow {
    pub flat: i64,
    pub cum: i64,
}

/// What go tool pprof reports for a profile: the total and the rows by function name.
#[derive(Debug)]
pub struct GoTop {
    pub total: i64,
    /// In go's order (by flat, descending).
    pub names: Vec<String>,
    pub rows: HashMap<String, GoRow>,
}

/// Runs `go tool pprof -top` with raw units (`ns`, `B`, or none for counts) and parses it.
pub fn go_top(profile: &Path, extra: &[&str]) -> GoTop {
    let output = Command::new("go")
        .args(["tool", "pprof", "-top", "-nodecount=1000"])
        .args(extra)
        .arg(profile)
        .env("PPROF_TMPDIR", std::env::temp_dir())
        .output()
        .expect("go tool pprof runs (apt-get install golang-go)");
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "go tool pprof failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let number = |s: &str| -> i64 {
        s.trim_end_matches(|c: char| c.is_ascii_alphabetic())
            .parse()
            .unwrap_or_else(|_| panic!("not a number in go's output: {s:?}"))
    };
    let total = text
        .lines()
        .find_map(|l| {
            let (_, rest) = l.split_once("% of ")?;
            Some(number(rest.strip_suffix(" total")?))
        })
        .expect("a total line");
    let mut names = Vec::new();
    let mut rows = HashMap::new();
    let mut in_table = false;
    for line in text.lines() {
        if line.trim_start().starts_with("flat") {
            in_table = true;
            continue;
        }
        if !in_table {
            continue;
        }
        let cols: Vec<&str> = line.split_whitespace().collect();
        if cols.len() < 6 {
            continue;
        }
        let name = cols[5..].join(" ");
        let name = name.strip_suffix(" (inline)").unwrap_or(&name).to_string();
        rows.insert(
            name.clone(),
            GoRow {
                flat: number(cols[0]),
                cum: number(cols[3]),
            },
        );
        names.push(name);
    }
    GoTop { total, names, rows }
}
