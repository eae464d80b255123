//! `pyrometer diff BASE NEW`: what a change did. A report of both totals and of the functions
//! whose self and total values changed most (text for a terminal, Markdown for a pull-request
//! comment, JSON for tools), a differential flame graph, and a gate for CI: `--fail-above PCT`
//! fails when NEW's total exceeds BASE's by more than PCT percent.

use std::collections::HashMap;

use serde::Serialize;

use pyrometer::profile::flamegraph::render_diff;
use pyrometer::profile::SampleIndex;

use crate::describe::{format_value, sample_index, value_type};
use crate::error::Error;
use crate::graph::{GraphOptions, DIFF_LEGEND};
use crate::input::Loaded;
use crate::table::FunctionTable;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ReportFormat {
    #[default]
    Text,
    Markdown,
    Json,
}

#[derive(Debug, Clone)]
pub struct DiffOptions {
    /// The sample type to compare; it must exist, with the same unit, in both profiles.
    pub sample_index: SampleIndex,
    /// Scale BASE to NEW's total, to compare shapes rather than amounts.
    pub normalize: bool,
    /// How many functions to list; 0 lists every function that changed.
    pub count: usize,
}

impl Default for DiffOptions {
    fn default() -> Self {
        DiffOptions {
            sample_index: SampleIndex::Default,
            normalize: false,
            count: 20,
        }
    }
}

/// One function's values in both profiles (BASE scaled when normalizing).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DiffRow {
    pub function: String,
    pub base_self: i64,
    pub new_self: i64,
    pub base_total: i64,
    pub new_total: i64,
}

impl DiffRow {
    fn named(function: &str) -> Self {
        DiffRow {
            function: function.to_string(),
            base_self: 0,
            new_self: 0,
            base_total: 0,
            new_total: 0,
        }
    }

    pub fn self_change(&self) -> i64 {
        self.new_self.saturating_sub(self.base_self)
    }

    pub fn total_change(&self) -> i64 {
        self.new_total.saturating_sub(self.base_total)
    }
}

/// The comparison, ready to render.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DiffReport {
    pub base: String,
    pub new: String,
    pub sample_type: String,
    pub unit: String,
    /// BASE's total as measured, before any normalization.
    pub base_total: i64,
    pub new_total: i64,
    /// The factor BASE's values were multiplied by (1 unless normalizing).
    pub base_scale: f64,
    /// Functions whose self or total changed, the largest change first.
    pub functions: Vec<DiffRow>,
}

/// Resolves the sample type in both profiles, checking they measure the same thing.
fn indices(base: &Loaded, new: &Loaded, which: &SampleIndex) -> Result<(usize, usize), Error> {
    let new_index = sample_index(new, which)?;
    let wanted = value_type(&new.profile, new_index);
    let base_index = sample_index(base, &SampleIndex::Named(wanted.kind.clone()))
        .or_else(|_| sample_index(base, which))?;
    let found = value_type(&base.profile, base_index);
    if found.unit != wanted.unit {
        return Err(Error::new(
            &base.name,
            format!(
                "measures {found} but {} measures {wanted}; they cannot be compared",
                new.name
            ),
        ));
    }
    Ok((base_index, new_index))
}

impl DiffReport {
    pub fn compute(base: &Loaded, new: &Loaded, options: &DiffOptions) -> Result<Self, Error> {
        let (base_index, new_index) = indices(base, new, &options.sample_index)?;
        let before = FunctionTable::new(&base.profile, base_index);
        let after = FunctionTable::new(&new.profile, new_index);
        let base_scale = if options.normalize && before.net != 0 {
            after.net as f64 / before.net as f64
        } else {
            1.0
        };
        let scaled = |v: i64| (v as f64 * base_scale).round() as i64;
        let mut rows: HashMap<&str, DiffRow> = HashMap::new();
        for r in &before.rows {
            let e = rows
                .entry(&r.name)
                .or_insert_with(|| DiffRow::named(&r.name));
            e.base_self = scaled(r.self_value);
            e.base_total = scaled(r.total_value);
        }
        for r in &after.rows {
            let e = rows
                .entry(&r.name)
                .or_insert_with(|| DiffRow::named(&r.name));
            e.new_self = r.self_value;
            e.new_total = r.total_value;
        }
        let mut functions: Vec<DiffRow> = rows
            .into_values()
            .filter(|r| r.self_change() != 0 || r.total_change() != 0)
            .collect();
        let key = |r: &DiffRow| {
            (
                r.self_change().unsigned_abs(),
                r.total_change().unsigned_abs(),
            )
        };
        functions.sort_by(|a, b| {
            key(b)
                .cmp(&key(a))
                .then_with(|| a.function.cmp(&b.function))
        });
        if options.count > 0 {
            functions.truncate(options.count);
        }
        let t = value_type(&new.profile, new_index);
        Ok(DiffReport {
            base: base.name.clone(),
            new: new.name.clone(),
            sample_type: t.kind,
            unit: t.unit,
            base_total: before.net,
            new_total: after.net,
            base_scale,
            functions,
        })
    }
}

/// A change as `+1.2 KiB (+3.40%)`; the percentage is `new` against `base`.
fn change(base: i64, new: i64, unit: &str) -> String {
    let delta = new.saturating_sub(base);
    let sign = if delta > 0 { "+" } else { "" };
    format!(
        "{sign}{} ({})",
        format_value(delta, unit),
        change_percent(base, new)
    )
}

/// `+42.50%`, `new` for something that did not exist in BASE, `0%` for no change.
fn change_percent(base: i64, new: i64) -> String {
    match relative_change(base, new) {
        Some(p) if p > 0.0 => format!("+{p:.2}%"),
        Some(p) if p < 0.0 => format!("{p:.2}%"),
        Some(_) => "0%".to_string(),
        None => "new".to_string(),
    }
}

/// The change in percent of BASE, or `None` when BASE is zero and NEW is not.
fn relative_change(base: i64, new: i64) -> Option<f64> {
    match (base, new) {
        (0, 0) => Some(0.0),
        (0, _) => None,
        _ => Some((new as f64 - base as f64) * 100.0 / (base as f64).abs()),
    }
}

impl DiffReport {
    /// NEW's total against BASE's in percent (unnormalized), `None` when BASE is zero.
    pub fn total_change_percent(&self) -> Option<f64> {
        relative_change(self.base_total, self.new_total)
    }

    /// True when NEW's total exceeds BASE's by more than `percent` (any growth from zero counts).
    pub fn exceeds(&self, percent: f64) -> bool {
        match self.total_change_percent() {
            Some(p) => p > percent,
            None => self.new_total > 0,
        }
    }

    pub fn render(&self, format: ReportFormat) -> String {
        match format {
            ReportFormat::Text => self.text(),
            ReportFormat::Markdown => self.markdown(),
            ReportFormat::Json => {
                let mut json =
                    serde_json::to_string_pretty(self).expect("a report always serializes");
                json.push('\n');
                json
            }
        }
    }

    fn scale_note(&self) -> String {
        if self.base_scale == 1.0 {
            String::new()
        } else {
            format!(
                " (BASE's values scaled by {:.4} to NEW's total)",
                self.base_scale
            )
        }
    }

    /// The cells of the function table: name, then self base/new/change, total base/new/change.
    fn cells(&self) -> Vec<[String; 7]> {
        let unit = &self.unit;
        self.functions
            .iter()
            .map(|r| {
                [
                    r.function.clone(),
                    format_value(r.base_self, unit),
                    format_value(r.new_self, unit),
                    change(r.base_self, r.new_self, unit),
                    format_value(r.base_total, unit),
                    format_value(r.new_total, unit),
                    change(r.base_total, r.new_total, unit),
                ]
            })
            .collect()
    }

    const HEADERS: [&'static str; 7] = [
        "function",
        "self base",
        "self new",
        "self change",
        "total base",
        "total new",
        "total change",
    ];

    fn text(&self) -> String {
        let mut out = format!(
            "{} ({}): {} -> {}, {}{}\n",
            self.sample_type,
            self.unit,
            format_value(self.base_total, &self.unit),
            format_value(self.new_total, &self.unit),
            change(self.base_total, self.new_total, &self.unit),
            self.scale_note()
        );
        out.push_str(&format!("BASE {}\nNEW  {}\n", self.base, self.new));
        if self.functions.is_empty() {
            out.push_str("no function changed\n");
            return out;
        }
        let cells = self.cells();
        let widths: Vec<usize> = (0..7)
            .map(|i| {
                cells
                    .iter()
                    .map(|c| c[i].chars().count())
                    .chain([Self::HEADERS[i].len()])
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        let line = |cols: [&str; 7]| {
            let mut l = String::new();
            for i in (1..7).chain([0]) {
                if i == 0 {
                    l.push_str(cols[0]);
                } else {
                    l.push_str(&format!("{:>w$}  ", cols[i], w = widths[i]));
                }
            }
            l.push('\n');
            l
        };
        out.push_str(&line(Self::HEADERS));
        for c in &cells {
            out.push_str(&line([&c[0], &c[1], &c[2], &c[3], &c[4], &c[5], &c[6]]));
        }
        out
    }

    fn markdown(&self) -> String {
        let escape = |s: &str| s.replace('|', "\\|").replace('`', "'");
        let mut out = format!(
            "**{} ({})**: {} → {}, **{}**{}\n\nBASE `{}`, NEW `{}`\n\n",
            self.sample_type,
            self.unit,
            format_value(self.base_total, &self.unit),
            format_value(self.new_total, &self.unit),
            change(self.base_total, self.new_total, &self.unit),
            self.scale_note(),
            self.base,
            self.new
        );
        if self.functions.is_empty() {
            out.push_str("No function changed.\n");
            return out;
        }
        out.push_str(&format!("| {} |\n", Self::HEADERS.join(" | ")));
        out.push_str("| --- | ---: | ---: | ---: | ---: | ---: | ---: |\n");
        for c in self.cells() {
            out.push_str(&format!(
                "| `{}` | {} | {} | {} | {} | {} | {} |\n",
                escape(&c[0]),
                c[1],
                c[2],
                c[3],
                c[4],
                c[5],
                c[6]
            ));
        }
        out
    }
}

/// The differential flame graph: widths from NEW, red where a frame's own value grew.
pub fn diff_graph(
    base: &Loaded,
    new: &Loaded,
    options: &DiffOptions,
    graph: &GraphOptions,
) -> Result<Vec<u8>, Error> {
    let (base_index, new_index) = indices(base, new, &options.sample_index)?;
    let base_profile = graph.filter.apply(base.profile.clone());
    let new_loaded = Loaded {
        profile: graph.filter.apply(new.profile.clone()),
        format: new.format,
        name: new.name.clone(),
        notes: Vec::new(),
    };
    let t = value_type(&new.profile, new_index);
    let title = format!("{} ({}): {} vs {}", t.kind, t.unit, new.name, base.name);
    let legend = if options.normalize {
        format!("{DIFF_LEGEND}; BASE normalized")
    } else {
        DIFF_LEGEND.to_string()
    };
    let fg = graph.flamegraph_options(&new_loaded, new_index, title, &legend);
    render_diff(
        &base_profile,
        base_index,
        &new_loaded.profile,
        &fg,
        options.normalize,
    )
    .map_err(|e| {
        Error::new(
            &new.name,
            format!("cannot draw the differential flame graph: {e}"),
        )
    })
}
