//! The portable engine: pprof-rs's process-wide `setitimer(ITIMER_PROF)`.
//!
//! It runs where the Linux engine cannot (other Unix systems, Linux on other architectures, or
//! where per-thread timers are refused), or when forced. The kernel checks this timer on its tick
//! and sends at most one signal per tick for the whole process, so above the tick rate (HZ, often
//! 250) samples go missing and busy threads are undercounted (DESIGN.md). pprof-rs keeps one
//! profiler per process, so this engine serves one window at a time.
//!
//! Its signal handler is pprof-rs's own, with its default unwinder (not framehop: DESIGN.md): it
//! unwinds into a fixed-size buffer and records into a preallocated table, taking no lock that the
//! interrupted code could hold.

use std::time::{Duration, UNIX_EPOCH};

use pprof::ProfilerGuard;

use super::report::{Stack, Timing};
use super::CpuError;
use crate::symbolize::Symbolizer;

pub(crate) struct Setitimer {
    guard: ProfilerGuard<'static>,
}

impl Setitimer {
    pub fn start(frequency: u32) -> Result<Setitimer, CpuError> {
        let guard = pprof::ProfilerGuardBuilder::default()
            .frequency(frequency as i32)
            .build()
            .map_err(|e| CpuError::Engine(e.to_string()))?;
        Ok(Setitimer { guard })
    }

    /// Stops the timer and hands back the stacks, leaf first, past the handler's own frames.
    pub fn finish(self, symbolizer: &mut Symbolizer) -> Result<(Vec<Stack>, Timing), CpuError> {
        let report = self
            .guard
            .report()
            .build_unresolved()
            .map_err(|e| CpuError::Engine(e.to_string()))?;
        drop(self);
        let timing = Timing {
            start_nanos: report
                .timing
                .start_time
                .duration_since(UNIX_EPOCH)
                .unwrap_or(Duration::ZERO)
                .as_nanos() as i64,
            duration: report.timing.duration,
        };
        let stacks = report
            .data
            .iter()
            .map(|(frames, count)| {
                let ips: Vec<usize> = frames.frames.iter().map(|f| f.ip() as usize).collect();
                let first = first_interrupted_frame(symbolizer, &ips);
                let name =
                    String::from_utf8_lossy(&frames.thread_name[..frames.thread_name_length]);
                Stack {
                    ips: ips[first..].to_vec(),
                    thread: name.into_owned(),
                    thread_id: frames.thread_id,
                    periods: *count as u64,
                }
            })
            .collect();
        Ok((stacks, timing))
    }
}

/// Where the interrupted code starts in a stack captured by pprof's signal handler: past the
/// unwinder, the handler itself, and the signal trampoline just below it.
fn first_interrupted_frame(symbolizer: &mut Symbolizer, ips: &[usize]) -> usize {
    let handler = ips.iter().rposition(|&ip| {
        symbolizer
            .function_names(ip)
            .any(|name| name.ends_with("perf_signal_handler"))
    });
    handler.map_or(0, |i| (i + 2).min(ips.len()))
}
