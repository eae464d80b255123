//! The `pyrometer` command: a thin clap layer over the `pyrometer_viewer` library.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use clap::{Args, Parser, Subcommand, ValueEnum};

use pyrometer::profile::flamegraph::{Colors, DEFAULT_MIN_WIDTH};
use pyrometer::profile::{names, trim, SampleIndex};
use pyrometer_viewer::convert::{convert, ConvertTo};
use pyrometer_viewer::diff::{diff_graph, DiffOptions, DiffReport, ReportFormat};
use pyrometer_viewer::filter::FrameFilter;
use pyrometer_viewer::graph::{flamegraph, GraphOptions};
use pyrometer_viewer::input::{load, load_merged, Loaded, ReadOptions};
use pyrometer_viewer::output::{is_stdout, write_output};
use pyrometer_viewer::record::{record, RecordOptions};
use pyrometer_viewer::top::{top, Rank, TopOptions};
use pyrometer_viewer::Error;

const EXIT_STATUS: &str = "\
Exit status:
  0  success
  1  `diff --fail-above PCT`: NEW's total exceeds BASE's by more than PCT percent
  2  error: unreadable input (the message names the file and the line, byte or entry),
     bad arguments, or a failed request";

const EXAMPLES: &str = "\
Examples:
  pyrometer flamegraph cpu.pb.gz -o cpu.svg          pprof from the agent, Go, pprof-rs...
  perf script | inferno-collapse-perf | pyrometer flamegraph - -o - > perf.svg
  pyrometer flamegraph heap.pb.gz --sample-index alloc_space --focus 'shop::'
  pyrometer top dhat-heap.json --by total -n 15
  pyrometer diff before.pb.gz after.pb.gz -o diff.svg --format markdown --fail-above 5
  pyrometer record http://127.0.0.1:6060 --seconds 10 --svg -o cpu.svg
  pyrometer convert dhat-heap.json --to pprof -o heap.pb.gz && go tool pprof -top heap.pb.gz

Inputs are recognised by content: pprof (gzip-compressed or not), folded stacks
(`frame;frame COUNT`, or `frame;frame BEFORE AFTER`) and dhat's dhat-heap.json.
Several inputs to one command are merged. `-` is standard input or output.";

#[derive(Parser)]
#[command(
    name = "pyrometer",
    version,
    about = "Flame graphs, top tables and diffs of pprof, folded and dhat profiles",
    after_help = format!("{EXAMPLES}\n\n{EXIT_STATUS}")
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Draw an interactive SVG flame graph (click to zoom, Ctrl-F to search)
    #[command(after_help = EXIT_STATUS)]
    Flamegraph {
        /// Profiles to draw (merged); `-` reads standard input
        #[arg(required = true, value_name = "IN")]
        inputs: Vec<PathBuf>,
        /// Where to write the SVG; `-` is standard output
        #[arg(short, long, value_name = "OUT.svg", default_value = "flamegraph.svg")]
        output: PathBuf,
        /// Replace the generated title
        #[arg(long)]
        title: Option<String>,
        /// Draw the root at the top (an icicle graph)
        #[arg(long)]
        icicle: bool,
        /// Leave out frames narrower than this percentage of the width
        #[arg(long, value_name = "PCT", default_value_t = DEFAULT_MIN_WIDTH)]
        min_width: f64,
        /// Crates to colour as the service's own code (default: the crate of `main`)
        #[arg(long = "app", value_name = "CRATE")]
        app_crates: Vec<String>,
        /// Colours: `origin` (own code, dependencies, runtime; for Rust and Go), one of inferno's
        /// palettes (java, js, perl, python, hot...), or `auto`: origin where the names are Rust
        /// or Go, else the palette of the language they look like
        #[arg(long, value_name = "SCHEME", default_value = "auto")]
        colors: Colors,
        /// Keep every frame (default: stacks start at the task's future, framework runs folded)
        #[arg(long)]
        no_trim: bool,
        #[command(flatten)]
        selection: Selection,
        #[command(flatten)]
        reading: Reading,
    },
    /// Print the functions that cost the most, with self and total values
    #[command(after_help = EXIT_STATUS)]
    Top {
        /// Profiles to read (merged); `-` reads standard input
        #[arg(required = true, value_name = "IN")]
        inputs: Vec<PathBuf>,
        /// Rank by the function's own value or by its total including callees
        #[arg(long, value_enum, default_value_t = By::Self_)]
        by: By,
        /// How many functions to show (0: all)
        #[arg(short = 'n', long = "count", value_name = "N", default_value_t = 20)]
        count: usize,
        #[command(flatten)]
        selection: Selection,
        #[command(flatten)]
        reading: Reading,
    },
    /// Compare two profiles: a report of what changed and a differential flame graph
    #[command(after_help = EXIT_STATUS)]
    Diff {
        /// The profile before the change
        base: PathBuf,
        /// The profile after the change
        new: PathBuf,
        /// Also write a differential flame graph (widths from NEW; red grew, blue shrank)
        #[arg(short, long, value_name = "DIFF.svg")]
        output: Option<PathBuf>,
        /// Scale BASE to NEW's total, to compare shapes rather than amounts
        #[arg(long)]
        normalize: bool,
        /// The report's format (markdown is ready for a pull-request comment)
        #[arg(long, value_enum, default_value_t = Report::Text)]
        format: Report,
        /// Exit with status 1 when NEW's total exceeds BASE's by more than PCT percent
        #[arg(long, value_name = "PCT")]
        fail_above: Option<f64>,
        /// How many functions to list (0: all that changed)
        #[arg(short = 'n', long = "count", value_name = "N", default_value_t = 20)]
        count: usize,
        #[command(flatten)]
        selection: Selection,
        #[command(flatten)]
        reading: Reading,
    },
    /// Take a profile from a running agent (token from PYROMETER_TOKEN)
    #[command(after_help = EXIT_STATUS)]
    Record {
        /// The agent (`http://127.0.0.1:6060`) or a profile URL (`.../debug/pprof/heap`)
        url: String,
        /// The window in seconds (default: the server's, 30 for CPU)
        #[arg(long)]
        seconds: Option<u64>,
        /// Where to save it (default: KIND-UNIXTIME.pb.gz, or .svg with --svg); `-` is stdout
        #[arg(short, long)]
        output: Option<PathBuf>,
        /// Save a flame graph instead of the pprof profile
        #[arg(long)]
        svg: bool,
    },
    /// Convert any input to pprof (for go tool pprof) or to folded stacks
    #[command(after_help = EXIT_STATUS)]
    Convert {
        /// Profiles to read (merged); `-` reads standard input
        #[arg(required = true, value_name = "IN")]
        inputs: Vec<PathBuf>,
        #[arg(long, value_enum)]
        to: To,
        /// Where to write; `-` is standard output
        #[arg(short, long, default_value = "-")]
        output: PathBuf,
        /// The sample type to write (folded output holds one)
        #[arg(long, value_name = "NAME")]
        sample_index: Option<String>,
        #[command(flatten)]
        reading: Reading,
    },
}

/// How to read the inputs.
#[derive(Args)]
struct Reading {
    /// Exit with status 2 on a folded line that is not a stack, instead of skipping it with a
    /// warning (as inferno does)
    #[arg(long)]
    strict: bool,
}

impl Reading {
    fn load(&self, path: &Path) -> Result<Loaded, Error> {
        warn_about(load(path, &self.options())?)
    }

    fn load_merged(&self, paths: &[PathBuf]) -> Result<Loaded, Error> {
        warn_about(load_merged(paths, &self.options())?)
    }

    fn options(&self) -> ReadOptions {
        ReadOptions {
            strict: self.strict,
        }
    }
}

/// Shows what reading skipped or changed, on standard error.
fn warn_about(loaded: Loaded) -> Result<Loaded, Error> {
    for note in &loaded.notes {
        eprintln!("pyrometer: warning: {}: {note}", loaded.name);
    }
    Ok(loaded)
}

/// What part of a profile to look at.
#[derive(Args)]
struct Selection {
    /// The sample type to show (`cpu`, `alloc_space`...; default: the profile's default)
    #[arg(long, value_name = "NAME")]
    sample_index: Option<String>,
    /// Keep only stacks that pass through a function matching this regular expression
    #[arg(long, value_name = "RE")]
    focus: Option<String>,
    /// Drop stacks that pass through a function matching this regular expression
    #[arg(long, value_name = "RE")]
    ignore: Option<String>,
    /// Remove functions matching this regular expression from every stack
    #[arg(long, value_name = "RE")]
    hide: Option<String>,
    /// Show functions with their generic arguments (default: short names, as go tool pprof)
    #[arg(long)]
    full_names: bool,
}

impl Selection {
    /// The profile with the names asked for (see `pyrometer::profile::names`).
    fn names(&self, mut loaded: Loaded) -> Loaded {
        if !self.full_names {
            loaded.profile = names::short_names(loaded.profile);
        }
        loaded
    }

    fn sample_index(&self) -> SampleIndex {
        to_sample_index(&self.sample_index)
    }

    fn filter(&self) -> Result<FrameFilter, Error> {
        FrameFilter::new(
            self.focus.as_deref(),
            self.ignore.as_deref(),
            self.hide.as_deref(),
        )
    }
}

fn to_sample_index(name: &Option<String>) -> SampleIndex {
    name.clone()
        .map_or(SampleIndex::Default, SampleIndex::Named)
}

#[derive(Clone, Copy, ValueEnum)]
enum By {
    #[value(name = "self")]
    Self_,
    Total,
}

#[derive(Clone, Copy, ValueEnum)]
enum Report {
    Text,
    Markdown,
    Json,
}

#[derive(Clone, Copy, ValueEnum)]
enum To {
    Pprof,
    Folded,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli.command) {
        Ok(status) => status,
        Err(e) => {
            eprintln!("pyrometer: {e}");
            ExitCode::from(2)
        }
    }
}

fn run(command: Command) -> Result<ExitCode, Error> {
    match command {
        Command::Flamegraph {
            inputs,
            output,
            title,
            icicle,
            min_width,
            app_crates,
            colors,
            no_trim,
            selection,
            reading,
        } => {
            let options = GraphOptions {
                sample_index: selection.sample_index(),
                title,
                icicle,
                min_width,
                filter: selection.filter()?,
                app_crates,
                colors,
            };
            let mut loaded = selection.names(reading.load_merged(&inputs)?);
            if !no_trim {
                loaded.profile = trim::trim(&loaded.profile);
            }
            let svg = flamegraph(&loaded, &options)?;
            // Freeing a profile of millions of frames takes longer than the process's exit.
            std::mem::forget(loaded);
            write_output(&output, &svg)?;
            announce(&output, "flame graph");
        }
        Command::Top {
            inputs,
            by,
            count,
            selection,
            reading,
        } => {
            let options = TopOptions {
                sample_index: selection.sample_index(),
                rank: match by {
                    By::Self_ => Rank::SelfValue,
                    By::Total => Rank::TotalValue,
                },
                count,
                filter: selection.filter()?,
            };
            let table = top(&selection.names(reading.load_merged(&inputs)?), &options)?;
            write_output(Path::new("-"), table.as_bytes())?;
        }
        Command::Diff {
            base,
            new,
            output,
            normalize,
            format,
            fail_above,
            count,
            selection,
            reading,
        } => {
            let (base, new) = (
                selection.names(reading.load(&base)?),
                selection.names(reading.load(&new)?),
            );
            let options = DiffOptions {
                sample_index: selection.sample_index(),
                normalize,
                count,
            };
            let filter = selection.filter()?;
            let (base, new) = (filter.apply_loaded(base), filter.apply_loaded(new));
            let report = DiffReport::compute(&base, &new, &options)?;
            let format = match format {
                Report::Text => ReportFormat::Text,
                Report::Markdown => ReportFormat::Markdown,
                Report::Json => ReportFormat::Json,
            };
            let text = report.render(format);
            if let Some(output) = &output {
                let svg = diff_graph(&base, &new, &options, &GraphOptions::default())?;
                write_output(output, &svg)?;
                announce(output, "differential flame graph");
            }
            // With the SVG on standard output, the report goes to standard error.
            if output.as_deref().is_some_and(is_stdout) {
                eprint!("{text}");
            } else {
                write_output(Path::new("-"), text.as_bytes())?;
            }
            if let Some(pct) = fail_above {
                if report.exceeds(pct) {
                    eprintln!("pyrometer: NEW's total exceeds BASE's by more than {pct}%");
                    return Ok(ExitCode::from(1));
                }
            }
        }
        Command::Record {
            url,
            seconds,
            output,
            svg,
        } => {
            let options = RecordOptions {
                url,
                seconds,
                token: std::env::var("PYROMETER_TOKEN")
                    .ok()
                    .filter(|t| !t.is_empty()),
            };
            let mut bar = ProgressBar::new();
            let recording = record(&options, &mut |elapsed, window| bar.show(elapsed, window));
            bar.finish();
            let recording = recording?;
            let stamp = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_secs());
            let extension = if svg { "svg" } else { "pb.gz" };
            let output = output.unwrap_or_else(|| {
                PathBuf::from(format!("{}-{stamp}.{extension}", recording.kind))
            });
            let bytes = if svg {
                let name = recording.url.to_string();
                let loaded = pyrometer_viewer::input::parse(
                    &name,
                    &recording.bytes,
                    &ReadOptions::default(),
                )?;
                flamegraph(&warn_about(loaded)?, &GraphOptions::default())?
            } else {
                recording.bytes
            };
            write_output(&output, &bytes)?;
            announce(&output, "profile");
        }
        Command::Convert {
            inputs,
            to,
            output,
            sample_index,
            reading,
        } => {
            let to = match to {
                To::Pprof => ConvertTo::Pprof,
                To::Folded => ConvertTo::Folded,
            };
            let loaded = reading.load_merged(&inputs)?;
            let bytes = convert(&loaded, to, &to_sample_index(&sample_index))?;
            write_output(&output, &bytes)?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Says where a file went, unless it went to standard output.
fn announce(path: &Path, what: &str) {
    if !is_stdout(path) {
        eprintln!("wrote {what} to {}", path.display());
    }
}

/// A one-line bar on standard error while `record` waits out the window; silent when standard
/// error is not a terminal (CI logs would fill with carriage returns).
struct ProgressBar {
    drawn: bool,
    enabled: bool,
}

impl ProgressBar {
    fn new() -> Self {
        ProgressBar {
            drawn: false,
            enabled: std::io::stderr().is_terminal(),
        }
    }

    fn show(&mut self, elapsed: Duration, window: Duration) {
        if !self.enabled {
            return;
        }
        const WIDTH: usize = 30;
        let line = if window.is_zero() {
            format!("waiting for the server... {:.0} s", elapsed.as_secs_f64())
        } else {
            let done = (elapsed.as_secs_f64() / window.as_secs_f64()).min(1.0);
            let filled = (done * WIDTH as f64) as usize;
            format!(
                "[{}{}] {:.0}/{} s{}",
                "#".repeat(filled),
                "-".repeat(WIDTH - filled),
                elapsed.as_secs_f64().min(window.as_secs_f64()),
                window.as_secs(),
                if done >= 1.0 {
                    ", building the profile"
                } else {
                    ""
                }
            )
        };
        eprint!("\r{line:<60}");
        self.drawn = true;
    }

    fn finish(&self) {
        if self.drawn {
            eprint!("\r{:<60}\r", "");
        }
    }
}
