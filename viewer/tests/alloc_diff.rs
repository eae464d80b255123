//! `scripts/alloc-diff.sh` end to end: worktrees of real revisions, the repository's own
//! workloads under exact allocation counting (equal code gives a zero diff), and a report of a
//! real change (dhat's two files standing in for two revisions' workloads).

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::testdata;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .canonicalize()
        .unwrap()
}

/// Runs the script with the dev profile and the build's target directory, so the worktrees
/// reuse the dependencies already compiled for these tests.
fn alloc_diff(out: &Path, env: &[(&str, &str)]) -> Output {
    let target = std::env::var("CARGO_TARGET_DIR")
        .unwrap_or_else(|_| repo().join("target").display().to_string());
    let mut command = Command::new("bash");
    command
        .arg(repo().join("scripts/alloc-diff.sh"))
        .args(["HEAD", "HEAD"])
        .current_dir(repo())
        .env("CARGO_TARGET_DIR", target)
        .env("ALLOC_DIFF_CARGO", "")
        .env("ALLOC_DIFF_OUT", out)
        .env_remove("ALLOC_WORKLOAD")
        .env_remove("ALLOC_DIFF_FAIL_ABOVE");
    for (k, v) in env {
        command.env(k, v);
    }
    command.output().unwrap()
}

#[test]
fn equal_code_gives_a_zero_diff() {
    let out = tempfile::tempdir().unwrap();
    let run = alloc_diff(out.path(), &[("ALLOC_DIFF_FAIL_ABOVE", "0")]);
    let report = String::from_utf8_lossy(&run.stdout);
    assert_eq!(
        run.status.code(),
        Some(0),
        "{report}\n{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let rows: Vec<&str> = report
        .lines()
        .filter(|l| l.starts_with("| ") && !l.starts_with("| workload") && !l.starts_with("| ---"))
        .collect();
    let names: Vec<&str> = rows
        .iter()
        .map(|r| r.split('|').nth(1).unwrap().trim())
        .collect();
    assert_eq!(
        names,
        [
            "flamegraph",
            "read-dhat",
            "read-folded",
            "read-pprof",
            "top-and-diff"
        ],
        "{report}"
    );
    for row in &rows {
        let cells: Vec<&str> = row.split('|').map(str::trim).collect();
        assert_eq!(cells[2], cells[3], "bytes equal: {row}");
        assert_eq!(cells[5], cells[6], "blocks equal: {row}");
        assert!(
            cells[2].parse::<u64>().unwrap() > 10_000,
            "the workload allocates: {row}"
        );
        assert_eq!((cells[4], cells[7]), ("+0 (0%)", "+0 (0%)"), "{row}");
    }
    assert!(
        !report.contains("<details>"),
        "nothing changed, nothing detailed: {report}"
    );
}

#[test]
fn a_change_is_reported_with_its_call_sites_and_gated() {
    let out = tempfile::tempdir().unwrap();
    // A workload that allocates like dhat-base.json at the base and like dhat-new.json at head.
    let workload = out.path().join("workload.sh");
    std::fs::write(
        &workload,
        format!(
            "mkdir -p \"$1\"; case \"$1\" in */base) cp {} \"$1/orders.json\";; *) cp {} \"$1/orders.json\";; esac\n",
            testdata("dhat/dhat-base.json").display(),
            testdata("dhat/dhat-new.json").display()
        ),
    )
    .unwrap();
    let command = format!("bash {}", workload.display());
    let results = out.path().join("results");
    let run = alloc_diff(
        &results,
        &[
            ("ALLOC_WORKLOAD", &command),
            ("ALLOC_DIFF_FAIL_ABOVE", "40"),
        ],
    );
    let report = String::from_utf8_lossy(&run.stdout);
    assert_eq!(
        run.status.code(),
        Some(1),
        "42.51% > 40%: {report}\n{}",
        String::from_utf8_lossy(&run.stderr)
    );
    // dhat's own totals: 259,696 bytes in 4,512 blocks, then 370,096 in 7,212.
    assert!(
        report.contains(
            "| orders | 259696 | 370096 | +110400 (+42.51%) | 4512 | 7212 | +2700 (+59.84%) |"
        ),
        "{report}"
    );
    assert!(
        report.contains("<details><summary><b>orders</b>"),
        "{report}"
    );
    assert!(
        report.contains("| `main` |"),
        "the call sites table: {report}"
    );
    let svg = std::fs::read_to_string(results.join("orders.diff.svg")).unwrap();
    assert!(svg.contains("<svg") && svg.contains("render"));
    let run = alloc_diff(
        &out.path().join("again"),
        &[
            ("ALLOC_WORKLOAD", &command),
            ("ALLOC_DIFF_FAIL_ABOVE", "50"),
        ],
    );
    assert_eq!(
        run.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
}
