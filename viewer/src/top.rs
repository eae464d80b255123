//! `pyrometer top`: the functions that cost the most, as a table of self and total values with
//! their share of the whole, like `go tool pprof -top`.

use pyrometer::profile::SampleIndex;

use crate::describe::{format_value, percent, sample_index, title, value_type};
use crate::error::Error;
use crate::filter::FrameFilter;
use crate::input::Loaded;
use crate::table::{FunctionRow, FunctionTable};

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

/// The table's rows, ranked, and the total they are shares of.
pub fn top_rows(loaded: &Loaded, options: &TopOptions) -> Result<(Vec<FunctionRow>, i64), Error> {
    let index = sample_index(loaded, &options.sample_index)?;
    let profile = options.filter.apply(loaded.profile.clone());
    let FunctionTable { mut rows, total } = FunctionTable::new(&profile, index);
    let key = |r: &FunctionRow| match options.rank {
        Rank::SelfValue => (r.self_value, r.total_value),
        Rank::TotalValue => (r.total_value, r.self_value),
    };
    rows.sort_by(|a, b| key(b).cmp(&key(a)).then_with(|| a.name.cmp(&b.name)));
    if options.count > 0 {
        rows.truncate(options.count);
    }
    Ok((rows, total))
}

/// The table as text, headed by what it shows.
pub fn top(loaded: &Loaded, options: &TopOptions) -> Result<String, Error> {
    let index = sample_index(loaded, &options.sample_index)?;
    let unit = value_type(&loaded.profile, index).unit;
    let (rows, total) = top_rows(loaded, options)?;
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
