//! `pyrometer top`: the functions that cost the most, as a table of self and total values with
//! their share of the whole, like `go tool pprof -top`.
//!
//! The numbers are pprof's, so that the two can be read side by side: the total sums magnitudes
//! (a delta profile's shrinkage counts as much as its growth), shares are of that total and
//! unsigned, rows rank by magnitude and then by name, and functions whose total is under
//! [`NODE_FRACTION`] of the whole are dropped, as pprof's `-nodefraction` drops them.

use pyrometer::profile::SampleIndex;

use crate::describe::{format_value, percent, sample_index, title, value_type};
use crate::error::Error;
use crate::filter::FrameFilter;
use crate::input::Loaded;
use crate::table::{FunctionRow, FunctionTable};

/// pprof's default `-nodefraction`: functions whose total (in magnitude) is below this share of
/// the sum of self values are left out of the table.
pub const NODE_FRACTION: f64 = 0.005;

/// Which column ranks the rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Rank {
    /// Time or bytes spent in the function itself (pprof's `flat`).
    #[default]
    SelfValue,
    /// Including everything it called (pprof's `cum`).
    TotalValue,
}

#[derive(Debug, Clone)]
pub struct TopOptions {
    pub sample_index: SampleIndex,
    pub rank: Rank,
    /// How many rows to show; 0 shows all.
    pub count: usize,
    pub filter: FrameFilter,
}

impl Default for TopOptions {
    fn default() -> Self {
        TopOptions {
            sample_index: SampleIndex::Default,
            rank: Rank::SelfValue,
            count: 20,
            filter: FrameFilter::default(),
        }
    }
}

/// The table: rows ranked and cut to the count asked for, with what they are shares of.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopRows {
    pub rows: Vec<FunctionRow>,
    /// pprof's total (see [`FunctionTable::total`]).
    pub total: i64,
    /// How many functions were under [`NODE_FRACTION`], and the cut-off they were under.
    pub dropped: usize,
    pub cutoff: i64,
}

/// The table's rows, ranked as go tool pprof ranks them.
pub fn top_rows(loaded: &Loaded, options: &TopOptions) -> Result<TopRows, Error> {
    let index = sample_index(loaded, &options.sample_index)?;
    let profile = options.filter.apply(loaded.profile.clone());
    let FunctionTable {
        mut rows, total, ..
    } = FunctionTable::new(&profile, index);
    // pprof takes the fraction of the sum of every function's self value: signed, and without
    // stackless samples, so not quite its total.
    let flat_sum = rows
        .iter()
        .fold(0i64, |sum, r| sum.saturating_add(r.self_value));
    let cutoff = ((flat_sum as f64 * NODE_FRACTION) as i64).saturating_abs();
    let before = rows.len();
    rows.retain(|r| r.total_value.saturating_abs() >= cutoff);
    let dropped = before - rows.len();
    let key = |r: &FunctionRow| match options.rank {
        Rank::SelfValue => r.self_value.saturating_abs(),
        Rank::TotalValue => r.total_value.saturating_abs(),
    };
    let tie = |r: &FunctionRow| match options.rank {
        Rank::SelfValue => r.total_value.saturating_abs(),
        Rank::TotalValue => r.self_value.saturating_abs(),
    };
    rows.sort_by(|a, b| {
        key(b)
            .cmp(&key(a))
            .then_with(|| a.name.cmp(&b.name))
            .then_with(|| tie(b).cmp(&tie(a)))
    });
    if options.count > 0 {
        rows.truncate(options.count);
    }
    Ok(TopRows {
        rows,
        total,
        dropped,
        cutoff,
    })
}

/// The table as text, headed by what it shows.
pub fn top(loaded: &Loaded, options: &TopOptions) -> Result<String, Error> {
    let index = sample_index(loaded, &options.sample_index)?;
    let unit = value_type(&loaded.profile, index).unit;
    let TopRows {
        rows,
        total,
        dropped,
        cutoff,
    } = top_rows(loaded, options)?;
    let cells: Vec<[String; 4]> = rows
        .iter()
        .map(|r| {
            [
                format_value(r.self_value, &unit),
                percent(r.self_value, total),
                format_value(r.total_value, &unit),
                percent(r.total_value, total),
            ]
        })
        .collect();
    let width = |i: usize, header: &str| {
        cells
            .iter()
            .map(|c| c[i].chars().count())
            .chain([header.len()])
            .max()
            .unwrap_or(0)
    };
    let widths = [
        width(0, "self"),
        width(1, "self%"),
        width(2, "total"),
        width(3, "total%"),
    ];
    let mut out = format!(
        "{}: total {}\n",
        title(loaded, index),
        format_value(total, &unit)
    );
    if dropped > 0 {
        out.push_str(&format!(
            "dropped {dropped} function(s) whose total is under {} (as go tool pprof's -nodefraction)\n",
            format_value(cutoff, &unit),
        ));
    }
    out.push_str(&format!(
        "{:>w0$}  {:>w1$}  {:>w2$}  {:>w3$}  function\n",
        "self",
        "self%",
        "total",
        "total%",
        w0 = widths[0],
        w1 = widths[1],
        w2 = widths[2],
        w3 = widths[3]
    ));
    for (row, c) in rows.iter().zip(&cells) {
        out.push_str(&format!(
            "{:>w0$}  {:>w1$}  {:>w2$}  {:>w3$}  {}\n",
            c[0],
            c[1],
            c[2],
            c[3],
            row.name,
            w0 = widths[0],
            w1 = widths[1],
            w2 = widths[2],
            w3 = widths[3]
        ));
    }
    Ok(out)
}
