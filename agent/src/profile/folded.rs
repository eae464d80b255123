//! Collapsed ("folded") stacks: one `root;caller;leaf COUNT` line per distinct stack, the text
//! format of flamegraph.pl and inferno. Differential input carries two counts per line
//! (`stack BEFORE AFTER`), which reads as a profile with two sample types.
//!
//! Reading follows inferno, so that both draw the same graph from the same file: `# ` lines are
//! comments, frames are split on `;` as they are, and lines that are not stacks are skipped and
//! counted (or, strictly, refused). [`Reader`] takes a line at a time, so a file of hundreds of
//! megabytes is never held whole.

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

/// The frame that samples without a stack are drawn and written under, so that the root of a
/// graph is the profile's total (go tool pprof counts them in its total too).
pub const NO_STACK: &str = "[no stack]";

/// Writes one line per distinct stack, root first, sorted, counting sample value `index`.
/// Stacks whose value is zero are left out.
///
/// A profile with negative values (a delta between two windows) is written in the two-column
/// differential form instead, `stack SHRANK GREW`: the first column sums the stack's negative
/// values (as positive counts), the second its positive ones, so GREW − SHRANK is its change and
/// inferno draws the growth coloured by the change.
pub fn write(profile: &Profile, index: usize) -> String {
    let mut out = String::new();
    if has_negative(profile, index) {
        for (stack, change) in changes(profile, index) {
            out.push_str(&format!("{stack} {} {}\n", change.shrank, change.grew));
        }
        return out;
    }
    let stacks = stacks(profile, index);
    out.reserve(stacks.keys().map(|k| k.len() + 12).sum());
    for (stack, count) in stacks {
        out.push_str(&stack);
        out.push(' ');
        out.push_str(&count.to_string());
        out.push('\n');
    }
    out
}

/// Whether any sample has a negative value `index`.
pub fn has_negative(profile: &Profile, index: usize) -> bool {
    profile
        .samples
        .iter()
        .any(|s| s.values.get(index).is_some_and(|v| *v < 0))
}

/// The distinct stacks (frames joined by `;`, root first) with their summed value `index`,
/// sorted as inferno sorts its input. Stacks whose sum is zero are left out.
pub fn stacks(profile: &Profile, index: usize) -> BTreeMap<String, i64> {
    let mut stacks: BTreeMap<String, i64> = BTreeMap::new();
    for_each_stack(profile, index, |stack, value| match stacks.get_mut(stack) {
        Some(sum) => *sum = sum.saturating_add(value),
        None => {
            stacks.insert(stack.to_string(), value);
        }
    });
    stacks.retain(|_, v| *v != 0);
    stacks
}

/// How much of a stack's value grew and shrank, both as magnitudes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Change {
    pub grew: i64,
    pub shrank: i64,
}

/// The distinct stacks with the sums of their positive and of their negative values `index`,
/// sorted. Summing magnitudes is what go tool pprof does for its total of a delta profile.
pub fn changes(profile: &Profile, index: usize) -> BTreeMap<String, Change> {
    let mut changes: BTreeMap<String, Change> = BTreeMap::new();
    for_each_stack(profile, index, |stack, value| {
        if !changes.contains_key(stack) {
            changes.insert(stack.to_string(), Change::default());
        }
        let change = changes.get_mut(stack).expect("inserted above");
        if value > 0 {
            change.grew = change.grew.saturating_add(value);
        } else {
            change.shrank = change.shrank.saturating_add(value.saturating_neg());
        }
    });
    changes
}

/// Calls `f` with each sample's stack (root first, `;`-joined) and non-zero value `index`.
fn for_each_stack(profile: &Profile, index: usize, mut f: impl FnMut(&str, i64)) {
    // Each function's name is sanitized once, not once per appearance in a stack.
    let names: Vec<String> = profile
        .functions
        .iter()
        .map(|f| sanitize(&f.name))
        .collect();
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
        if frames.is_empty() {
            frames.push(NO_STACK);
        }
        stack.clear();
        for (i, name) in frames.iter().rev().enumerate() {
            if i > 0 {
                stack.push(';');
            }
            stack.push_str(name);
        }
        f(&stack, value);
    }
}

/// How lines that are not stacks are treated.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Strictness {
    /// Skipped and counted, as inferno and flamegraph.pl do: a profiler's stray line (a
    /// truncated last line, a message mixed into its output) should not cost the whole graph.
    #[default]
    Lenient,
    /// The first such line is an error.
    Strict,
}

/// What reading left out or changed, for the warnings a reader shows.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ReadNotes {
    /// Lines that were not stacks (lenient reading only), and the first of them.
    pub invalid_lines: usize,
    pub first_invalid: Option<ParseError>,
    /// Comment lines (`# ...`, as austin writes) skipped.
    pub comment_lines: usize,
    /// Set when counts had fractions.
    pub fractions: Option<Fractions>,
}

/// Fractional counts and what they were rounded to. Counts are whole numbers in the model, so
/// each line gets the rounded running sum less what earlier lines got: the total is the exact
/// sum rounded (inferno truncates every line instead, which loses up to a count per line).
#[derive(Debug, Clone, PartialEq)]
pub struct Fractions {
    /// The line of the first fractional count.
    pub first_line: usize,
    /// Per column, the exact sum of the counts and the sum as rounded.
    pub exact_totals: Vec<f64>,
    pub rounded_totals: Vec<i64>,
}

impl ReadNotes {
    /// One sentence per note, for warnings.
    pub fn messages(&self) -> Vec<String> {
        let mut messages = Vec::new();
        if let Some(first) = &self.first_invalid {
            messages.push(format!(
                "ignored {} line(s) that are not `frame;frame COUNT`, the first at {first} \
                 (--strict makes this an error)",
                self.invalid_lines
            ));
        }
        if let Some(f) = &self.fractions {
            let exact: Vec<String> = f.exact_totals.iter().map(|t| decimal(*t)).collect();
            let rounded: Vec<String> = f.rounded_totals.iter().map(i64::to_string).collect();
            messages.push(format!(
                "counts have fractions (the first on line {}); they are rounded to whole counts \
                 so that the total, {}, becomes {}",
                f.first_line,
                exact.join(" / "),
                rounded.join(" / ")
            ));
        }
        messages
    }
}

/// Reads folded stacks strictly: blank lines and `# ` comments are skipped, any other line that
/// is not `stack COUNT` (or `stack COUNT COUNT`) is an error naming its line.
pub fn parse(input: &[u8]) -> Result<Profile, ParseError> {
    read(input, Strictness::Strict).map(|(profile, _)| profile)
}

/// Reads folded stacks from memory (see [`Reader`]).
pub fn read(input: &[u8], strictness: Strictness) -> Result<(Profile, ReadNotes), ParseError> {
    let mut reader = Reader::new(strictness);
    for line in input.split(|&b| b == b'\n') {
        reader.line(line)?;
    }
    Ok(reader.finish())
}

/// Reads folded stacks a line at a time, so that a file of any size is read without holding it.
///
/// Stacks that repeat (concatenated files, a collapser run over several recordings) become one
/// sample: a line is hashed whole, and only a stack not seen before is split into frames.
pub struct Reader {
    strictness: Strictness,
    builder: ProfileBuilder,
    /// Frame names to their location, so each name is built into the model once.
    location_of: HashMap<Box<str>, usize, BuildHasherDefault<NameHasher>>,
    /// A hash of each distinct stack's text to its sample.
    sample_of: HashMap<u64, usize, BuildHasherDefault<NameHasher>>,
    columns: Option<usize>,
    line_no: usize,
    /// What fractional counts have been rounded by so far, per column.
    carry: [f64; 2],
    exact: [f64; 2],
    notes: ReadNotes,
}

impl Reader {
    pub fn new(strictness: Strictness) -> Self {
        Reader {
            strictness,
            builder: ProfileBuilder::new(Vec::new()),
            location_of: HashMap::default(),
            sample_of: HashMap::default(),
            columns: None,
            line_no: 0,
            carry: [0.0; 2],
            exact: [0.0; 2],
            notes: ReadNotes::default(),
        }
    }

    /// Reads the next line (without its `\n`). Errs only when strict.
    pub fn line(&mut self, raw: &[u8]) -> Result<(), ParseError> {
        self.line_no += 1;
        match self.stack_line(raw) {
            Ok(()) => Ok(()),
            Err(message) => {
                let error = ParseError {
                    line: self.line_no,
                    message,
                };
                if self.strictness == Strictness::Strict {
                    return Err(error);
                }
                self.notes.invalid_lines += 1;
                self.notes.first_invalid.get_or_insert(error);
                Ok(())
            }
        }
    }

    /// The profile, and what was left out or changed on the way.
    pub fn finish(mut self) -> (Profile, ReadNotes) {
        let columns = self.columns.unwrap_or(1);
        if let Some(f) = &mut self.notes.fractions {
            f.exact_totals = self.exact[..columns].to_vec();
            let profile = self.builder.profile_mut();
            f.rounded_totals = (0..columns).map(|c| profile.total(c)).collect();
        }
        self.builder.profile_mut().sample_types = if columns == 2 {
            vec![
                ValueType::new("before", "count"),
                ValueType::new("after", "count"),
            ]
        } else {
            vec![ValueType::new("samples", "count")]
        };
        (self.builder.build(), self.notes)
    }

    /// Whether any line so far was more than white space.
    pub fn saw_content(&self) -> bool {
        self.columns.is_some() || self.notes.invalid_lines > 0 || self.notes.comment_lines > 0
    }

    fn stack_line(&mut self, raw: &[u8]) -> Result<(), String> {
        let text = std::str::from_utf8(raw).map_err(|e| {
            format!(
                "not valid UTF-8 at byte {} of the line",
                e.valid_up_to() + 1
            )
        })?;
        let text = text.trim();
        if text.is_empty() {
            return Ok(());
        }
        // inferno's rule: `# ` opens a comment, while `#frame 1` is a stack.
        if text.starts_with("# ") {
            self.notes.comment_lines += 1;
            return Ok(());
        }
        let (stack, tokens, columns) = split_counts(text)?;
        match self.columns {
            None => self.columns = Some(columns),
            Some(n) if n != columns => {
                return Err(format!("has {columns} count(s) but earlier lines have {n}"))
            }
            Some(_) => {}
        }
        // Both counts are checked before either is added to the sums.
        let mut parsed = [Count::Whole(0); 2];
        for (count, token) in parsed.iter_mut().zip(&tokens[..columns]) {
            *count = parse_count(token)?;
        }
        let mut counts = [0i64; 2];
        for (column, count) in parsed[..columns].iter().enumerate() {
            counts[column] = self.take_count(column, *count);
        }
        let counts = &counts[..columns];
        let mut hasher = NameHasher::default();
        hasher.write(stack.as_bytes());
        let hash = hasher.finish();
        if let Some(&sample) = self.sample_of.get(&hash) {
            if self.is_stack_of(sample, stack) {
                let values = &mut self.builder.profile_mut().samples[sample].values;
                for (sum, count) in values.iter_mut().zip(counts) {
                    *sum = sum.saturating_add(*count);
                }
                return Ok(());
            }
        }
        // Frames are split as inferno splits them, so both draw the same frames: an empty frame
        // (`a;;b`, a trailing `; `, which collapsers do write) is a frame with an empty name.
        let mut locations: Vec<usize> = Vec::new();
        for name in frames_of(stack) {
            let location = match self.location_of.get(name) {
                Some(&location) => location,
                None => {
                    let location = self.builder.named_location(name, "", 0);
                    self.location_of.insert(name.into(), location);
                    location
                }
            };
            locations.push(location);
        }
        locations.reverse();
        let sample = self.builder.profile_mut().samples.len();
        self.builder.sample(locations, counts.to_vec());
        self.sample_of.entry(hash).or_insert(sample);
        Ok(())
    }

    /// Whether `sample`'s frames are the names of `stack` (hashes can collide).
    fn is_stack_of(&mut self, sample: usize, stack: &str) -> bool {
        let profile = self.builder.profile_mut();
        let mut names = profile.samples[sample].locations.iter().rev().map(|&l| {
            profile.functions[profile.locations[l].lines[0].function]
                .name
                .as_str()
        });
        frames_of(stack).all(|frame| names.next() == Some(frame)) && names.next().is_none()
    }

    /// Adds a line's count to the sums of `column`, returning it as a whole number: a fraction
    /// is rounded by the running sum.
    fn take_count(&mut self, column: usize, count: Count) -> i64 {
        match count {
            Count::Whole(count) => {
                self.exact[column] += count as f64;
                count
            }
            Count::Fraction(value) => {
                self.exact[column] += value;
                self.notes.fractions.get_or_insert(Fractions {
                    first_line: self.line_no,
                    exact_totals: Vec::new(),
                    rounded_totals: Vec::new(),
                });
                // Half rounds up; the carry stays within [-0.5, 0.5), so no count is negative.
                let wanted = self.carry[column] + value;
                let count = (wanted + 0.5).floor();
                self.carry[column] = wanted - count;
                count as i64
            }
        }
    }
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

/// The frames of a stack, root first, split as inferno splits them; an empty stack has none (a
/// sample without a stack, see [`NO_STACK`]).
fn frames_of(stack: &str) -> impl Iterator<Item = &str> {
    stack.split(';').filter(move |_| !stack.is_empty())
}

/// Splits `stack COUNT [COUNT]` into the stack and its one or two count tokens, in order. A line
/// that is only a count (py-spy writes one for samples it could not read a stack for) has an
/// empty stack.
fn split_counts(text: &str) -> Result<(&str, [&str; 2], usize), String> {
    let is_count = |t: &str| !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit() || b == b'.');
    if is_count(text) {
        return Ok(("", [text, ""], 1));
    }
    let mut tokens = [""; 2];
    let mut found = 0;
    let mut rest = text;
    while found < 2 {
        let Some((head, last)) = rest.rsplit_once([' ', '\t']) else {
            break;
        };
        if !is_count(last) {
            break;
        }
        tokens[found] = last;
        found += 1;
        rest = head.trim_end();
    }
    if found == 0 {
        return Err(format!(
            "expected `frame;frame;... COUNT`, but the line does not end in a count: {:?}",
            truncate(text)
        ));
    }
    if rest.is_empty() {
        return Err("has a count but no stack before it".into());
    }
    tokens[..found].reverse();
    Ok((rest, tokens, found))
}

/// A count as written: whole, or with a fraction.
#[derive(Debug, Clone, Copy)]
enum Count {
    Whole(i64),
    Fraction(f64),
}

fn parse_count(token: &str) -> Result<Count, String> {
    if !token.contains('.') {
        return token.parse::<i64>().map(Count::Whole).map_err(|_| {
            format!(
                "count {token} does not fit in 64 bits (at most {})",
                i64::MAX
            )
        });
    }
    let value: f64 = token
        .parse()
        .map_err(|_| format!("count {token:?} is not a number"))?;
    if !(0.0..=(i64::MAX / 2) as f64).contains(&value) {
        return Err(format!("count {token} does not fit in 64 bits"));
    }
    Ok(Count::Fraction(value))
}

/// A sum of fractional counts, to three decimals without trailing zeros.
fn decimal(value: f64) -> String {
    let text = format!("{value:.3}");
    text.trim_end_matches('0').trim_end_matches('.').to_string()
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

        // As inferno reads them: empty frames are frames.
        assert_eq!(write(&parse(b"a;;b; 1\n").unwrap(), 0), "a;;b; 1\n");

        let err = parse(b"a 1\nb 1 2\n").unwrap_err();
        assert!(err.message.contains("earlier lines have 1"), "{err}");
    }

    #[test]
    fn lenient_reading_skips_and_counts_what_is_not_a_stack() {
        let input = b"# austin: 3.3.0\na;b 2\nnot a stack\n#\na 1\n";
        let (p, notes) = read(input, Strictness::Lenient).unwrap();
        assert_eq!(p.total(0), 3);
        assert_eq!((notes.comment_lines, notes.invalid_lines), (1, 2));
        assert_eq!(notes.first_invalid.as_ref().unwrap().line, 3);
        assert!(notes.messages()[0].contains("ignored 2 line(s)"));
        assert_eq!(read(input, Strictness::Strict).unwrap_err().line, 3);
    }

    #[test]
    fn a_line_that_is_only_a_count_is_a_sample_without_a_stack() {
        let (p, notes) = read(b"a;b 2\n 3\n3\n", Strictness::Strict).unwrap();
        assert!(notes.messages().is_empty());
        assert_eq!(p.total(0), 8);
        assert_eq!(write(&p, 0), "[no stack] 6\na;b 2\n");
    }

    #[test]
    fn repeated_stacks_are_one_sample() {
        let (p, _) = read(b"a;b 2\na;c 1\na;b 3\n", Strictness::Strict).unwrap();
        assert_eq!(p.samples.len(), 2);
        assert_eq!(write(&p, 0), "a;b 5\na;c 1\n");
    }

    #[test]
    fn fractions_round_by_the_running_sum() {
        let (p, notes) = read(b"a 0.4\nb 0.4\nc 0.4\nd 2\n", Strictness::Strict).unwrap();
        assert_eq!(p.total(0), 3, "0.4 * 3 + 2 = 3.2");
        let fractions = notes.fractions.unwrap();
        assert_eq!(fractions.first_line, 1);
        assert_eq!(fractions.rounded_totals, [3]);
        assert!((fractions.exact_totals[0] - 3.2).abs() < 1e-9);
        let (_, notes) = read(b"a 2\n", Strictness::Strict).unwrap();
        assert!(notes.fractions.is_none() && notes.messages().is_empty());
    }

    #[test]
    fn separators_in_names_are_replaced() {
        let mut b = ProfileBuilder::new(vec![ValueType::new("samples", "count")]);
        let loc = b.named_location("<[u8; 4] as Foo>::bar", "", 0);
        b.sample(vec![loc], vec![1]);
        assert_eq!(write(&b.build(), 0), "<[u8: 4] as Foo>::bar 1\n");
    }
}
