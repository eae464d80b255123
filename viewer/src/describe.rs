//! Words and numbers about a profile: which sample type to show, values in their unit
//! (`730 ms`, `253.6 KiB`), and the title and subtitle that say what a graph or table shows.
//!
//! Everything a command prints about a profile goes through here, so a flame graph, a top table
//! and a diff report describe the same profile in the same words.

use pyrometer::profile::{Profile, SampleIndex, ValueType};

use crate::error::{Error, Position};
use crate::input::{Format, Loaded};

/// The position of the sample type to show, or an error listing the ones the profile has.
pub fn sample_index(loaded: &Loaded, which: &SampleIndex) -> Result<usize, Error> {
    if loaded.profile.sample_types.is_empty() {
        return Err(Error::at(
            &loaded.name,
            Position::Entry("sample_type".into()),
            "the profile declares no sample types, so it has no values to show",
        ));
    }
    loaded
        .profile
        .sample_index(which)
        .map_err(|e| Error::new(&loaded.name, e.to_string()))
}

/// The sample type at `index`, or `samples/count` for a profile without one.
pub fn value_type(profile: &Profile, index: usize) -> ValueType {
    profile
        .sample_types
        .get(index)
        .cloned()
        .unwrap_or_else(|| ValueType::new("samples", "count"))
}

/// A value in a readable unit: nanoseconds as ms or s, bytes as KiB, MiB or GiB, counts with
/// thousands separators.
pub fn format_value(value: i64, unit: &str) -> String {
    let sign = if value < 0 { "-" } else { "" };
    let magnitude = value.unsigned_abs();
    let scaled =
        |divisor: f64, suffix: &str| format!("{sign}{:.1} {suffix}", magnitude as f64 / divisor);
    match unit {
        "nanoseconds" | "ns" => match magnitude {
            0..=999 => format!("{value} ns"),
            1_000..=999_999 => scaled(1e3, "µs"),
            1_000_000..=9_999_999_999 => scaled(1e6, "ms"),
            _ => scaled(1e9, "s"),
        },
        "bytes" => match magnitude {
            0..=1023 => format!("{value} B"),
            1024..=1_048_575 => scaled(1024.0, "KiB"),
            1_048_576..=1_073_741_823 => scaled(1_048_576.0, "MiB"),
            _ => scaled(1_073_741_824.0, "GiB"),
        },
        "count" | "" => format!("{sign}{}", thousands(magnitude)),
        other => format!("{sign}{} {other}", thousands(magnitude)),
    }
}

fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A share of a total, unsigned as in go tool pprof (a shrinkage is a share too), `-` when the
/// total is zero.
pub fn percent(part: i64, whole: i64) -> String {
    if whole == 0 {
        "-".to_string()
    } else {
        format!("{:.2}%", (part as f64 * 100.0 / whole as f64).abs())
    }
}

/// `cpu (nanoseconds) of go.cpu.pb.gz`.
pub fn title(loaded: &Loaded, index: usize) -> String {
    let t = value_type(&loaded.profile, index);
    format!("{} ({}) of {}", t.kind, t.unit, loaded.name)
}

/// `total 730.0 ms in 804.6 ms · 66 samples · pprof of goprof`.
pub fn subtitle(loaded: &Loaded, index: usize) -> String {
    let p = &loaded.profile;
    let unit = value_type(p, index).unit;
    let (grew, shrank) = p.samples.iter().filter_map(|s| s.values.get(index)).fold(
        (0i64, 0i64),
        |(grew, shrank), &v| {
            if v < 0 {
                (grew, shrank.saturating_add(v))
            } else {
                (grew.saturating_add(v), shrank)
            }
        },
    );
    // pprof's total sums magnitudes; a delta profile's also says which way it went.
    let mut total = format!("total {}", format_value(grew.saturating_sub(shrank), &unit));
    if shrank < 0 {
        total.push_str(&format!(
            " (+{} grew, {} shrank)",
            format_value(grew, &unit),
            format_value(shrank, &unit)
        ));
    }
    let mut parts = vec![total];
    if p.duration_nanos > 0 {
        parts[0].push_str(&format!(
            " in {}",
            format_value(p.duration_nanos, "nanoseconds")
        ));
    }
    parts.push(format!("{} samples", thousands(p.samples.len() as u64)));
    let format = match loaded.format {
        Format::Pprof => "pprof",
        Format::Folded => "folded stacks",
        Format::Dhat => "dhat",
    };
    // The binary's file name says which program this is; the rest of its path is noise here.
    let producer = p
        .mappings
        .first()
        .and_then(|m| m.filename.rsplit('/').next())
        .filter(|f| !f.is_empty())
        .map(|f| format!(" of {f}"))
        .unwrap_or_default();
    parts.push(format!("{format}{producer}"));
    parts.join(" · ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_in_their_units() {
        assert_eq!(format_value(140_000_000, "nanoseconds"), "140.0 ms");
        assert_eq!(format_value(12_500_000_000, "nanoseconds"), "12.5 s");
        assert_eq!(format_value(259_696, "bytes"), "253.6 KiB");
        assert_eq!(format_value(-2048, "bytes"), "-2.0 KiB");
        assert_eq!(format_value(4512, "count"), "4,512");
        assert_eq!(
            format_value(i64::MIN, "count"),
            "-9,223,372,036,854,775,808"
        );
        assert_eq!(percent(1, 3), "33.33%");
        assert_eq!(percent(1, 0), "-");
        assert_eq!(percent(-1, 4), "25.00%");
    }
}
