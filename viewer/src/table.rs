//! The per-function table behind `top` and `diff`: each function's self value (samples where it
//! is the leaf) and total value (samples where it is anywhere on the stack, counted once even
//! when recursive), as go tool pprof's `flat` and `cum`. Functions are keyed by name, so the same
//! function from two files or two inlined copies is one row.

use std::collections::HashMap;

use pyrometer::profile::Profile;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FunctionRow {
    pub name: String,
    pub self_value: i64,
    pub total_value: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FunctionTable {
    /// In no particular order.
    pub rows: Vec<FunctionRow>,
    /// go tool pprof's total: the sum of the sample value's magnitude over all samples, so that
    /// in a delta profile what shrank counts as much as what grew. Samples without a stack count.
    pub total: i64,
    /// The signed sum: the net change of a delta profile (the same as `total` for any other).
    pub net: i64,
}

impl FunctionTable {
    /// Builds the table for sample value `index`.
    pub fn new(profile: &Profile, index: usize) -> Self {
        // Function indices to row indices, merging functions of the same name.
        let mut row_of_name: HashMap<&str, usize> = HashMap::new();
        let mut rows: Vec<FunctionRow> = Vec::new();
        let row_of: Vec<usize> = profile
            .functions
            .iter()
            .map(|f| {
                *row_of_name.entry(f.name.as_str()).or_insert_with(|| {
                    rows.push(FunctionRow {
                        name: f.name.clone(),
                        self_value: 0,
                        total_value: 0,
                    });
                    rows.len() - 1
                })
            })
            .collect();
        // The last sample each row was counted in, so recursion counts once.
        let mut counted_in: Vec<usize> = vec![usize::MAX; rows.len()];
        let (mut total, mut net) = (0i64, 0i64);
        for (i, sample) in profile.samples.iter().enumerate() {
            let value = sample.values.get(index).copied().unwrap_or(0);
            if value == 0 {
                continue;
            }
            total = total.saturating_add(value.saturating_abs());
            net = net.saturating_add(value);
            let mut leaf = true;
            for frame in sample
                .locations
                .iter()
                .filter_map(|&l| profile.locations.get(l))
                .flat_map(|l| &l.lines)
            {
                let row = row_of[frame.function];
                if leaf {
                    rows[row].self_value = rows[row].self_value.saturating_add(value);
                    leaf = false;
                }
                if counted_in[row] != i {
                    counted_in[row] = i;
                    rows[row].total_value = rows[row].total_value.saturating_add(value);
                }
            }
        }
        rows.retain(|r| r.self_value != 0 || r.total_value != 0);
        FunctionTable { rows, total, net }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pyrometer::profile::folded;

    #[test]
    fn self_and_total_count_recursion_once() {
        let p = folded::parse(b"main;fib;fib;fib 4\nmain;work 6\nmain 1\n").unwrap();
        let table = FunctionTable::new(&p, 0);
        let row = |name: &str| table.rows.iter().find(|r| r.name == name).unwrap().clone();
        assert_eq!((table.total, table.net), (11, 11));
        assert_eq!((row("fib").self_value, row("fib").total_value), (4, 4));
        assert_eq!((row("main").self_value, row("main").total_value), (1, 11));
        assert_eq!((row("work").self_value, row("work").total_value), (6, 6));
    }

    #[test]
    fn the_total_of_a_delta_is_its_magnitude() {
        let mut p = folded::parse(b"main;grew 5\nmain;shrank 3\n").unwrap();
        p.samples[1].values[0] = -3;
        let table = FunctionTable::new(&p, 0);
        assert_eq!((table.total, table.net), (8, 2));
    }
}
