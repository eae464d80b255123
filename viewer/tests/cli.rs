//! The `pyrometer` binary as a user runs it: bad input of every kind gives a message naming the
//! file and the position and exit status 2 (never a panic); diffs report the changes go tool
//! pprof reports; `-` works for input and output; `--fail-above` gates with status 1.

mod common;

use std::io::Write;

use common::{go_top, pyrometer, stderr, testdata};
use pyrometer::profile::{folded, pprof};

fn path(name: &str) -> String {
    testdata(name).display().to_string()
}

/// Runs `top --strict` on `bytes` saved as a file named `name`, expecting an error at `position`.
fn assert_rejected(name: &str, bytes: &[u8], position: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join(name);
    std::fs::write(&file, bytes).unwrap();
    let out = pyrometer(&["top", "--strict", file.to_str().unwrap()], b"");
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{name}: {err}");
    assert!(!err.contains("panicked"), "{name}: {err}");
    assert!(
        err.contains(&format!("{}: {position}", file.display())),
        "{name} should name {position}: {err}"
    );
    assert_eq!(err.lines().count(), 1, "one line: {err}");
    err
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(bytes).unwrap();
    gz.finish().unwrap()
}

fn raw_pprof() -> Vec<u8> {
    let p = folded::parse(b"main;handler;parse 7\nmain;handler 3\n").unwrap();
    let mut raw = Vec::new();
    flate2::read::GzDecoder::new(&pprof::encode(&p)[..]).read_to_end_into(&mut raw);
    raw
}

trait ReadAll {
    fn read_to_end_into(self, out: &mut Vec<u8>);
}

impl<R: std::io::Read> ReadAll for R {
    fn read_to_end_into(mut self, out: &mut Vec<u8>) {
        self.read_to_end(out).unwrap();
    }
}

#[test]
fn empty_input_is_an_error() {
    let err = assert_rejected(
        "empty.txt",
        &std::fs::read(testdata("folded/empty.txt")).unwrap(),
        "is empty",
    );
    assert!(err.contains("no profile in it"), "{err}");
    let out = pyrometer(&["top", "-"], b"");
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("<stdin>: is empty"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn garbage_is_an_error_at_a_byte() {
    let garbage: Vec<u8> = (0..2000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let err = assert_rejected("garbage.bin", &garbage, "byte ");
    assert!(err.contains("not a valid pprof profile"), "{err}");
}

#[test]
fn truncated_gzip_is_an_error_at_its_end() {
    let gz = std::fs::read(testdata("pprof/go.cpu.pb.gz")).unwrap();
    let cut = &gz[..gz.len() / 2];
    let err = assert_rejected("cpu.pb.gz", cut, &format!("byte {}", cut.len()));
    assert!(err.contains("gzip stream ends early"), "{err}");
}

#[test]
fn truncated_protobuf_names_the_entry() {
    let gz = std::fs::read(testdata("pprof/go.heap.pb.gz")).unwrap();
    let mut raw = Vec::new();
    flate2::read::GzDecoder::new(&gz[..]).read_to_end_into(&mut raw);
    let err = assert_rejected("heap.pb", &raw[..raw.len() * 2 / 3], "byte ");
    assert!(err.contains(" #") && err.contains("truncated"), "{err}");
    // Compressed again, the position counts in the decompressed stream, and says so.
    let err = assert_rejected("heap.pb.gz", &gzip(&raw[..raw.len() / 3]), "byte ");
    assert!(err.contains("of the decompressed profile"), "{err}");
}

#[test]
fn invalid_lines_among_valid_ones_name_the_first() {
    let bytes = std::fs::read(testdata("folded/bad-lines.txt")).unwrap();
    let err = assert_rejected("bad-lines.txt", &bytes, "line 3");
    assert!(err.contains("THIS IS A BAD LINE"), "{err}");
    assert_rejected(
        "late.txt",
        b"a;b 1\na;c 2\na;b;c 3\nbroken line\n",
        "line 4",
    );
}

#[test]
fn invalid_lines_are_skipped_with_a_warning_unless_strict() {
    // bad-lines.txt has 7 stacks and 2 invalid lines (3 and 6): inferno draws the stacks and
    // says "Ignored 2 lines with invalid format".
    let file = path("folded/bad-lines.txt");
    let out = pyrometer(&["convert", &file, "--to", "folded"], b"");
    assert!(out.status.success(), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("warning") && err.contains("ignored 2 line(s)") && err.contains("line 3"),
        "{err}"
    );
    let total: i64 = folded::parse(&out.stdout).unwrap().total(0);
    assert_eq!(total, 31 + 6 + 1 + 19 + 2 + 274 + 274);
    for command in ["flamegraph", "top", "convert"] {
        let out = pyrometer(&[command, "--strict", &file, "-o", "-"], b"");
        assert_eq!(out.status.code(), Some(2), "{command}: {}", stderr(&out));
    }
}

#[test]
fn comment_lines_are_skipped_silently() {
    let austin = b"# austin: 3.3.0\n# interval: 100\n# mode: wall\n\nP1;T1;app.py:main:3 40\n";
    let out = pyrometer(&["top", "--strict", "-"], austin);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).is_empty(), "{}", stderr(&out));
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(
        table.contains("total 40") && table.contains("app.py:main:3"),
        "{table}"
    );
}

#[test]
fn fractional_counts_are_rounded_by_their_running_sum_with_a_warning() {
    // Rounded line by line this would be 3; the exact sum is 3.9.
    let out = pyrometer(&["top", "-"], b"a;b 1.3\na;c 1.3\na;d 1.3\n");
    assert!(out.status.success(), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("fractions (the first on line 1)") && err.contains("3.9, becomes 4"),
        "{err}"
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("total 4\n"));
}

#[test]
fn counts_that_overflow_64_bits_are_errors() {
    let err = assert_rejected(
        "big.txt",
        b"main 1\nmain;x 18446744073709551616\n",
        "line 2",
    );
    assert!(err.contains("does not fit in 64 bits"), "{err}");
    let dhat = br#"{"dhatFileVersion":2,"mode":"rust-heap","pps":[{"tb":99999999999999999999,"tbk":1,"fs":[]}],"ftbl":["[root]"]}"#;
    let err = assert_rejected("big.json", dhat, "line 1, column 73");
    assert!(err.contains("does not fit in 64 bits"), "{err}");
    let dhat = br#"{"dhatFileVersion":2,"mode":"rust-heap","pps":[{"tb":18446744073709551615,"tbk":1,"fs":[]}],"ftbl":[]}"#;
    let err = assert_rejected("signed.json", dhat, "program point #0");
    assert!(err.contains("does not fit"), "{err}");
    // A varint of eleven bytes in a pprof file.
    let mut raw = raw_pprof();
    raw.extend_from_slice(&[
        0x48, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01,
    ]);
    let err = assert_rejected("big.pb", &raw, "byte ");
    assert!(
        err.contains("time_nanos #0") && err.contains("64 bits"),
        "{err}"
    );
}

#[test]
fn non_utf8_names_are_errors() {
    let err = assert_rejected("latin1.txt", b"main;caf\xe9 4\n", "line 1");
    assert!(err.contains("UTF-8"), "{err}");
    let mut raw = raw_pprof();
    let at = raw.windows(7).position(|w| w == b"handler").unwrap();
    raw[at + 1] = 0xc3;
    raw[at + 2] = 0x28;
    let err = assert_rejected("names.pb", &raw, &format!("byte {}", at + 1));
    assert!(
        err.contains("string_table #") && err.contains("UTF-8"),
        "{err}"
    );
    let err = assert_rejected(
        "names.json",
        b"{\"dhatFileVersion\": 2, \"mode\": \"rust-\xff\"}",
        "line 1, column ",
    );
    assert!(err.contains("not a dhat-heap.json"), "{err}");
}

#[test]
fn diff_of_folded_pair_reports_what_go_tool_pprof_reports() {
    let out = pyrometer(
        &[
            "diff",
            &path("folded/before.txt"),
            &path("folded/after.txt"),
            "--format",
            "json",
            "-n",
            "0",
        ],
        b"",
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        (report["base_total"].as_i64(), report["new_total"].as_i64()),
        (Some(65), Some(80))
    );
    // go tool pprof -diff_base on the same stacks, converted to pprof.
    let dir = tempfile::tempdir().unwrap();
    let convert = |name: &str| {
        let out = dir.path().join(format!("{name}.pb.gz"));
        let run = pyrometer(
            &[
                "convert",
                &path(&format!("folded/{name}.txt")),
                "--to",
                "pprof",
                "-o",
                out.to_str().unwrap(),
            ],
            b"",
        );
        assert!(run.status.success(), "{}", stderr(&run));
        out
    };
    let (before, after) = (convert("before"), convert("after"));
    let go = go_top(&after, &[&format!("-diff_base={}", before.display())]);
    let rows = report["functions"].as_array().unwrap();
    for name in go.names.iter().take(8) {
        let row = rows
            .iter()
            .find(|r| r["function"] == name.as_str())
            .unwrap_or_else(|| panic!("{name}"));
        let self_change = row["new_self"].as_i64().unwrap() - row["base_self"].as_i64().unwrap();
        let total_change = row["new_total"].as_i64().unwrap() - row["base_total"].as_i64().unwrap();
        assert_eq!(
            (self_change, total_change),
            (go.rows[name].flat, go.rows[name].cum),
            "{name}"
        );
    }
    // The largest change comes first: __fget_light_[k] appeared with 12.
    assert_eq!(rows[0]["function"], "__fget_light_[k]");
    assert_eq!(rows[0]["base_self"], 0);
    assert_eq!(rows[0]["new_self"], 12);
}

#[test]
fn diff_of_dhat_files_reports_the_growth_and_gates_on_it() {
    let (base, new) = (path("dhat/dhat-base.json"), path("dhat/dhat-new.json"));
    let out = pyrometer(
        &[
            "diff",
            &base,
            &new,
            "--format",
            "markdown",
            "--fail-above",
            "40",
        ],
        b"",
    );
    assert_eq!(
        out.status.code(),
        Some(1),
        "42.5% growth exceeds 40%: {}",
        stderr(&out)
    );
    let md = String::from_utf8(out.stdout).unwrap();
    assert!(md.contains("253.6 KiB → 361.4 KiB"), "{md}");
    assert!(md.contains("+42.51%"), "{md}");
    assert!(
        md.contains(
            "| `main` | 0 B | 0 B | 0 B (0%) | 253.6 KiB | 361.4 KiB | +107.8 KiB (+42.51%) |"
        ),
        "{md}"
    );
    let out = pyrometer(
        &[
            "diff",
            &base,
            &new,
            "--fail-above",
            "50",
            "--sample-index",
            "alloc_objects",
            "--format",
            "json",
        ],
        b"",
    );
    assert_eq!(
        out.status.code(),
        Some(1),
        "blocks grew 59.8%: {}",
        stderr(&out)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        (report["base_total"].as_i64(), report["new_total"].as_i64()),
        (Some(4512), Some(7212))
    );
    let out = pyrometer(&["diff", &base, &new, "--fail-above", "60"], b"");
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
}

#[test]
fn equal_profiles_diff_to_nothing() {
    let base = path("dhat/dhat-base.json");
    let out = pyrometer(&["diff", &base, &base, "--fail-above", "0"], b"");
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.contains("+0 B (0%)") || text.contains("0 B (0%)"),
        "{text}"
    );
    assert!(text.contains("no function changed"), "{text}");
}

#[test]
fn normalize_compares_shapes() {
    let out = pyrometer(
        &[
            "diff",
            &path("folded/before.txt"),
            &path("folded/after.txt"),
            "--normalize",
            "--format",
            "json",
        ],
        b"",
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let scale = report["base_scale"].as_f64().unwrap();
    assert!((scale - 80.0 / 65.0).abs() < 1e-9, "{scale}");
}

#[test]
fn differential_flame_graph_and_report_together() {
    let dir = tempfile::tempdir().unwrap();
    let svg = dir.path().join("diff.svg");
    let out = pyrometer(
        &[
            "diff",
            &path("folded/before.txt"),
            &path("folded/after.txt"),
            "-o",
            svg.to_str().unwrap(),
        ],
        b"",
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let svg = std::fs::read_to_string(svg).unwrap();
    // inferno shows kernel frames without their `_[k]` mark.
    assert!(
        svg.contains("<title>__fget_light (12 samples, 15.00%; +15.00%)"),
        "grew by 12 of 80"
    );
    assert!(
        svg.contains("<title>all (80 samples, 100%)"),
        "widths from NEW"
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("65 -> 80"));
    // With the SVG on stdout, the report moves to stderr.
    let out = pyrometer(
        &[
            "diff",
            &path("folded/before.txt"),
            &path("folded/after.txt"),
            "-o",
            "-",
        ],
        b"",
    );
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("<?xml"));
    assert!(stderr(&out).contains("65 -> 80"));
}

#[test]
fn stdin_and_stdout_with_dash() {
    let input = std::fs::read(testdata("pprof/go.cpu.pb.gz")).unwrap();
    let out = pyrometer(&["flamegraph", "-", "-o", "-", "--title", "piped"], &input);
    assert!(out.status.success(), "{}", stderr(&out));
    let svg = String::from_utf8(out.stdout).unwrap();
    assert!(
        svg.starts_with("<?xml") && svg.contains("piped") && svg.contains("crypto/sha256.block")
    );
    let folded_text = std::fs::read(testdata("folded/after.txt")).unwrap();
    let out = pyrometer(&["top", "-", "-n", "1"], &folded_text);
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("__srcu_read_unlock_[k]"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn several_inputs_are_merged() {
    let out = pyrometer(
        &[
            "convert",
            &path("folded/before.txt"),
            &path("folded/after.txt"),
            "--to",
            "folded",
        ],
        b"",
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let merged = folded::parse(&out.stdout).unwrap();
    assert_eq!(merged.total(0), 65 + 80);
    let out = pyrometer(
        &[
            "top",
            &path("folded/before.txt"),
            &path("pprof/go.cpu.pb.gz"),
        ],
        b"",
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("cannot merge"), "{}", stderr(&out));
}

#[test]
fn flamegraph_options_shape_the_graph() {
    let cpu = path("pprof/go.cpu.pb.gz");
    let run = |extra: &[&str]| {
        let mut args = vec!["flamegraph", cpu.as_str(), "-o", "-"];
        args.extend_from_slice(extra);
        let out = pyrometer(&args, b"");
        assert!(out.status.success(), "{}", stderr(&out));
        String::from_utf8(out.stdout).unwrap()
    };
    let full = run(&[]);
    assert!(
        full.contains("cpu (nanoseconds) of ") && full.contains("total 730.0 ms in 804.6 ms"),
        "title and subtitle"
    );
    let focused = run(&["--focus", "sha256"]);
    assert!(focused.contains("crypto/sha256.block") && !focused.contains("sort.StringSlice.Less"));
    let hidden = run(&["--hide", "^runtime\\."]);
    assert!(!hidden.contains("runtime.mallocgc") && hidden.contains("main.main"));
    let coarse = run(&["--min-width", "5"]);
    assert!(coarse.matches("<g").count() < full.matches("<g").count() / 2);
    let icicle = run(&["--icicle"]);
    assert!(icicle.contains("inverted = true;") && full.contains("inverted = false;"));
    let heap = pyrometer(
        &[
            "flamegraph",
            &path("pprof/go.heap.pb.gz"),
            "-o",
            "-",
            "--sample-index",
            "nope",
        ],
        b"",
    );
    assert_eq!(heap.status.code(), Some(2));
    assert!(
        stderr(&heap).contains("alloc_objects, alloc_space, inuse_objects, inuse_space"),
        "{}",
        stderr(&heap)
    );
}

#[test]
fn help_has_examples_and_exit_statuses() {
    let out = pyrometer(&["--help"], b"");
    assert!(out.status.success());
    let help = String::from_utf8(out.stdout).unwrap();
    for needle in [
        "Examples:",
        "Exit status:",
        "--fail-above",
        "pyrometer record",
    ] {
        assert!(help.contains(needle), "{needle}: {help}");
    }
    let out = pyrometer(&["top"], b"");
    assert_eq!(out.status.code(), Some(2), "a usage error exits 2");
}

/// The `<title>` of the frame drawn for `name`: `name (N unit, P%...)`.
fn frame_title<'a>(svg: &'a str, name: &str) -> &'a str {
    let at = svg
        .find(&format!("<title>{name} ("))
        .unwrap_or_else(|| panic!("no frame {name}"));
    &svg[at + 7..at + svg[at..].find("</title>").unwrap()]
}

#[test]
fn delta_profile_is_drawn_as_growth_and_shrinkage() {
    let file = path("pprof/go.allocs-delta.pb.gz");
    let go = go_top(
        &testdata("pprof/go.allocs-delta.pb.gz"),
        &["-unit=B", "-sample_index=inuse_space"],
    );
    let args = ["--sample-index", "inuse_space", "-o", "-"];
    let out = pyrometer(&[&["flamegraph", &file][..], &args].concat(), b"");
    assert!(out.status.success(), "{}", stderr(&out));
    let svg = String::from_utf8(out.stdout).unwrap();
    // The root is go's total (magnitudes summed), and the subtitle says how it is drawn.
    let root = frame_title(&svg, "all").replace(',', "");
    assert!(
        root.starts_with(&format!("all ({} bytes", go.total)),
        "{root}"
    );
    assert!(svg.contains("grew, blue: shrank") && svg.contains(" shrank)"));
    // main.fillCache freed more than it allocated: drawn, and marked as a shrinkage.
    assert!(
        frame_title(&svg, "main.fillCache").contains("; -"),
        "{svg:.0}"
    );

    // Folded output is the two-column form: SHRANK GREW, whose difference is the change.
    let out = pyrometer(
        &[
            "convert",
            &file,
            "--to",
            "folded",
            "--sample-index",
            "inuse_space",
        ],
        b"",
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let two = folded::parse(&out.stdout).unwrap();
    assert_eq!(two.sample_types.len(), 2);
    assert_eq!(two.total(0) + two.total(1), go.total);
    let table = go.rows["main.fillCache"];
    let fill: i64 = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.contains("main.fillCache"))
        .map(|l| {
            let v: Vec<i64> = l
                .rsplitn(3, ' ')
                .take(2)
                .map(|n| n.parse().unwrap())
                .collect();
            v[0] - v[1]
        })
        .sum();
    assert_eq!(fill, table.cum);
}

#[test]
fn stackless_samples_are_drawn_under_a_frame_of_their_own() {
    let file = path("pprof/go.goroutine-stackless.pb.gz");
    let out = pyrometer(&["flamegraph", &file, "-o", "-"], b"");
    assert!(out.status.success(), "{}", stderr(&out));
    let svg = String::from_utf8(out.stdout).unwrap();
    let go = go_top(&testdata("pprof/go.goroutine-stackless.pb.gz"), &[]);
    assert_eq!(go.total, 10);
    assert!(frame_title(&svg, "all").starts_with("all (10 samples"));
    assert!(frame_title(&svg, "[no stack]").starts_with("[no stack] (5 samples"));
    let out = pyrometer(&["convert", &file, "--to", "folded"], b"");
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.lines().any(|l| l == "[no stack] 5"), "{text}");
}

/// The fill of the first rectangle drawn for `name`, as (r, g, b).
fn fill_of(svg: &str, name: &str) -> (u8, u8, u8) {
    let at = svg.find(&format!("<title>{name} (")).expect(name);
    let rest = &svg[at..];
    let fill = rest.find("fill=\"rgb(").unwrap() + 10;
    let v: Vec<u8> = rest[fill..fill + rest[fill..].find(')').unwrap()]
        .split(',')
        .map(|c| c.trim().parse().unwrap())
        .collect();
    (v[0], v[1], v[2])
}

#[test]
fn other_languages_get_inferno_palettes_and_a_legend_that_says_so() {
    let java = path("folded/perf-vertx-stacks-01-collapsed-all-unsorted.txt");
    let out = pyrometer(&["flamegraph", &java, "-o", "-"], b"");
    let svg = String::from_utf8(out.stdout).unwrap();
    assert!(svg.contains("java palette: green: Java"), "{svg:.3000}");
    // inferno's java palette: Java frames (`Interpreter_[j]`, shown without the mark) green,
    // kernel frames (`sys_write_[k]`) orange.
    let (r, g, b) = fill_of(&svg, "Interpreter");
    assert!(g > r && g > b, "Java is green: {r},{g},{b}");
    let (r, g, b) = fill_of(&svg, "sys_write");
    assert!(r > g && g > b, "the kernel is orange: {r},{g},{b}");

    // Chosen by hand, and refused when unknown.
    let out = pyrometer(&["flamegraph", &java, "--colors", "hot", "-o", "-"], b"");
    assert!(String::from_utf8_lossy(&out.stdout).contains("hot palette"));
    let out = pyrometer(&["flamegraph", &java, "--colors", "plaid", "-o", "-"], b"");
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("unknown colour scheme \"plaid\""));

    // Rust names keep the origin colours.
    let rust = path("folded/perf-rust-Yamakaky-dcpu-collapsed-all.txt");
    let out = pyrometer(&["flamegraph", &rust, "-o", "-"], b"");
    assert!(String::from_utf8_lossy(&out.stdout).contains("orange: own code"));
}
