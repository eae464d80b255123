//! Reading a profile from a file or standard input, whatever wrote it.
//!
//! The format is recognised from the content, never from the file name: people rename files,
//! pipe them, and save Go's profiles without an extension. gzip is unwrapped first (pprof is
//! usually compressed, and a folded file may be too); then text that opens with `{` is dhat's
//! JSON, other text is folded stacks, and binary is pprof's protobuf.

mod dhat;
mod pprof;

use std::borrow::Cow;
use std::io::Read;
use std::path::Path;

use pyrometer::profile::{folded, merge, Profile};

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
}

/// The name used in messages for a path, `-` being standard input.
pub fn display_name(path: &Path) -> String {
    if path == Path::new("-") {
        "<stdin>".to_string()
    } else {
        path.display().to_string()
    }
}

/// Reads a file, or standard input for `-`, and parses the profile in it.
pub fn load(path: &Path) -> Result<Loaded, Error> {
    let name = display_name(path);
    let bytes = if path == Path::new("-") {
        let mut bytes = Vec::new();
        std::io::stdin()
            .lock()
            .read_to_end(&mut bytes)
            .map_err(|e| Error::new(&name, format!("cannot read standard input: {e}")))?;
        bytes
    } else {
        std::fs::read(path).map_err(|e| Error::new(&name, format!("cannot read: {e}")))?
    };
    let (profile, format) = parse(&name, &bytes)?;
    Ok(Loaded {
        profile,
        format,
        name,
    })
}

/// Reads several inputs and merges them into one profile (see [`merge`]).
pub fn load_merged(paths: &[impl AsRef<Path>]) -> Result<Loaded, Error> {
    let mut loaded: Vec<Loaded> = paths
        .iter()
        .map(|p| load(p.as_ref()))
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
    let profile = merge::merge(loaded.into_iter().map(|l| l.profile).collect())
        .map_err(|e| Error::new(&name, e.to_string()))?;
    Ok(Loaded {
        profile,
        format,
        name,
    })
}

/// Parses bytes in any supported format. `name` is used in error messages.
pub fn parse(name: &str, bytes: &[u8]) -> Result<(Profile, Format), Error> {
    let (label, raw, gzipped) = unwrap(name, bytes)?;
    let format = if looks_like_text(&raw) {
        match raw.iter().find(|b| !b.is_ascii_whitespace()) {
            Some(b'{') => Format::Dhat,
            _ => Format::Folded,
        }
    } else {
        Format::Pprof
    };
    Ok((parse_raw(&label, &raw, format, gzipped)?, format))
}

/// Parses bytes (gzip-compressed or not) as the given format, without detection.
pub fn parse_as(name: &str, bytes: &[u8], format: Format) -> Result<Profile, Error> {
    let (label, raw, gzipped) = unwrap(name, bytes)?;
    parse_raw(&label, &raw, format, gzipped)
}

/// Refuses empty input and decompresses gzip, returning the name to use in messages (which
/// says when positions count in decompressed bytes), the bytes, and whether they were gzipped.
fn unwrap<'a>(name: &str, bytes: &'a [u8]) -> Result<(String, Cow<'a, [u8]>, bool), Error> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(Error::new(
            name,
            "is empty: there is no profile in it (pprof, folded stacks or dhat JSON)",
        ));
    }
    if pyrometer::profile::pprof::is_gzip(bytes) {
        let raw = pprof::gunzip(name, bytes)?;
        return Ok((format!("{name} (decompressed)"), Cow::Owned(raw), true));
    }
    Ok((name.to_string(), Cow::Borrowed(bytes), false))
}

fn parse_raw(name: &str, raw: &[u8], format: Format, gzipped: bool) -> Result<Profile, Error> {
    match format {
        Format::Pprof => {
            // Protobuf positions are reported against the file's own name either way; the
            // message says when they count in decompressed bytes.
            let file = name.strip_suffix(" (decompressed)").unwrap_or(name);
            pprof::decode(file, raw, gzipped)
        }
        Format::Dhat => dhat::parse(name, raw),
        Format::Folded => {
            folded::parse(raw).map_err(|e| Error::at(name, Position::Line(e.line), e.message))
        }
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
        assert_eq!(parse("f", folded_text).unwrap().1, Format::Folded);
        let pb = pyrometer::profile::pprof::encode(&parse("f", folded_text).unwrap().0);
        assert_eq!(parse("p", &pb).unwrap().1, Format::Pprof);
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        std::io::Write::write_all(&mut gz, folded_text).unwrap();
        let gz = gz.finish().unwrap();
        let (p, format) = parse("g", &gz).unwrap();
        assert_eq!((format, p.total(0)), (Format::Folded, 3));
    }

    #[test]
    fn empty_input_says_so() {
        let err = parse("empty.txt", b" \n").unwrap_err();
        assert_eq!(err.subject, "empty.txt");
        assert!(err.message.starts_with("is empty"), "{err}");
    }
}
