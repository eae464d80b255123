//! The deterministic workloads behind `scripts/alloc-diff.sh` for this repository: the viewer
//! reads its test data in every format, draws, ranks and diffs it, while the agent's sampling
//! allocator records every allocation (sample rate 1 byte, so counts are exact). Each workload's
//! allocations are written as a pprof profile, `OUT_DIR/NAME.pb.gz`.
//!
//! A service follows the same contract for its own code: a program that takes an output
//! directory and writes one allocation profile per workload (pprof or dhat-heap.json).
//!
//!     cargo run --release -p pyrometer-viewer --example alloc_workload -- OUT_DIR

use std::path::PathBuf;

use pyrometer::heap::{SamplingAllocator, Snapshot};
use pyrometer::profile::pprof;
use pyrometer_viewer::diff::{DiffOptions, DiffReport, ReportFormat};
use pyrometer_viewer::filter::FrameFilter;
use pyrometer_viewer::graph::{flamegraph, GraphOptions};
use pyrometer_viewer::input::{parse, Loaded, ReadOptions};
use pyrometer_viewer::top::{top, TopOptions};

#[global_allocator]
static ALLOC: SamplingAllocator = SamplingAllocator::system().with_sample_rate(1);

const GO_CPU: &[u8] = include_bytes!("../../testdata/pprof/go.cpu.pb.gz");
const GO_HEAP: &[u8] = include_bytes!("../../testdata/pprof/go.heap.pb.gz");
const FOLDED: &[u8] =
    include_bytes!("../../testdata/folded/perf-vertx-stacks-01-collapsed-all-unsorted.txt");
const DHAT_BASE: &[u8] = include_bytes!("../../testdata/dhat/dhat-base.json");
const DHAT_NEW: &[u8] = include_bytes!("../../testdata/dhat/dhat-new.json");

fn load(name: &str, bytes: &[u8]) -> Loaded {
    parse(name, bytes, &ReadOptions::default()).expect("the test data reads")
}

fn main() {
    let out = PathBuf::from(
        std::env::args()
            .nth(1)
            .expect("usage: alloc_workload OUT_DIR"),
    );
    std::fs::create_dir_all(&out).expect("the output directory can be made");
    let workloads: [(&str, fn()); 5] = [
        ("read-pprof", || {
            std::hint::black_box((load("cpu", GO_CPU), load("heap", GO_HEAP)));
        }),
        ("read-folded", || {
            std::hint::black_box(load("folded", FOLDED));
        }),
        ("read-dhat", || {
            std::hint::black_box(load("dhat", DHAT_NEW));
        }),
        ("flamegraph", || {
            let svg = flamegraph(&load("cpu", GO_CPU), &GraphOptions::default()).unwrap();
            std::hint::black_box(svg);
        }),
        ("top-and-diff", || {
            let (base, new) = (load("base", DHAT_BASE), load("new", DHAT_NEW));
            let table = top(&new, &TopOptions::default()).unwrap();
            let report = DiffReport::compute(&base, &new, &DiffOptions::default()).unwrap();
            std::hint::black_box((table, report.render(ReportFormat::Markdown)));
        }),
    ];
    let profiler =
        FrameFilter::new(None, Some("^pyrometer::heap::"), None).expect("a valid expression");
    for (name, workload) in workloads {
        let before = Snapshot::take();
        workload();
        let allocations = Snapshot::take().since(&before).profile("alloc_space");
        // Taking the snapshot allocates a copy of the sampler's table, whose size is not this
        // workload's doing: leave it out so equal code gives equal counts.
        let allocations = profiler.apply(allocations);
        let path = out.join(format!("{name}.pb.gz"));
        std::fs::write(&path, pprof::encode(&allocations)).expect("the profile can be written");
    }
}
