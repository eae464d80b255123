//! pprof's `profile.proto`: encode a [`Profile`] (gzip-compressed, as Go writes it) and decode one
//! from any producer, compressed or not.
//!
//! The wire structs are written out by hand with prost's derive, so the crate needs no `protoc` at
//! build time. Decoding checks every cross reference (string, function, location and mapping ids)
//! so that a malformed file is reported instead of turning into a panic later.

use std::collections::HashMap;
use std::fmt;
use std::io::{Read, Write};

use flate2::read::GzDecoder;
use flate2::write::GzEncoder;
use prost::Message;

use super::{Function, Label, LabelValue, Line, Location, Mapping, Profile, Sample, ValueType};

/// Decompressed profiles larger than this are refused: real profiles are far smaller, and the bound
/// keeps a hostile or corrupt file from exhausting memory.
pub const MAX_DECODED_BYTES: u64 = 1 << 30;

mod wire {
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Profile {
        #[prost(message, repeated, tag = "1")]
        pub sample_type: Vec<ValueType>,
        #[prost(message, repeated, tag = "2")]
        pub sample: Vec<Sample>,
        #[prost(message, repeated, tag = "3")]
        pub mapping: Vec<Mapping>,
        #[prost(message, repeated, tag = "4")]
        pub location: Vec<Location>,
        #[prost(message, repeated, tag = "5")]
        pub function: Vec<Function>,
        #[prost(string, repeated, tag = "6")]
        pub string_table: Vec<String>,
        #[prost(int64, tag = "7")]
        pub drop_frames: i64,
        #[prost(int64, tag = "8")]
        pub keep_frames: i64,
        #[prost(int64, tag = "9")]
        pub time_nanos: i64,
        #[prost(int64, tag = "10")]
        pub duration_nanos: i64,
        #[prost(message, optional, tag = "11")]
        pub period_type: Option<ValueType>,
        #[prost(int64, tag = "12")]
        pub period: i64,
        #[prost(int64, repeated, tag = "13")]
        pub comment: Vec<i64>,
        #[prost(int64, tag = "14")]
        pub default_sample_type: i64,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ValueType {
        #[prost(int64, tag = "1")]
        pub r#type: i64,
        #[prost(int64, tag = "2")]
        pub unit: i64,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Sample {
        #[prost(uint64, repeated, tag = "1")]
        pub location_id: Vec<u64>,
        #[prost(int64, repeated, tag = "2")]
        pub value: Vec<i64>,
        #[prost(message, repeated, tag = "3")]
        pub label: Vec<Label>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Label {
        #[prost(int64, tag = "1")]
        pub key: i64,
        #[prost(int64, tag = "2")]
        pub str: i64,
        #[prost(int64, tag = "3")]
        pub num: i64,
        #[prost(int64, tag = "4")]
        pub num_unit: i64,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Mapping {
        #[prost(uint64, tag = "1")]
        pub id: u64,
        #[prost(uint64, tag = "2")]
        pub memory_start: u64,
        #[prost(uint64, tag = "3")]
        pub memory_limit: u64,
        #[prost(uint64, tag = "4")]
        pub file_offset: u64,
        #[prost(int64, tag = "5")]
        pub filename: i64,
        #[prost(int64, tag = "6")]
        pub build_id: i64,
        #[prost(bool, tag = "7")]
        pub has_functions: bool,
        #[prost(bool, tag = "8")]
        pub has_filenames: bool,
        #[prost(bool, tag = "9")]
        pub has_line_numbers: bool,
        #[prost(bool, tag = "10")]
        pub has_inline_frames: bool,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Location {
        #[prost(uint64, tag = "1")]
        pub id: u64,
        #[prost(uint64, tag = "2")]
        pub mapping_id: u64,
        #[prost(uint64, tag = "3")]
        pub address: u64,
        #[prost(message, repeated, tag = "4")]
        pub line: Vec<Line>,
        #[prost(bool, tag = "5")]
        pub is_folded: bool,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Line {
        #[prost(uint64, tag = "1")]
        pub function_id: u64,
        #[prost(int64, tag = "2")]
        pub line: i64,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Function {
        #[prost(uint64, tag = "1")]
        pub id: u64,
        #[prost(int64, tag = "2")]
        pub name: i64,
        #[prost(int64, tag = "3")]
        pub system_name: i64,
        #[prost(int64, tag = "4")]
        pub filename: i64,
        #[prost(int64, tag = "5")]
        pub start_line: i64,
    }
}

/// Why bytes could not be read as a pprof profile. The message says where, in the terms a user
/// can check: the gzip stream, the protobuf field path, or the entry whose reference is broken.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeError(String);

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for DecodeError {}

/// True when the bytes start with gzip's magic number.
pub fn is_gzip(bytes: &[u8]) -> bool {
    bytes.starts_with(&[0x1f, 0x8b])
}

/// Encodes a profile as gzip-compressed profile.proto, as Go's runtime/pprof writes it.
pub fn encode(profile: &Profile) -> Vec<u8> {
    let raw = to_wire(profile).encode_to_vec();
    let mut gz = GzEncoder::new(
        Vec::with_capacity(raw.len() / 4),
        flate2::Compression::default(),
    );
    gz.write_all(&raw).expect("writing to a Vec cannot fail");
    gz.finish().expect("writing to a Vec cannot fail")
}

/// Decodes profile.proto, gzip-compressed or not.
pub fn decode(bytes: &[u8]) -> Result<Profile, DecodeError> {
    let decompressed;
    let raw = if is_gzip(bytes) {
        decompressed = gunzip(bytes)?;
        &decompressed[..]
    } else {
        bytes
    };
    let wire = wire::Profile::decode(raw)
        .map_err(|e| DecodeError(format!("not a valid pprof protobuf: {e}")))?;
    from_wire(wire)
}

fn gunzip(bytes: &[u8]) -> Result<Vec<u8>, DecodeError> {
    let mut out = Vec::new();
    let mut reader = GzDecoder::new(bytes).take(MAX_DECODED_BYTES + 1);
    reader.read_to_end(&mut out).map_err(|e| {
        DecodeError(format!(
            "gzip stream is damaged after {} decompressed bytes: {e}",
            out.len()
        ))
    })?;
    if out.len() as u64 > MAX_DECODED_BYTES {
        return Err(DecodeError(format!(
            "decompressed profile exceeds {MAX_DECODED_BYTES} bytes; refusing to read it"
        )));
    }
    Ok(out)
}

/// Collects strings into pprof's string table, whose entry 0 must be "".
struct StringTable {
    strings: Vec<String>,
    index: HashMap<String, i64>,
}

impl StringTable {
    fn new() -> Self {
        let mut table = StringTable {
            strings: Vec::new(),
            index: HashMap::new(),
        };
        table.intern("");
        table
    }

    fn intern(&mut self, s: &str) -> i64 {
        if let Some(&i) = self.index.get(s) {
            return i;
        }
        let i = self.strings.len() as i64;
        self.strings.push(s.to_string());
        self.index.insert(s.to_string(), i);
        i
    }
}

fn to_wire(p: &Profile) -> wire::Profile {
    let mut st = StringTable::new();
    let value_type = |t: &ValueType, st: &mut StringTable| wire::ValueType {
        r#type: st.intern(&t.kind),
        unit: st.intern(&t.unit),
    };
    let sample_type = p
        .sample_types
        .iter()
        .map(|t| value_type(t, &mut st))
        .collect();
    let period_type = p.period_type.as_ref().map(|t| value_type(t, &mut st));
    let sample = p
        .samples
        .iter()
        .map(|s| wire::Sample {
            location_id: s.locations.iter().map(|&l| l as u64 + 1).collect(),
            value: s.values.clone(),
            label: s
                .labels
                .iter()
                .map(|l| match &l.value {
                    LabelValue::Str(v) => wire::Label {
                        key: st.intern(&l.key),
                        str: st.intern(v),
                        ..Default::default()
                    },
                    LabelValue::Num { value, unit } => wire::Label {
                        key: st.intern(&l.key),
                        num: *value,
                        num_unit: st.intern(unit),
                        ..Default::default()
                    },
                })
                .collect(),
        })
        .collect();
    let mapping = p
        .mappings
        .iter()
        .enumerate()
        .map(|(i, m)| wire::Mapping {
            id: i as u64 + 1,
            memory_start: m.memory_start,
            memory_limit: m.memory_limit,
            file_offset: m.file_offset,
            filename: st.intern(&m.filename),
            build_id: st.intern(&m.build_id),
            has_functions: m.has_functions,
            has_filenames: m.has_filenames,
            has_line_numbers: m.has_line_numbers,
            has_inline_frames: m.has_functions,
        })
        .collect();
    let location = p
        .locations
        .iter()
        .enumerate()
        .map(|(i, l)| wire::Location {
            id: i as u64 + 1,
            mapping_id: l.mapping.map_or(0, |m| m as u64 + 1),
            address: l.address,
            line: l
                .lines
                .iter()
                .map(|line| wire::Line {
                    function_id: line.function as u64 + 1,
                    line: line.line,
                })
                .collect(),
            is_folded: false,
        })
        .collect();
    let function = p
        .functions
        .iter()
        .enumerate()
        .map(|(i, f)| wire::Function {
            id: i as u64 + 1,
            name: st.intern(&f.name),
            system_name: st.intern(&f.system_name),
            filename: st.intern(&f.filename),
            start_line: f.start_line,
        })
        .collect();
    let comment = p.comments.iter().map(|c| st.intern(c)).collect();
    let default_sample_type = p.default_sample_type.as_deref().map_or(0, |t| st.intern(t));
    wire::Profile {
        sample_type,
        sample,
        mapping,
        location,
        function,
        string_table: st.strings,
        drop_frames: 0,
        keep_frames: 0,
        time_nanos: p.time_nanos,
        duration_nanos: p.duration_nanos,
        period_type,
        period: p.period,
        comment,
        default_sample_type,
    }
}

/// Maps pprof's arbitrary non-zero ids to positions in our vectors.
fn id_index(
    ids: impl Iterator<Item = u64>,
    what: &str,
) -> Result<HashMap<u64, usize>, DecodeError> {
    let mut index = HashMap::new();
    for (i, id) in ids.enumerate() {
        if id == 0 {
            return Err(DecodeError(format!(
                "{what} #{i} has id 0, which pprof reserves"
            )));
        }
        if index.insert(id, i).is_some() {
            return Err(DecodeError(format!("{what} id {id} is used twice")));
        }
    }
    Ok(index)
}

fn from_wire(w: wire::Profile) -> Result<Profile, DecodeError> {
    let strings = &w.string_table;
    if strings.first().is_some_and(|s| !s.is_empty()) {
        return Err(DecodeError("string table entry 0 is not empty".into()));
    }
    let string = |i: i64, what: &dyn Fn() -> String| -> Result<String, DecodeError> {
        if i == 0 {
            return Ok(String::new());
        }
        usize::try_from(i)
            .ok()
            .and_then(|i| strings.get(i))
            .cloned()
            .ok_or_else(|| {
                DecodeError(format!(
                    "{} refers to string {i}, but the string table has {} entries",
                    what(),
                    strings.len()
                ))
            })
    };
    let value_type = |t: &wire::ValueType, what: &str| -> Result<ValueType, DecodeError> {
        Ok(ValueType {
            kind: string(t.r#type, &|| what.to_string())?,
            unit: string(t.unit, &|| what.to_string())?,
        })
    };

    let mapping_ids = id_index(w.mapping.iter().map(|m| m.id), "mapping")?;
    let function_ids = id_index(w.function.iter().map(|f| f.id), "function")?;
    let location_ids = id_index(w.location.iter().map(|l| l.id), "location")?;

    let sample_types = w
        .sample_type
        .iter()
        .enumerate()
        .map(|(i, t)| value_type(t, &format!("sample type #{i}")))
        .collect::<Result<Vec<_>, _>>()?;
    let mappings = w
        .mapping
        .iter()
        .map(|m| {
            let what = || format!("mapping {}", m.id);
            Ok(Mapping {
                memory_start: m.memory_start,
                memory_limit: m.memory_limit,
                file_offset: m.file_offset,
                filename: string(m.filename, &what)?,
                build_id: string(m.build_id, &what)?,
                has_functions: m.has_functions,
                has_filenames: m.has_filenames,
                has_line_numbers: m.has_line_numbers,
            })
        })
        .collect::<Result<Vec<_>, DecodeError>>()?;
    let functions = w
        .function
        .iter()
        .map(|f| {
            let what = || format!("function {}", f.id);
            Ok(Function {
                name: string(f.name, &what)?,
                system_name: string(f.system_name, &what)?,
                filename: string(f.filename, &what)?,
                start_line: f.start_line,
            })
        })
        .collect::<Result<Vec<_>, DecodeError>>()?;
    let locations = w
        .location
        .iter()
        .map(|l| {
            let mapping = match l.mapping_id {
                0 => None,
                id => Some(*mapping_ids.get(&id).ok_or_else(|| {
                    DecodeError(format!("location {} refers to missing mapping {id}", l.id))
                })?),
            };
            let lines = l
                .line
                .iter()
                .map(|line| {
                    let function = *function_ids.get(&line.function_id).ok_or_else(|| {
                        DecodeError(format!(
                            "location {} refers to missing function {}",
                            l.id, line.function_id
                        ))
                    })?;
                    Ok(Line {
                        function,
                        line: line.line,
                    })
                })
                .collect::<Result<Vec<_>, DecodeError>>()?;
            Ok(Location {
                mapping,
                address: l.address,
                lines,
            })
        })
        .collect::<Result<Vec<_>, DecodeError>>()?;
    let samples = w
        .sample
        .iter()
        .enumerate()
        .map(|(i, s)| {
            if s.value.len() != sample_types.len() {
                return Err(DecodeError(format!(
                    "sample #{i} has {} values, but the profile has {} sample types",
                    s.value.len(),
                    sample_types.len()
                )));
            }
            let locations = s
                .location_id
                .iter()
                .map(|id| {
                    location_ids.get(id).copied().ok_or_else(|| {
                        DecodeError(format!("sample #{i} refers to missing location {id}"))
                    })
                })
                .collect::<Result<Vec<_>, _>>()?;
            let labels = s
                .label
                .iter()
                .map(|l| {
                    let what = || format!("a label of sample #{i}");
                    let key = string(l.key, &what)?;
                    let value = if l.str != 0 {
                        LabelValue::Str(string(l.str, &what)?)
                    } else {
                        LabelValue::Num {
                            value: l.num,
                            unit: string(l.num_unit, &what)?,
                        }
                    };
                    Ok(Label { key, value })
                })
                .collect::<Result<Vec<_>, DecodeError>>()?;
            Ok(Sample {
                locations,
                values: s.value.clone(),
                labels,
            })
        })
        .collect::<Result<Vec<_>, DecodeError>>()?;
    let comments = w
        .comment
        .iter()
        .map(|&c| string(c, &|| "a comment".to_string()))
        .collect::<Result<Vec<_>, _>>()?;
    let default_sample_type = match w.default_sample_type {
        0 => None,
        i => Some(string(i, &|| "default_sample_type".to_string())?),
    };
    let period_type = w
        .period_type
        .as_ref()
        .map(|t| value_type(t, "period_type"))
        .transpose()?;
    Ok(Profile {
        sample_types,
        default_sample_type,
        period_type,
        period: w.period,
        time_nanos: w.time_nanos,
        duration_nanos: w.duration_nanos,
        comments,
        mappings,
        functions,
        locations,
        samples,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::profile::ProfileBuilder;

    fn sample_profile() -> Profile {
        let mut b = ProfileBuilder::new(vec![
            ValueType::new("samples", "count"),
            ValueType::new("cpu", "nanoseconds"),
        ]);
        let main = b.named_location("main", "src/main.rs", 3);
        let work = b.named_location("work", "src/lib.rs", 10);
        b.sample(vec![work, main], vec![2, 20]);
        b.sample(vec![main], vec![1, 10]);
        let p = b.profile_mut();
        p.period = 10;
        p.period_type = Some(ValueType::new("cpu", "nanoseconds"));
        p.default_sample_type = Some("cpu".into());
        p.comments.push("hello".into());
        b.build()
    }

    #[test]
    fn round_trips_through_gzip() {
        let p = sample_profile();
        let bytes = encode(&p);
        assert!(is_gzip(&bytes));
        assert_eq!(decode(&bytes).unwrap(), p);
    }

    #[test]
    fn reads_uncompressed_protobuf() {
        let p = sample_profile();
        let raw = to_wire(&p).encode_to_vec();
        assert_eq!(decode(&raw).unwrap(), p);
    }

    #[test]
    fn truncated_gzip_is_an_error() {
        let bytes = encode(&sample_profile());
        let err = decode(&bytes[..bytes.len() / 2]).unwrap_err();
        assert!(err.to_string().contains("gzip stream is damaged"), "{err}");
    }

    #[test]
    fn truncated_protobuf_is_an_error() {
        let raw = to_wire(&sample_profile()).encode_to_vec();
        let err = decode(&raw[..raw.len() - 3]).unwrap_err();
        assert!(
            err.to_string().starts_with("not a valid pprof protobuf"),
            "{err}"
        );
    }

    #[test]
    fn dangling_references_are_errors() {
        let mut w = to_wire(&sample_profile());
        w.sample[0].location_id[0] = 99;
        let err = from_wire(w).unwrap_err();
        assert_eq!(err.to_string(), "sample #0 refers to missing location 99");

        let mut w = to_wire(&sample_profile());
        w.function[0].name = 1000;
        let err = from_wire(w).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("function 1 refers to string 1000"),
            "{err}"
        );
    }
}
