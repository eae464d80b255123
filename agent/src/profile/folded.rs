//! Collapsed ("folded") stacks: one `root;caller;leaf COUNT` line per distinct stack, the text
//! format of flamegraph.pl and inferno. Differential input carries two counts per line
//! (`stack BEFORE AFTER`), which reads as a profile with two sample types.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::hash::{BuildHasherDefault, Hasher};

use super::{Profile, ProfileBuilder, ValueType};

/// A line of folded input that could not be read, with its 1-based line number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    pub line: usize,
    pub message: String,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}", self.line, self.message)
    }
}

impl std::error::Error for ParseError {}

/// Frame names may not contain the separator or a line break; Rust names can (`[u8; 4]`).
pub(crate) fn sanitize(name: &str) -> String {
    name.replace(';', ":").replace(['\n', '\r'], " ")
}

/// Writes one line per distinct stack, root first, sorted, counting sample value `index`.
/// Stacks whose value is zero are left out.
pub fn write(profile: &Profile, index: usize) -> String {
    let stacks = stacks(profile, index);
    let mut out = String::with_capacity(stacks.keys().map(|k| k.len() + 12).sum());
    for (stack, count) in stacks {
        out.push_str(&stack);
        out.push(' ');
        out.push_str(&count.to_string());
        out.push('\n');
    }
    out
}

/// The distinct stacks (frames joined by `;`, root first) with their summed value `index`,
/// sorted as inferno sorts its input. Stacks whose sum is zero are left out.
pub fn stacks(profile: &Profile, index: usize) -> BTreeMap<String, i64> {
    // Each function's name is sanitized once, not once per appearance in a stack.
    let names: Vec<String> = profile
        .functions
        .iter()
        .map(|f| sanitize(&f.name))
        .collect();
    let mut stacks: BTreeMap<String, i64> = BTreeMap::new();
    let mut frames: Vec<&str> = Vec::new();
    let mut stack = String::new();
    for sample in &profile.samples {
        let value = sample.values.get(index).copied().unwrap_or(0);
        if value == 0 {
            continue;
        }
        frames.clear();
        for &loc in &sample.locations {
            if let Some(location) = profile.locations.get(loc) {
                frames.extend(
                    location
                        .lines
                        .iter()
                        .filter_map(|l| names.get(l.function))
                        .map(String::as_str),
                );
            }
        }
        stack.clear();
        for (i, name) in frames.iter().rev().enumerate() {
            if i > 0 {
                stack.push(';');
            }
            stack.push_str(name);
        }
        match stacks.get_mut(stack.as_str()) {
            Some(sum) => *sum = sum.saturating_add(value),
            None => {
                stacks.insert(stack.clone(), value);
            }
        }
    }
    stacks.retain(|_, v| *v != 0);
    stacks
}

/// Reads folded stacks. Blank lines are skipped; any other line that is not `stack COUNT` (or
/// `stack COUNT COUNT` in differential input) is an error naming its line.
pub fn parse(input: &[u8]) -> Result<Profile, ParseError> {
    let mut columns: Option<usize> = None;
    let mut builder = ProfileBuilder::new(Vec::new());
    // Large inputs repeat each name millions of times: intern by the borrowed name first, and
    // build the model's function and location only once per name.
    let mut location_of: HashMap<&str, usize, BuildHasherDefault<NameHasher>> = HashMap::default();
    for (i, raw) in input.split(|&b| b == b'\n').enumerate() {
        let line_no = i + 1;
        let err = |message: String| ParseError {
            line: line_no,
            message,
        };
        let text = std::str::from_utf8(raw).map_err(|e| {
            err(format!(
                "not valid UTF-8 at byte {} of the line",
                e.valid_up_to() + 1
            ))
        })?;
        let text = text.trim_end_matches('\r').trim();
        if text.is_empty() {
            continue;
        }
        let (stack, counts) = split_counts(text).map_err(err)?;
        match columns {
            None => columns = Some(counts.len()),
            Some(n) if n != counts.len() => {
                return Err(err(format!(
                    "has {} count(s) but earlier lines have {n}",
                    counts.len()
                )))
            }
            Some(_) => {}
        }
        // Collapsers do write empty frames (`a;;b`, a trailing `; `: inferno's own test data has
        // them); like inferno, they are skipped rather than refused.
        let mut locations: Vec<usize> = stack
            .split(';')
            .map(str::trim)
            .filter(|f| !f.is_empty())
            .map(|name| {
                *location_of
                    .entry(name)
                    .or_insert_with(|| builder.named_location(name, "", 0))
            })
            .collect();
        if locations.is_empty() {
            return Err(err(
                "has a count but only empty frame names before it".into()
            ));
        }
        locations.reverse();
        builder.sample(locations, counts);
    }

    builder.profile_mut().sample_types = match columns {
        Some(2) => vec![
            ValueType::new("before", "count"),
            ValueType::new("after", "count"),
        ],
        _ => vec![ValueType::new("samples", "count")],
    };
    Ok(builder.build())
}

/// A fast hash for frame names, which are hashed once per frame of every input line; SipHash's
/// defence against chosen collisions buys nothing for a file the user chose to read.
#[derive(Default)]
struct NameHasher(u64);

impl Hasher for NameHasher {
    fn finish(&self) -> u64 {
        // The table takes its bucket from the low bits, which a multiply mixes least.
        self.0 ^ (self.0 >> 29)
    }

    fn write(&mut self, bytes: &[u8]) {
        const K: u64 = 0x51_7c_c1_b7_27_22_0a_95;
        let mut chunks = bytes.chunks_exact(8);
        for chunk in &mut chunks {
            let word = u64::from_le_bytes(chunk.try_into().expect("8 bytes"));
            self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(K);
        }
        for &byte in chunks.remainder() {
            self.0 = (self.0.rotate_left(5) ^ u64::from(byte)).wrapping_mul(K);
        }
    }
}

/// Splits `stack COUNT [COUNT]` into the stack and its counts.
fn split_counts(text: &str) -> Result<(&str, Vec<i64>), String> {
    let mut counts = Vec::new();
    let mut rest = text;
    while counts.len() < 2 {
        let Some((head, last)) = rest.rsplit_once([' ', '\t']) else {
            break;
        };
        if !last.bytes().all(|b| b.is_ascii_digit() || b == b'.') || last.is_empty() {
            break;
        }
        counts.push(parse_count(last)?);
        rest = head.trim_end();
    }
    if counts.is_empty() {
        return Err(format!(
            "expected `frame;frame;... COUNT`, but the line does not end in a count: {:?}",
            truncate(text)
        ));
    }
    if rest.is_empty() {
        return Err("has a count but no stack before it".into());
    }
    counts.reverse();
    Ok((rest, counts))
}

fn parse_count(token: &str) -> Result<i64, String> {
    // inferno accepts fractional counts from some collapsers; they are rounded.
    if token.contains('.') {
        let value: f64 = token
            .parse()
            .map_err(|_| format!("count {token:?} is not a number"))?;
        if !(0.0..=i64::MAX as f64).contains(&value) {
            return Err(format!("count {token} does not fit in 64 bits"));
        }
        return Ok(value.round() as i64);
    }
    token.parse::<i64>().map_err(|_| {
        format!(
            "count {token} does not fit in 64 bits (at most {})",
            i64::MAX
        )
    })
}

fn truncate(text: &str) -> String {
    text.chars().take(80).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_writes_back() {
        let input = b"main;work 5\nmain 2\n\nmain;work 1\n";
        let p = parse(input).unwrap();
        assert_eq!(p.total(0), 8);
        assert_eq!(write(&p, 0), "main 2\nmain;work 6\n");
    }

    #[test]
    fn two_column_lines_are_a_diff() {
        let p = parse(b"a;b 1 3\na 2 0\n").unwrap();
        assert_eq!(p.sample_types.len(), 2);
        assert_eq!((p.total(0), p.total(1)), (3, 3));
    }

    #[test]
    fn errors_name_the_line() {
        let err = parse(b"a;b 1\nno count here\n").unwrap_err();
        assert_eq!(err.line, 2);
        assert!(err.message.contains("does not end in a count"), "{err}");

        let err = parse(b"a 99999999999999999999\n").unwrap_err();
        assert!(err.message.contains("does not fit in 64 bits"), "{err}");

        let err = parse(b"a 1\n\xff\xfe 2\n").unwrap_err();
        assert_eq!(err.line, 2);
        assert!(err.message.contains("UTF-8"), "{err}");

        let err = parse(b";; 1\n").unwrap_err();
        assert!(err.message.contains("only empty frame names"), "{err}");
        assert_eq!(write(&parse(b"a;;b; 1\n").unwrap(), 0), "a;b 1\n");

        let err = parse(b"a 1\nb 1 2\n").unwrap_err();
        assert!(err.message.contains("earlier lines have 1"), "{err}");
    }

    #[test]
    fn separators_in_names_are_replaced() {
        let mut b = ProfileBuilder::new(vec![ValueType::new("samples", "count")]);
        let loc = b.named_location("<[u8; 4] as Foo>::bar", "", 0);
        b.sample(vec![loc], vec![1]);
        assert_eq!(write(&b.build(), 0), "<[u8: 4] as Foo>::bar 1\n");
    }
}
