//! `pyrometer flamegraph`: one or more profiles (merged) as an interactive SVG flame graph whose
//! title and subtitle say what it shows. Two-column folded input (`stack BEFORE AFTER`) is drawn
//! as a differential graph, as inferno and flamegraph.pl draw it.

use std::borrow::Cow;

use pyrometer::profile::flamegraph::{
    render, render_diff, Colors, FlamegraphOptions, DEFAULT_MIN_WIDTH,
};
use pyrometer::profile::folded::has_negative;
use pyrometer::profile::SampleIndex;

use crate::describe::{sample_index, subtitle, title};
use crate::error::Error;
use crate::filter::FrameFilter;
use crate::input::{Format, Loaded};

#[derive(Debug, Clone)]
pub struct GraphOptions {
    pub sample_index: SampleIndex,
    /// Replaces the generated title.
    pub title: Option<String>,
    /// Root at the top.
    pub icicle: bool,
    /// Frames narrower than this percentage of the width are left out.
    pub min_width: f64,
    pub filter: FrameFilter,
    /// The service's own crates, coloured as app code; empty infers them from `main`.
    pub app_crates: Vec<String>,
    /// Origin colours for Rust and Go, an inferno palette for other languages.
    pub colors: Colors,
}

impl Default for GraphOptions {
    fn default() -> Self {
        GraphOptions {
            sample_index: SampleIndex::Default,
            title: None,
            icicle: false,
            min_width: DEFAULT_MIN_WIDTH,
            filter: FrameFilter::default(),
            app_crates: Vec::new(),
            colors: Colors::Auto,
        }
    }
}

impl GraphOptions {
    /// The model's options for sample value `index` of `loaded`, with `title` unless overridden.
    pub fn flamegraph_options(
        &self,
        loaded: &Loaded,
        index: usize,
        title: String,
        legend: &str,
    ) -> FlamegraphOptions {
        let mut options = FlamegraphOptions::new(self.title.clone().unwrap_or(title), index);
        let subtitle = subtitle(loaded, index);
        options.subtitle = Some(if legend.is_empty() {
            subtitle
        } else {
            format!("{subtitle} · {legend}")
        });
        options.inverted = self.icicle;
        options.min_width = self.min_width;
        options.app_crates = self.app_crates.clone();
        options.colors = self.colors;
        options
    }
}

/// True for folded input with two counts per line.
pub fn is_differential(loaded: &Loaded) -> bool {
    let kinds: Vec<&str> = loaded
        .profile
        .sample_types
        .iter()
        .map(|t| t.kind.as_str())
        .collect();
    loaded.format == Format::Folded && kinds == ["before", "after"]
}

/// Legend of a differential graph's colours.
pub const DIFF_LEGEND: &str = "widths: after; red: grew, blue: shrank";

/// Renders the SVG.
pub fn flamegraph(loaded: &Loaded, options: &GraphOptions) -> Result<Vec<u8>, Error> {
    // Large profiles are not copied unless a filter changes them.
    let filtered = if options.filter.is_empty() {
        Cow::Borrowed(loaded)
    } else {
        Cow::Owned(options.filter.apply_loaded(loaded.clone()))
    };
    let failed =
        |e: std::io::Error| Error::new(&loaded.name, format!("cannot draw the flame graph: {e}"));
    if is_differential(&filtered) {
        let title = format!("Differential flame graph of {}", loaded.name);
        let fg = options.flamegraph_options(&filtered, 1, title, DIFF_LEGEND);
        return render_diff(&filtered.profile, 0, &filtered.profile, &fg, false).map_err(failed);
    }
    let index = sample_index(&filtered, &options.sample_index)?;
    // A profile with negative values is drawn as a differential graph, whose legend the
    // renderer adds.
    let legend = if has_negative(&filtered.profile, index) {
        ""
    } else {
        options.colors.resolve(&filtered.profile).legend()
    };
    let fg = options.flamegraph_options(&filtered, index, title(&filtered, index), legend);
    render(&filtered.profile, &fg).map_err(failed)
}
