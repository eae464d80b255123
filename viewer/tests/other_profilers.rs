//! Files written on this machine by other profilers (perf through inferno-collapse-perf, py-spy,
//! austin; see testdata/README.md), drawn by `pyrometer flamegraph` and by inferno's own renderer
//! (the library behind `inferno-flamegraph`) from the same text: the same total and the same
//! frames at the same min width, whatever each profiler writes around its stacks.
//!
//! One difference is by design: py-spy writes a line that is only a count (` 3`) for samples it
//! could not read a stack for. pyrometer counts them under `[no stack]`, so its total is py-spy's
//! own ("Samples: 3024"), where inferno ignores the line as invalid (3021). inferno is given that
//! line as `[no stack] 3` here, and then draws exactly the same frames.

mod common;

use common::testdata;
use pyrometer_viewer::graph::{flamegraph, GraphOptions};
use pyrometer_viewer::input::{load, Format, ReadOptions};

const FILES: &[&str] = &[
    "folded/perf-sha256sum-gzip.txt",
    "folded/perf-pyrometer-rust.txt",
    "folded/py-spy-raw.txt",
    "folded/austin-wall.txt",
];

/// The frames an SVG draws, as their sorted `<title>`s: name, count and share.
fn frames(svg: &[u8]) -> Vec<String> {
    let svg = String::from_utf8_lossy(svg);
    let mut titles: Vec<String> = svg
        .split("<title>")
        .skip(1)
        .map(|t| t[..t.find("</title>").unwrap()].to_string())
        .collect();
    titles.sort();
    titles
}

/// The sum of the counts of the lines that are stacks, by hand: austin's `# ` lines and blank
/// lines are not.
fn total_by_hand(text: &str) -> u64 {
    text.lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with("# "))
        .map(|l| l.rsplit(' ').next().unwrap().parse::<u64>().unwrap())
        .sum()
}

#[test]
fn other_profilers_files_draw_as_inferno_draws_them() {
    for name in FILES {
        let path = testdata(name);
        let text = std::fs::read_to_string(&path).unwrap();
        let loaded = load(&path, &ReadOptions { strict: true }).unwrap();
        assert_eq!(loaded.format, Format::Folded);
        assert!(loaded.notes.is_empty(), "{name}: {:?}", loaded.notes);
        let total = total_by_hand(&text);
        assert_eq!(loaded.profile.total(0) as u64, total, "{name}");
        if name.contains("py-spy") {
            assert_eq!(total, 3024, "py-spy said: Samples: 3024");
        }

        for min_width in [0.01, 0.1] {
            let options = GraphOptions {
                min_width,
                ..GraphOptions::default()
            };
            let ours = frames(&flamegraph(&loaded, &options).unwrap());
            let mut opts = inferno::flamegraph::Options::default();
            opts.min_width = min_width;
            let lines = text.lines().map(|l| {
                if !l.is_empty() && l.trim().bytes().all(|b| b.is_ascii_digit()) {
                    format!("[no stack] {}", l.trim())
                } else {
                    l.to_string()
                }
            });
            let lines: Vec<String> = lines.collect();
            let mut theirs = Vec::new();
            inferno::flamegraph::from_lines(
                &mut opts,
                lines.iter().map(String::as_str),
                &mut theirs,
            )
            .unwrap();
            let theirs = frames(&theirs);
            let root = ours.iter().find(|t| t.starts_with("all (")).unwrap();
            assert!(
                root.replace(',', "").starts_with(&format!("all ({total} ")),
                "{name}: {root}"
            );
            assert!(ours.len() > 20, "{name}: {} frames", ours.len());
            assert!(
                ours == theirs,
                "{name} at {min_width}%: {} frames, inferno {}; first difference: {:?}",
                ours.len(),
                theirs.len(),
                ours.iter().zip(&theirs).find(|(a, b)| a != b)
            );
        }
    }
}

#[test]
fn python_profilers_get_the_python_palette_and_perf_of_rust_the_origin_colours() {
    for (name, legend) in [
        ("folded/py-spy-raw.txt", "python palette"),
        ("folded/austin-wall.txt", "python palette"),
        ("folded/perf-pyrometer-rust.txt", "orange: own code"),
        ("folded/perf-sha256sum-gzip.txt", "hot palette"),
    ] {
        let loaded = load(&testdata(name), &ReadOptions::default()).unwrap();
        let svg = flamegraph(&loaded, &GraphOptions::default()).unwrap();
        assert!(
            String::from_utf8_lossy(&svg).contains(legend),
            "{name} should say {legend}"
        );
    }
}
