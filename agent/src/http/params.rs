//! Query parameters, checked strictly: an unknown, repeated or out-of-range parameter is a 400
//! that names it and says what is allowed, so a typo like `second=30` does not silently become a
//! 30-second default.

use std::ops::RangeInclusive;

use super::error::ApiError;
use crate::profile::{names, trim, Profile};

/// The output formats every profile endpoint offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Pprof,
    Folded,
    Svg,
}

impl Format {
    const NAMES: &'static str = "pprof, folded, svg";
}

/// The parsed query string of one request.
/// How a profile is shown: names as given or shortened, stacks as given or trimmed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Presentation {
    full_names: bool,
    trimmed: bool,
}

impl Presentation {
    pub fn apply(self, profile: Profile) -> Profile {
        let profile = if self.full_names {
            profile
        } else {
            names::short_names(profile)
        };
        if self.trimmed {
            trim::trim(&profile)
        } else {
            profile
        }
    }
}

#[derive(Debug)]
pub struct Params {
    pairs: Vec<(String, String)>,
}

impl Params {
    /// Parses the query, refusing parameters outside `allowed` and parameters given twice.
    pub fn parse(query: Option<&str>, allowed: &[&str]) -> Result<Params, ApiError> {
        let pairs: Vec<(String, String)> = form_urlencoded::parse(query.unwrap_or("").as_bytes())
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        for (i, (key, _)) in pairs.iter().enumerate() {
            if !allowed.contains(&key.as_str()) {
                return Err(ApiError::bad_request(format!(
                    "unknown parameter {key:?}; this endpoint takes: {}",
                    allowed.join(", ")
                )));
            }
            if pairs[..i].iter().any(|(k, _)| k == key) {
                return Err(ApiError::bad_request(format!(
                    "parameter {key:?} is given more than once"
                )));
            }
        }
        Ok(Params { pairs })
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.pairs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// A whole number within `range`, or `default` when absent.
    pub fn number(
        &self,
        name: &str,
        default: u64,
        range: RangeInclusive<u64>,
    ) -> Result<u64, ApiError> {
        let Some(raw) = self.get(name) else {
            return Ok(default);
        };
        raw.trim()
            .parse::<u64>()
            .ok()
            .filter(|n| range.contains(n))
            .ok_or_else(|| {
                ApiError::bad_request(format!(
                    "{name}: expected a whole number from {} to {}, got {raw:?}",
                    range.start(),
                    range.end()
                ))
            })
    }

    /// `1`/`true` or `0`/`false`; absent means false.
    pub fn flag(&self, name: &str) -> Result<bool, ApiError> {
        match self.get(name) {
            None | Some("0") | Some("false") => Ok(false),
            Some("1") | Some("true") => Ok(true),
            Some(other) => Err(ApiError::bad_request(format!(
                "{name}: expected 1, 0, true or false, got {other:?}"
            ))),
        }
    }

    /// One of `allowed`, or `default` when absent.
    pub fn choice<'a>(
        &self,
        name: &str,
        allowed: &[&'a str],
        default: &'a str,
    ) -> Result<&'a str, ApiError> {
        match self.get(name) {
            None => Ok(default),
            Some(raw) => allowed.iter().find(|a| **a == raw).copied().ok_or_else(|| {
                ApiError::bad_request(format!(
                    "{name}: expected one of {}, got {raw:?}",
                    allowed.join(", ")
                ))
            }),
        }
    }

    /// A sample type by name or position, as go tool pprof's `-sample_index`; `default` when absent.
    pub fn sample_index(&self, kinds: &[&str], default: usize) -> Result<usize, ApiError> {
        let Some(raw) = self.get("sample_index") else {
            return Ok(default);
        };
        kinds
            .iter()
            .position(|k| *k == raw)
            .or_else(|| raw.parse::<usize>().ok().filter(|&i| i < kinds.len()))
            .ok_or_else(|| {
                ApiError::bad_request(format!(
                    "sample_index: expected one of {} (or 0 to {}), got {raw:?}",
                    kinds.join(", "),
                    kinds.len() - 1
                ))
            })
    }

    /// How the profile is to be shown, from `names` (`short`, the default, or `full`) and `trim`
    /// (`1` or `0`; on by default for SVG only, where a person reads it): see [`names`] and
    /// [`trim`]. Read before the window, so a bad value is a 400 at once.
    pub fn presentation(&self, format: Format) -> Result<Presentation, ApiError> {
        let full_names = self.choice("names", &["short", "full"], "short")? == "full";
        let trimmed = match self.get("trim") {
            None => format == Format::Svg,
            Some(_) => self.flag("trim")?,
        };
        Ok(Presentation {
            full_names,
            trimmed,
        })
    }

    pub fn format(&self) -> Result<Format, ApiError> {
        match self.get("format") {
            None | Some("pprof") | Some("proto") => Ok(Format::Pprof),
            Some("folded") | Some("collapsed") => Ok(Format::Folded),
            Some("svg") | Some("flamegraph") => Ok(Format::Svg),
            Some(other) => Err(ApiError::bad_request(format!(
                "format: expected one of {}, got {other:?}",
                Format::NAMES
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_unknown_and_repeated_parameters() {
        let err = Params::parse(Some("second=3"), &["seconds"]).unwrap_err();
        assert_eq!(
            err.message,
            r#"unknown parameter "second"; this endpoint takes: seconds"#
        );
        let err = Params::parse(Some("seconds=3&seconds=4"), &["seconds"]).unwrap_err();
        assert!(err.message.contains("more than once"));
    }

    #[test]
    fn numbers_are_range_checked() {
        let p = Params::parse(Some("seconds=0&frequency=abc"), &["seconds", "frequency"]).unwrap();
        let err = p.number("seconds", 30, 1..=300).unwrap_err();
        assert_eq!(
            err.message,
            r#"seconds: expected a whole number from 1 to 300, got "0""#
        );
        assert!(p.number("frequency", 99, 1..=1000).is_err());
        assert_eq!(p.number("absent", 7, 1..=10).unwrap(), 7);
    }

    #[test]
    fn choices_and_sample_types() {
        let p = Params::parse(
            Some("format=html&sample_index=busy"),
            &["format", "sample_index"],
        )
        .unwrap();
        assert_eq!(
            p.choice("format", &["text", "html"], "text").unwrap(),
            "html"
        );
        assert_eq!(p.sample_index(&["wall", "busy"], 0).unwrap(), 1);
        let p = Params::parse(
            Some("format=xml&sample_index=2"),
            &["format", "sample_index"],
        )
        .unwrap();
        let err = p.choice("format", &["text", "html"], "text").unwrap_err();
        assert_eq!(
            err.message,
            r#"format: expected one of text, html, got "xml""#
        );
        let err = p.sample_index(&["wall", "busy"], 0).unwrap_err();
        assert_eq!(
            err.message,
            r#"sample_index: expected one of wall, busy (or 0 to 1), got "2""#
        );
    }

    #[test]
    fn names_and_trim() {
        let p = Params::parse(Some("names=long"), &["names"]).unwrap();
        let err = p.presentation(Format::Svg).unwrap_err();
        assert_eq!(
            err.message,
            r#"names: expected one of short, full, got "long""#
        );
        let p = Params::parse(Some("trim=2"), &["trim"]).unwrap();
        let err = p.presentation(Format::Svg).unwrap_err();
        assert_eq!(
            err.message,
            r#"trim: expected 1, 0, true or false, got "2""#
        );
    }

    #[test]
    fn formats_and_flags() {
        let p = Params::parse(Some("format=svg&threads=1"), &["format", "threads"]).unwrap();
        assert_eq!(p.format().unwrap(), Format::Svg);
        assert!(p.flag("threads").unwrap());
        let p = Params::parse(Some("format=png&threads=yes"), &["format", "threads"]).unwrap();
        assert!(p
            .format()
            .unwrap_err()
            .message
            .contains("pprof, folded, svg"));
        assert!(p.flag("threads").is_err());
    }
}
