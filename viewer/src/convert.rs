//! `pyrometer convert`: any input as pprof (so go tool pprof, Pyroscope or speedscope read a
//! dhat or folded profile) or as folded stacks (for inferno, flamegraph.pl and grep).

use pyrometer::profile::{folded, pprof, SampleIndex};

use crate::describe::sample_index;
use crate::error::Error;
use crate::input::Loaded;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConvertTo {
    /// gzip-compressed profile.proto, every sample type kept.
    Pprof,
    /// One sample type as `frame;frame COUNT` lines.
    Folded,
}

pub fn convert(loaded: &Loaded, to: ConvertTo, which: &SampleIndex) -> Result<Vec<u8>, Error> {
    Ok(match to {
        ConvertTo::Pprof => pprof::encode(&loaded.profile),
        ConvertTo::Folded => {
            folded::write(&loaded.profile, sample_index(loaded, which)?).into_bytes()
        }
    })
}
