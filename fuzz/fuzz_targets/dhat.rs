//! Fuzzes the dhat reader (gzip-compressed or not): any bytes give a profile or an error, never a
//! panic, and an accepted profile is consistent enough for the commands to walk.
#![no_main]

mod common;

use libfuzzer_sys::fuzz_target;
use pyrometer_viewer::input::{parse_as, Format};

fuzz_target!(|data: &[u8]| {
    if let Ok(profile) = parse_as("fuzz", data, Format::Dhat) {
        common::exercise(&profile);
    }
});
