//! pprof input: gzip unwrapped here (so a damaged stream can be reported at its byte offset),
//! then the model's decoder. When the protobuf is malformed, a walk over the wire format finds the
//! entry that is broken (`sample #12 at byte 3456`), because prost's own message says what is
//! wrong but not where.

use std::io::Read;

use pyrometer::profile::pprof::MAX_DECODED_BYTES;
use pyrometer::profile::Profile;

use crate::error::{Error, Position};

/// Decompresses gzip, naming the byte of the compressed input where it failed.
pub fn gunzip(name: &str, bytes: &[u8]) -> Result<Vec<u8>, Error> {
    let mut rest = bytes;
    let mut out = Vec::new();
    let result = flate2::bufread::MultiGzDecoder::new(&mut rest)
        .take(MAX_DECODED_BYTES + 1)
        .read_to_end(&mut out);
    let consumed = (bytes.len() - rest.len()) as u64;
    match result {
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Err(Error::at(
            name,
            Position::Byte(consumed),
            format!(
                "the gzip stream ends early, after {} decompressed bytes: the file is truncated",
                out.len()
            ),
        )),
        Err(e) => Err(Error::at(
            name,
            Position::Byte(consumed),
            format!(
                "the gzip stream is damaged ({e}) after {} decompressed bytes",
                out.len()
            ),
        )),
        Ok(_) if out.len() as u64 > MAX_DECODED_BYTES => Err(Error::new(
            name,
            format!("decompresses to more than {MAX_DECODED_BYTES} bytes; refusing to read it"),
        )),
        Ok(_) => Ok(out),
    }
}

/// Decodes uncompressed profile.proto. Byte offsets in messages count in the decompressed
/// stream when `decompressed` is true.
pub fn decode(name: &str, raw: &[u8], decompressed: bool) -> Result<Profile, Error> {
    pyrometer::profile::pprof::decode(raw).map_err(|e| {
        let stream = if decompressed {
            " of the decompressed profile"
        } else {
            ""
        };
        match locate_damage(raw) {
            Some(Damage {
                offset,
                entry,
                problem,
            }) => Error::at(
                name,
                Position::Byte(offset),
                format!("{entry}{stream}: {problem} (not a valid pprof profile)"),
            ),
            None => {
                let message = e.to_string();
                let position = entry_named_in(&message);
                Error {
                    subject: name.to_string(),
                    position,
                    message,
                }
            }
        }
    })
}

/// The model's decoder names the entry in its reference errors (`sample #3 refers to ...`).
fn entry_named_in(message: &str) -> Option<Position> {
    let entry = message
        .split_once(" refers to ")
        .or_else(|| message.split_once(" has "))
        .map(|(entry, _)| entry)?;
    Some(Position::Entry(entry.to_string()))
}

/// A malformed spot in the wire format.
#[derive(Debug, PartialEq, Eq)]
struct Damage {
    offset: u64,
    entry: String,
    problem: String,
}

/// profile.proto's top-level fields, by number.
fn field_name(number: u64) -> &'static str {
    match number {
        1 => "sample_type",
        2 => "sample",
        3 => "mapping",
        4 => "location",
        5 => "function",
        6 => "string_table",
        7 => "drop_frames",
        8 => "keep_frames",
        9 => "time_nanos",
        10 => "duration_nanos",
        11 => "period_type",
        12 => "period",
        13 => "comment",
        14 => "default_sample_type",
        _ => "unknown field",
    }
}

/// Fields whose entries are messages (checked one level deeper) or strings (checked for UTF-8).
fn is_message(number: u64) -> bool {
    matches!(number, 1..=5 | 11)
}

/// Walks the top-level entries, and one level into each message, returning the first spot
/// that is not well-formed protobuf.
fn locate_damage(raw: &[u8]) -> Option<Damage> {
    let mut counts = [0usize; 16];
    let mut reader = WireReader { raw, pos: 0 };
    while reader.pos < raw.len() {
        let start = reader.pos;
        let damage = |entry: String, problem: String| Damage {
            offset: start as u64,
            entry,
            problem,
        };
        let key = match reader.varint() {
            Ok(key) => key,
            Err(problem) => return Some(damage("a field key".into(), problem)),
        };
        let number = key >> 3;
        let slot = number.min(15) as usize;
        let entry = format!("{} #{}", field_name(number), counts[slot]);
        counts[slot] += 1;
        let body = match reader.body(key) {
            Ok(body) => body,
            Err(problem) => return Some(damage(entry, problem)),
        };
        let Some((offset, len)) = body else { continue };
        let bytes = &raw[offset..offset + len];
        if is_message(number) {
            let mut inner = WireReader { raw: bytes, pos: 0 };
            while inner.pos < bytes.len() {
                let at = inner.pos;
                if let Err(problem) = inner.field() {
                    return Some(Damage {
                        offset: (offset + at) as u64,
                        entry,
                        problem,
                    });
                }
            }
        } else if number == 6 {
            if let Err(e) = std::str::from_utf8(bytes) {
                return Some(Damage {
                    offset: (offset + e.valid_up_to()) as u64,
                    entry,
                    problem: "the string is not valid UTF-8".into(),
                });
            }
        }
    }
    None
}

/// Reads protobuf fields without a schema.
struct WireReader<'a> {
    raw: &'a [u8],
    pos: usize,
}

impl WireReader<'_> {
    fn varint(&mut self) -> Result<u64, String> {
        let mut value = 0u64;
        for shift in 0..10 {
            let Some(&byte) = self.raw.get(self.pos) else {
                return Err("the data ends inside a number: the file is truncated".into());
            };
            self.pos += 1;
            if shift == 9 && byte > 1 {
                return Err("a number does not fit in 64 bits".into());
            }
            value |= u64::from(byte & 0x7f) << (7 * shift);
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err("a number is longer than 10 bytes".into())
    }

    fn skip(&mut self, len: u64) -> Result<(), String> {
        let remaining = (self.raw.len() - self.pos) as u64;
        if len > remaining {
            return Err(format!(
                "the entry declares {len} bytes but only {remaining} remain: the file is truncated"
            ));
        }
        self.pos += len as usize;
        Ok(())
    }

    /// Reads one field: its number, and for length-delimited fields the body's offset and length.
    fn field(&mut self) -> Result<(u64, Option<(usize, usize)>), String> {
        let key = self.varint()?;
        Ok((key >> 3, self.body(key)?))
    }

    /// Reads the value after `key`, returning a length-delimited body's offset and length.
    fn body(&mut self, key: u64) -> Result<Option<(usize, usize)>, String> {
        let number = key >> 3;
        if number == 0 {
            return Err("field number 0 is not allowed".into());
        }
        match key & 7 {
            0 => self.varint().map(|_| None),
            1 => self.skip(8).map(|_| None),
            5 => self.skip(4).map(|_| None),
            2 => {
                let len = self.varint()?;
                let offset = self.pos;
                self.skip(len)?;
                Ok(Some((offset, len as usize)))
            }
            other => Err(format!(
                "field {number} has wire type {other}, which profile.proto never uses"
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pyrometer::profile::folded;

    fn raw_profile() -> Vec<u8> {
        let p = folded::parse(b"main;work 3\nmain;idle 2\n").unwrap();
        gunzip("t", &pyrometer::profile::pprof::encode(&p)).unwrap()
    }

    #[test]
    fn truncated_protobuf_names_the_entry_and_byte() {
        let raw = raw_profile();
        let cut = &raw[..raw.len() - 3];
        let err = decode("cpu.pb", cut, false).unwrap_err();
        let Some(Position::Byte(offset)) = err.position else {
            panic!("{err}")
        };
        assert!(offset < cut.len() as u64);
        assert!(err.message.contains("truncated"), "{err}");
        assert!(
            err.message.starts_with("string_table #") || err.message.contains('#'),
            "{err}"
        );
    }

    #[test]
    fn truncated_gzip_names_the_byte() {
        let p = folded::parse(b"main;work 3\n").unwrap();
        let gz = pyrometer::profile::pprof::encode(&p);
        let err = gunzip("cpu.pb.gz", &gz[..gz.len() - 10]).unwrap_err();
        assert!(matches!(err.position, Some(Position::Byte(_))), "{err}");
        assert!(err.message.contains("truncated"), "{err}");
    }

    #[test]
    fn non_utf8_strings_are_located() {
        let mut raw = raw_profile();
        let at = raw.windows(4).position(|w| w == b"work").unwrap();
        raw[at] = 0xff;
        let err = decode("cpu.pb", &raw, false).unwrap_err();
        assert_eq!(err.position, Some(Position::Byte(at as u64)), "{err}");
        assert!(err.message.contains("not valid UTF-8"), "{err}");
    }
}
