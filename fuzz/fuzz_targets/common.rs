//! What every target does with a profile its reader accepted: the viewer's per-function table,
//! the folded writer and the flame graph's call tree walk every index, so a reader that lets a
//! dangling one through panics.

use pyrometer::profile::flamegraph::{render, FlamegraphOptions};
use pyrometer::profile::{folded, Profile};
use pyrometer_viewer::table::FunctionTable;

pub fn exercise(profile: &Profile) {
    for index in 0..profile.sample_types.len().min(4) {
        let table = FunctionTable::new(profile, index);
        assert!(table.rows.len() <= profile.functions.len());
        let _ = folded::write(profile, index);
        let _ = render(profile, &FlamegraphOptions::new("fuzz", index));
    }
}
