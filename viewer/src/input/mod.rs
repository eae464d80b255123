//! Reading a profile from a file or standard input, whatever wrote it.
//!
//! The format is recognised from the content, never from the file name: people rename files,
//! pipe them, and save Go's profiles without an extension. gzip is unwrapped first (pprof is
//! usually compressed, and a folded file may be too); then text that opens with `{` is dhat's
//! JSON, other text is folded stacks, and binary is pprof's protobuf.
//!
//! Folded stacks are read as a stream, a line at a time, because they are the one format that
//! comes in hundreds of megabytes (perf over a busy host) and mostly repeats itself: the profile
//! holds each distinct stack once, never the file.

mod dhat;
mod pprof;

use std::borrow::Cow;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;

use pyrometer::profile::folded::{self, Strictness};
use pyrometer::profile::{merge, Profile};

use crate::error::{Error, Position};

/// The formats the viewer reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Pprof,
    Folded,
    Dhat,
}

/// A profile and where it came from.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub profile: Profile,
    pub format: Format,
    /// The file name as given, or `<stdin>`.
    pub name: String,
    /// What reading left out or changed (skipped lines, rounded fractions), one sentence each,
    /// for the command to show as warnings.
    pub notes: Vec<String>,
}

/// How to read inputs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReadOptions {
    /// A folded line that is not a stack is an error, rather than skipped with a warning.
    pub strict: bool,
}

impl ReadOptions {
    fn strictness(&self) -> Strictness {
        if self.strict {
            Strictness::Strict
        } else {
            Strictness::Lenient
        }
    }
}

/// How much of an input is looked at to tell its format.
const SNIFF_BYTES: u64 = 4096;

/// The name used in messages for a path, `-` being standard input.
pub fn display_name(path: &Path) -> String {
    if path == Path::new("-") {
        "<stdin>".to_string()
    } else {
        path.display().to_string()
    }
}

/// Reads a file, or standard input for `-`, and parses the profile in it.
pub fn load(path: &Path, options: &ReadOptions) -> Result<Loaded, Error> {
    let name = display_name(path);
    let cannot_read = |e: std::io::Error| Error::new(&name, format!("cannot read: {e}"));
    let source: Box<dyn Read> = if path == Path::new("-") {
        Box::new(std::io::stdin().lock())
    } else {
        Box::new(std::fs::File::open(path).map_err(cannot_read)?)
    };
    let mut source = BufReader::with_capacity(1 << 16, source);
    let mut head = Vec::new();
    (&mut source)
        .take(SNIFF_BYTES)
        .read_to_end(&mut head)
        .map_err(cannot_read)?;
    if detect(&head) == Format::Folded && !pyrometer::profile::pprof::is_gzip(&head) {
        return stream_folded(name, head.chain(source), options);
    }
    source.read_to_end(&mut head).map_err(cannot_read)?;
    parse(&name, &head, options)
}

/// Reads several inputs and merges them into one profile (see [`merge`]).
pub fn load_merged(paths: &[impl AsRef<Path>], options: &ReadOptions) -> Result<Loaded, Error> {
    let mut loaded: Vec<Loaded> = paths
        .iter()
        .map(|p| load(p.as_ref(), options))
        .collect::<Result<_, _>>()?;
    if loaded.len() == 1 {
        return Ok(loaded.remove(0));
    }
    let name = loaded
        .iter()
        .map(|l| l.name.as_str())
        .collect::<Vec<_>>()
        .join(" + ");
    let format = loaded[0].format;
    let notes = loaded
        .iter()
        .flat_map(|l| l.notes.iter().map(move |n| format!("{}: {n}", l.name)))
        .collect();
    let profile = merge::merge(loaded.into_iter().map(|l| l.profile).collect())
        .map_err(|e| Error::new(&name, e.to_string()))?;
    Ok(Loaded {
        profile,
        format,
        name,
        notes,
    })
}

/// Parses bytes in any supported format. `name` is used in error messages.
pub fn parse(name: &str, bytes: &[u8], options: &ReadOptions) -> Result<Loaded, Error> {
    let (label, raw, gzipped) = unwrap(name, bytes)?;
    let format = detect(&raw);
    let (profile, notes) = parse_raw(&label, &raw, format, gzipped, options)?;
    Ok(Loaded {
        profile,
        format,
        name: name.to_string(),
        notes,
    })
}

/// The format of decompressed bytes, from their first kilobytes.
fn detect(raw: &[u8]) -> Format {
    if looks_like_text(raw) {
        match raw.iter().find(|b| !b.is_ascii_whitespace()) {
            Some(b'{') => Format::Dhat,
            _ => Format::Folded,
        }
    } else {
        Format::Pprof
    }
}

/// Reads folded stacks a line at a time.
fn stream_folded(name: String, input: impl Read, options: &ReadOptions) -> Result<Loaded, Error> {
    let mut input = BufReader::with_capacity(1 << 16, input);
    let mut reader = folded::Reader::new(options.strictness());
    let mut line = Vec::new();
    loop {
        line.clear();
        let read = input
            .read_until(b'\n', &mut line)
            .map_err(|e| Error::new(&name, format!("cannot read: {e}")))?;
        if read == 0 {
            break;
        }
        let text = line.strip_suffix(b"\n").unwrap_or(&line);
        reader
            .line(text)
            .map_err(|e| Error::at(&name, Position::Line(e.line), e.message))?;
    }
    if !reader.saw_content() {
        return Err(empty(&name));
    }
    let (profile, notes) = reader.finish();
    Ok(Loaded {
        profile,
        format: Format::Folded,
        name,
        notes: notes.messages(),
    })
}

/// Parses bytes (gzip-compressed or not) as the given format, without detection.
pub fn parse_as(name: &str, bytes: &[u8], format: Format) -> Result<Profile, Error> {
    let (label, raw, gzipped) = unwrap(name, bytes)?;
    parse_raw(&label, &raw, format, gzipped, &ReadOptions::default()).map(|(profile, _)| profile)
}

/// Refuses empty input and decompresses gzip, returning the name to use in messages (which
/// says when positions count in decompressed bytes), the bytes, and whether they were gzipped.
fn unwrap<'a>(name: &str, bytes: &'a [u8]) -> Result<(String, Cow<'a, [u8]>, bool), Error> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(empty(name));
    }
    if pyrometer::profile::pprof::is_gzip(bytes) {
        let raw = pprof::gunzip(name, bytes)?;
        return Ok((format!("{name} (decompressed)"), Cow::Owned(raw), true));
    }
    Ok((name.to_string(), Cow::Borrowed(bytes), false))
}

fn empty(name: &str) -> Error {
    Error::new(
        name,
        "is empty: there is no profile in it (pprof, folded stacks or dhat JSON)",
    )
}

fn parse_raw(
    name: &str,
    raw: &[u8],
    format: Format,
    gzipped: bool,
    options: &ReadOptions,
) -> Result<(Profile, Vec<String>), Error> {
    match format {
        Format::Pprof => {
            // Protobuf positions are reported against the file's own name either way; the
            // message says when they count in decompressed bytes.
            let file = name.strip_suffix(" (decompressed)").unwrap_or(name);
            Ok((pprof::decode(file, raw, gzipped)?, Vec::new()))
        }
        Format::Dhat => Ok((dhat::parse(name, raw)?, Vec::new())),
        Format::Folded => folded::read(raw, options.strictness())
            .map(|(profile, notes)| (profile, notes.messages()))
            .map_err(|e| Error::at(name, Position::Line(e.line), e.message)),
    }
}

/// Text has no control characters other than tabs and line breaks in its first kilobytes;
/// protobuf always has some (field keys and lengths are small numbers). Bytes above 127 do not
/// count, so text in a broken encoding is still read as text and reported by line.
fn looks_like_text(bytes: &[u8]) -> bool {
    bytes
        .iter()
        .take(4096)
        .all(|&b| b >= 0x20 || matches!(b, b'\t' | b'\n' | b'\r'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_are_told_by_content() {
        let folded_text = b"main;work 3\n";
        let options = ReadOptions::default();
        let loaded = parse("f", folded_text, &options).unwrap();
        assert_eq!(loaded.format, Format::Folded);
        let pb = pyrometer::profile::pprof::encode(&loaded.profile);
        assert_eq!(parse("p", &pb, &options).unwrap().format, Format::Pprof);
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        std::io::Write::write_all(&mut gz, folded_text).unwrap();
        let gz = gz.finish().unwrap();
        let loaded = parse("g", &gz, &options).unwrap();
        assert_eq!(
            (loaded.format, loaded.profile.total(0)),
            (Format::Folded, 3)
        );
    }

    #[test]
    fn empty_input_says_so() {
        let err = parse("empty.txt", b" \n", &ReadOptions::default()).unwrap_err();
        assert_eq!(err.subject, "empty.txt");
        assert!(err.message.starts_with("is empty"), "{err}");
    }
}
