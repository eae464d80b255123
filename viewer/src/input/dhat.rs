//! dhat's `dhat-heap.json` (file version 2, written by dhat-rs and Valgrind's DHAT) as a profile.
//!
//! Each program point (`pps`) is a call stack with exact totals: bytes and blocks allocated over
//! the run, at the global peak (`gb`, `gbk`) and still live at exit (`eb`, `ebk`). They become
//! samples with one value per total, named like Go's heap profiles where the meaning matches
//! (`alloc_space`, `alloc_objects`), so `--sample-index` works the same on both. Frames are
//! strings such as `0x5633117587ee: shop::render (src/render.rs:12:5)`.

use serde::Deserialize;

use pyrometer::profile::{Function, Line, Location, Profile, ProfileBuilder, ValueType};

use crate::error::{Error, Position};

#[derive(Deserialize)]
struct DhatFile {
    #[serde(rename = "dhatFileVersion")]
    version: u64,
    mode: String,
    #[serde(default)]
    cmd: Option<String>,
    #[serde(default)]
    pid: Option<u64>,
    /// Time units of `te`, as shown (`µs`).
    #[serde(default)]
    tu: Option<String>,
    /// The time of the end of the run, in `tu` units.
    #[serde(default)]
    te: Option<u64>,
    pps: Vec<ProgramPoint>,
    ftbl: Vec<String>,
}

#[derive(Deserialize)]
struct ProgramPoint {
    tb: u64,
    tbk: u64,
    #[serde(default)]
    gb: Option<u64>,
    #[serde(default)]
    gbk: Option<u64>,
    #[serde(default)]
    eb: Option<u64>,
    #[serde(default)]
    ebk: Option<u64>,
    fs: Vec<u64>,
}

/// The sample types of one dhat mode, and which program-point totals feed them.
fn sample_types(mode: &str) -> Option<(Vec<ValueType>, &'static str)> {
    let heap = || {
        vec![
            ValueType::new("alloc_space", "bytes"),
            ValueType::new("alloc_objects", "count"),
            ValueType::new("peak_space", "bytes"),
            ValueType::new("peak_objects", "count"),
            ValueType::new("end_space", "bytes"),
            ValueType::new("end_objects", "count"),
        ]
    };
    match mode {
        "rust-heap" | "heap" => Some((heap(), "alloc_space")),
        "rust-ad-hoc" | "ad-hoc" => Some((
            vec![
                ValueType::new("units", "count"),
                ValueType::new("events", "count"),
            ],
            "units",
        )),
        "copy" => Some((
            vec![
                ValueType::new("copied_space", "bytes"),
                ValueType::new("copies", "count"),
            ],
            "copied_space",
        )),
        _ => None,
    }
}

pub fn parse(name: &str, text: &[u8]) -> Result<Profile, Error> {
    let file: DhatFile = serde_json::from_slice(text).map_err(|e| {
        // serde_json ends its message with " at line L column C"; the position is shown apart.
        let full = e.to_string();
        let plain = full
            .rfind(" at line ")
            .map_or(full.as_str(), |at| &full[..at]);
        let message = if e.is_eof() {
            format!("the JSON ends early ({plain}): the file is truncated")
        } else if plain.contains("floating point") && plain.ends_with("expected u64") {
            // serde_json reads integers beyond u64 as floats.
            format!("a count does not fit in 64 bits, or is not a whole number ({plain})")
        } else {
            format!("not a dhat-heap.json file: {plain}")
        };
        Error::at(name, Position::LineColumn(e.line(), e.column()), message)
    })?;
    if file.version != 2 {
        return Err(Error::at(
            name,
            Position::Entry("dhatFileVersion".into()),
            format!("is {}, but only version 2 is known", file.version),
        ));
    }
    let Some((types, default_type)) = sample_types(&file.mode) else {
        return Err(Error::at(
            name,
            Position::Entry("mode".into()),
            format!(
                "{:?} is not a dhat mode this reader knows (rust-heap, heap, ad-hoc, copy)",
                file.mode
            ),
        ));
    };
    let heap = types.len() == 6;
    let mut builder = ProfileBuilder::new(types);
    {
        let p = builder.profile_mut();
        p.default_sample_type = Some(default_type.to_string());
        p.comments.extend(file.cmd.map(|c| format!("dhat: {c}")));
        p.comments.extend(file.pid.map(|pid| format!("pid {pid}")));
        if file.tu.as_deref() == Some("µs") {
            p.duration_nanos = file
                .te
                .map_or(0, |t| t.saturating_mul(1000).min(i64::MAX as u64) as i64);
        }
    }
    // Frames are interned once per table entry, then shared by the program points using them.
    let mut frames: Vec<Option<usize>> = vec![None; file.ftbl.len()];
    for (i, pp) in file.pps.iter().enumerate() {
        let entry = || Position::Entry(format!("program point #{i} (pps[{i}])"));
        let mut locations = Vec::with_capacity(pp.fs.len());
        for &f in &pp.fs {
            let slot = usize::try_from(f)
                .ok()
                .filter(|&f| f < file.ftbl.len())
                .ok_or_else(|| {
                    Error::at(
                        name,
                        entry(),
                        format!(
                            "refers to frame {f}, but the frame table has {} entries",
                            file.ftbl.len()
                        ),
                    )
                })?;
            let location = match frames[slot] {
                Some(location) => location,
                None => {
                    let location = intern_frame(&mut builder, &file.ftbl[slot]);
                    frames[slot] = Some(location);
                    location
                }
            };
            locations.push(location);
        }
        let raw: Vec<u64> = if heap {
            let or0 = |v: Option<u64>| v.unwrap_or(0);
            vec![
                pp.tb,
                pp.tbk,
                or0(pp.gb),
                or0(pp.gbk),
                or0(pp.eb),
                or0(pp.ebk),
            ]
        } else {
            vec![pp.tb, pp.tbk]
        };
        let values = raw
            .into_iter()
            .map(|v| {
                i64::try_from(v).map_err(|_| {
                    Error::at(
                        name,
                        entry(),
                        format!("count {v} does not fit in a signed 64-bit total"),
                    )
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        builder.sample(locations, values);
    }
    Ok(builder.build())
}

/// Turns `0xADDR: NAME (FILE:LINE:COL)` into a location of one line.
fn intern_frame(builder: &mut ProfileBuilder, frame: &str) -> usize {
    let (address, rest) = match frame.split_once(": ") {
        Some((addr, rest)) if addr.starts_with("0x") => {
            (u64::from_str_radix(&addr[2..], 16).unwrap_or(0), rest)
        }
        _ => (0, frame),
    };
    let (name, filename, line) = match rest.strip_suffix(')').and_then(|r| r.rsplit_once(" (")) {
        Some((name, place)) => {
            let (file, line) = split_file_line(place);
            (name, file, line)
        }
        None => (rest, "", 0),
    };
    let function = builder.function(Function {
        name: name.to_string(),
        filename: filename.to_string(),
        ..Function::default()
    });
    builder.location(Location {
        mapping: None,
        address,
        lines: vec![Line { function, line }],
    })
}

/// `src/a.rs:12:5` gives (`src/a.rs`, 12); `in /lib/libc.so` gives the path and line 0.
fn split_file_line(place: &str) -> (&str, i64) {
    if let Some(path) = place.strip_prefix("in ") {
        return (path, 0);
    }
    let mut parts = place.rsplitn(3, ':');
    let (last, middle, first) = (parts.next(), parts.next(), parts.next());
    let number = |s: Option<&str>| s.and_then(|s| s.parse::<i64>().ok());
    match (first, number(middle), number(last)) {
        (Some(file), Some(line), Some(_column)) => (file, line),
        _ => match place.rsplit_once(':') {
            Some((file, line)) if line.parse::<i64>().is_ok() => (file, line.parse().unwrap_or(0)),
            _ => (place, 0),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_are_split_into_name_file_and_line() {
        let mut b = ProfileBuilder::new(vec![]);
        let loc = intern_frame(&mut b, "0x10: <F as FnOnce<()>>::call_once (src/x.rs:12:5)");
        let p = b.build();
        let f = &p.functions[p.locations[loc].lines[0].function];
        assert_eq!(
            (f.name.as_str(), f.filename.as_str()),
            ("<F as FnOnce<()>>::call_once", "src/x.rs")
        );
        assert_eq!(
            (p.locations[loc].address, p.locations[loc].lines[0].line),
            (0x10, 12)
        );
        assert_eq!(split_file_line("in /lib/libc.so.6"), ("/lib/libc.so.6", 0));
        assert_eq!(split_file_line("a.c:7"), ("a.c", 7));
    }

    #[test]
    fn errors_name_line_and_column() {
        let err = parse("d.json", b"{\"dhatFileVersion\": 2,\n \"mode\": }").unwrap_err();
        assert_eq!(err.position, Some(Position::LineColumn(2, 10)), "{err}");
        assert!(!err.message.contains("at line"), "{err}");
    }
}
