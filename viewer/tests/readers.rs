//! Every reader on files written by other producers, checked against the reference: go tool
//! pprof for pprof (and for folded and dhat input converted to pprof), and the numbers dhat
//! itself printed for its files.

mod common;

use common::{go_top, testdata, GoTop};
use pyrometer::profile::{pprof, SampleIndex};
use pyrometer_viewer::describe::sample_index;
use pyrometer_viewer::input::{load, Format, Loaded, ReadOptions};
use pyrometer_viewer::table::FunctionTable;
use pyrometer_viewer::top::{top_rows, Rank, TopOptions};

/// Our table for one sample type agrees with go's: the total, and self/total of go's top rows.
fn assert_matches_go(loaded: &Loaded, which: &SampleIndex, go: &GoTop) {
    let index = sample_index(loaded, which).unwrap();
    let table = FunctionTable::new(&loaded.profile, index);
    assert_eq!(table.total, go.total, "total of {}", loaded.name);
    assert!(!go.names.is_empty());
    for name in go.names.iter().take(12) {
        let ours = table
            .rows
            .iter()
            .find(|r| &r.name == name)
            .unwrap_or_else(|| panic!("{name} is in go's top but not in ours"));
        let theirs = go.rows[name];
        assert_eq!(
            (ours.self_value, ours.total_value),
            (theirs.flat, theirs.cum),
            "{name} in {}",
            loaded.name
        );
    }
}

/// Our ranking by self starts with go's first row.
fn assert_same_top_frame(loaded: &Loaded, which: &SampleIndex, go: &GoTop) {
    let index = sample_index(loaded, which).unwrap();
    let table = FunctionTable::new(&loaded.profile, index);
    let top = table.rows.iter().max_by_key(|r| r.self_value).unwrap();
    assert_eq!(top.self_value, go.rows[&go.names[0]].flat);
    assert_eq!(top.name, go.names[0]);
}

#[test]
fn go_cpu_profile_matches_go_tool_pprof() {
    let path = testdata("pprof/go.cpu.pb.gz");
    let loaded = load(&path, &ReadOptions::default()).unwrap();
    assert_eq!(loaded.format, Format::Pprof);
    let go = go_top(&path, &["-unit=ns"]);
    assert_eq!(
        go.names[0], "crypto/sha256.block",
        "what the producer's note says"
    );
    assert_matches_go(&loaded, &SampleIndex::Default, &go);
    assert_same_top_frame(&loaded, &SampleIndex::Default, &go);
    // The other sample type, by name.
    let go_samples = go_top(&path, &["-sample_index=samples"]);
    assert_matches_go(&loaded, &SampleIndex::Named("samples".into()), &go_samples);
}

#[test]
fn go_heap_profile_matches_go_tool_pprof_for_each_sample_type() {
    let path = testdata("pprof/go.heap.pb.gz");
    let loaded = load(&path, &ReadOptions::default()).unwrap();
    assert_eq!(loaded.profile.sample_types.len(), 4);
    // Default: the last sample type, inuse_space, as go picks it.
    assert_matches_go(&loaded, &SampleIndex::Default, &go_top(&path, &["-unit=B"]));
    let alloc = go_top(&path, &["-unit=B", "-sample_index=alloc_space"]);
    assert_matches_go(&loaded, &SampleIndex::Named("alloc_space".into()), &alloc);
    let index = sample_index(&loaded, &SampleIndex::Named("alloc_space".into())).unwrap();
    let table = FunctionTable::new(&loaded.profile, index);
    let build = table
        .rows
        .iter()
        .find(|r| r.name == "main.buildItems")
        .unwrap();
    let share = build.total_value as f64 / table.total as f64;
    assert!(
        (0.91..0.93).contains(&share),
        "about 92% cumulative, says the producer: {share}"
    );
    let objects = go_top(&path, &["-sample_index=alloc_objects"]);
    assert_matches_go(
        &loaded,
        &SampleIndex::Named("alloc_objects".into()),
        &objects,
    );
}

/// Converts to pprof with the model's encoder, for go tool pprof to read.
fn as_pprof(loaded: &Loaded) -> tempfile::NamedTempFile {
    let file = tempfile::Builder::new()
        .suffix(".pb.gz")
        .tempfile()
        .unwrap();
    std::fs::write(file.path(), pprof::encode(&loaded.profile)).unwrap();
    file
}

#[test]
fn folded_inputs_match_go_tool_pprof_on_the_same_stacks() {
    for name in [
        "folded/perf-rust-Yamakaky-dcpu-collapsed-all.txt",
        "folded/perf-vertx-stacks-01-collapsed-all-unsorted.txt",
        "folded/before.txt",
        "folded/after.txt",
    ] {
        let path = testdata(name);
        let loaded = load(&path, &ReadOptions::default()).unwrap();
        assert_eq!(loaded.format, Format::Folded, "{name}");
        // The total, summed by hand from the text.
        let text = std::fs::read_to_string(&path).unwrap();
        let by_hand: i64 = text
            .lines()
            .filter_map(|l| l.rsplit_once(' '))
            .map(|(_, n)| n.trim().parse::<i64>().unwrap())
            .sum();
        assert_eq!(loaded.profile.total(0), by_hand, "{name}");
        let converted = as_pprof(&loaded);
        let go = go_top(converted.path(), &[]);
        assert_matches_go(&loaded, &SampleIndex::Default, &go);
    }
}

#[test]
fn dhat_files_match_what_dhat_printed() {
    for (name, bytes, blocks) in [
        ("dhat/dhat-base.json", 259_696, 4_512),
        ("dhat/dhat-new.json", 370_096, 7_212),
    ] {
        let loaded = load(&testdata(name), &ReadOptions::default()).unwrap();
        assert_eq!(loaded.format, Format::Dhat);
        let p = &loaded.profile;
        assert_eq!(p.default_sample_type.as_deref(), Some("alloc_space"));
        assert_eq!(p.total(0), bytes, "dhat: Total: {bytes} bytes ({name})");
        assert_eq!(p.total(1), blocks, "dhat: in {blocks} blocks ({name})");
        // go tool pprof reads the same numbers from the converted profile.
        let converted = as_pprof(&loaded);
        let go = go_top(converted.path(), &["-unit=B", "-sample_index=alloc_space"]);
        assert_eq!(go.total, bytes);
        assert_matches_go(&loaded, &SampleIndex::Default, &go);
        // Frames keep their source files and lines.
        let render = p.functions.iter().find(|f| f.name == "render").unwrap();
        assert_eq!(render.filename, "src/bin/dhatgen.rs");
    }
}

/// `top`'s first ten rows are go tool pprof's, in go's order, and so is its total.
fn assert_top_is_gos(path: &std::path::Path, which: &str, go_args: &[&str]) {
    let loaded = load(path, &ReadOptions::default()).unwrap();
    for (rank, extra) in [(Rank::SelfValue, None), (Rank::TotalValue, Some("-cum"))] {
        let mut args = go_args.to_vec();
        args.push(which);
        args.extend(extra);
        let go = go_top(path, &args);
        let options = TopOptions {
            sample_index: SampleIndex::Named(which.split_once('=').unwrap().1.into()),
            rank,
            count: 10,
            ..TopOptions::default()
        };
        let ours = top_rows(&loaded, &options).unwrap();
        assert_eq!(ours.total, go.total, "{}", path.display());
        let theirs: Vec<(&str, i64, i64)> = go
            .names
            .iter()
            .take(10)
            .map(|n| (n.as_str(), go.rows[n].flat, go.rows[n].cum))
            .collect();
        let ours: Vec<(&str, i64, i64)> = ours
            .rows
            .iter()
            .map(|r| (r.name.as_str(), r.self_value, r.total_value))
            .collect();
        assert_eq!(ours, theirs, "{} {extra:?}", path.display());
    }
}

#[test]
fn delta_profile_with_negative_values_tops_as_go_tool_pprof() {
    let path = testdata("pprof/go.allocs-delta.pb.gz");
    // inuse shrank where the program freed its cache in the window; alloc_space only grew.
    assert_top_is_gos(&path, "-sample_index=inuse_space", &["-unit=B"]);
    assert_top_is_gos(&path, "-sample_index=inuse_objects", &[]);
    assert_top_is_gos(&path, "-sample_index=alloc_space", &["-unit=B"]);
    let loaded = load(&path, &ReadOptions::default()).unwrap();
    let index = sample_index(&loaded, &SampleIndex::Named("inuse_space".into())).unwrap();
    let table = FunctionTable::new(&loaded.profile, index);
    assert!(table.net < 0 && table.total > -table.net, "{table:?}");
}

#[test]
fn stackless_samples_count_in_top_as_in_go_tool_pprof() {
    let path = testdata("pprof/go.goroutine-stackless.pb.gz");
    assert_top_is_gos(&path, "-sample_index=goroutine", &[]);
}
