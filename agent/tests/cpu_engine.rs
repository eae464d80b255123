//! The sampling engines without HTTP: threads that start during a window, several windows at
//! once, and the portable engine when forced.

mod common;

use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use common::{Burners, PROFILER};
use pyrometer::cpu::{self, CpuError, Engine};
use pyrometer::profile::Profile;

const BURNER: &str = "pyrometer_test_burn_cpu";

fn thread_cpu_time() -> Duration {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes the timespec it is given.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut now) };
    Duration::new(now.tv_sec as u64, now.tv_nsec as u32)
}

/// The per-thread engines; perf events need `perf_event_paranoid` <= 2 and no seccomp filter
/// against `perf_event_open` (the test machines allow them).
const PER_THREAD: [Engine; 2] = [Engine::PerfEvent, Engine::ThreadTimer];

#[test]
fn threads_started_during_a_window_are_sampled_in_full() {
    let _lock = PROFILER.blocking_lock();
    for engine in PER_THREAD {
        late_thread_is_sampled(engine);
    }
}

fn late_thread_is_sampled(engine: Engine) {
    let session = cpu::start_with(Some(engine), 999, Duration::from_secs(2)).unwrap();
    assert_eq!(session.engine(), engine);
    std::thread::sleep(Duration::from_millis(100));
    let late = std::thread::Builder::new()
        .name("late-burner".into())
        .spawn(|| {
            let stop = Arc::new(AtomicBool::new(false));
            let stopper = {
                let stop = stop.clone();
                std::thread::spawn(move || {
                    std::thread::sleep(Duration::from_millis(600));
                    stop.store(true, std::sync::atomic::Ordering::Relaxed);
                })
            };
            common::pyrometer_test_burn_cpu(&stop);
            stopper.join().unwrap();
            thread_cpu_time()
        })
        .unwrap();
    let cpu = late.join().unwrap();
    let profile = session.finish(true).unwrap();

    let expected = cpu.as_secs_f64() * 999.0;
    let got = common::periods_on_thread(&profile, "late-burner") as f64;
    assert!(
        got >= 0.85 * expected && got <= 1.1 * expected,
        "{engine}: the thread started mid-window: {got} periods, {expected:.0} expected from \
         its own clock"
    );
}

/// Each of two overlapping windows holds the process's CPU time over its own span, no more.
#[test]
fn overlapping_windows_each_get_their_own_time() {
    let _lock = PROFILER.blocking_lock();
    let _burners = Burners::start(1);
    for engine in PER_THREAD {
        overlapping_windows(engine);
    }
}

fn overlapping_windows(engine: Engine) {
    let long = cpu::start_with(Some(engine), 999, Duration::from_secs(2)).unwrap();
    let long_from = common::process_cpu_time();
    std::thread::sleep(Duration::from_millis(400));
    let short = cpu::start_with(Some(engine), 999, Duration::from_millis(400)).unwrap();
    let short_from = common::process_cpu_time();
    std::thread::sleep(Duration::from_millis(400));
    let short_cpu = common::process_cpu_time() - short_from;
    let short = short.finish(false).unwrap();
    assert!(cpu::is_running(), "the long window is still open");
    std::thread::sleep(Duration::from_millis(400));
    let long_cpu = common::process_cpu_time() - long_from;
    let long = long.finish(false).unwrap();
    assert!(!cpu::is_running(), "the engine stops with its last window");

    for (name, profile, cpu) in [("short", short, short_cpu), ("long", long, long_cpu)] {
        assert!(count_burner(&profile) > 0, "{name} saw the burner");
        let expected = cpu.as_secs_f64() * 999.0;
        let got = profile.total(0) as f64;
        assert!(
            (got - expected).abs() <= 0.15 * expected + 20.0,
            "{engine}, {name} window: {got} periods, {expected:.0} expected from the process's CPU time"
        );
    }
}

fn count_burner(profile: &Profile) -> i64 {
    profile
        .samples
        .iter()
        .filter(|s| profile.frames(s).any(|f| f.function.name.contains(BURNER)))
        .map(|s| s.values[0])
        .sum()
}

#[test]
fn the_setitimer_engine_runs_when_forced_and_serves_one_window() {
    let _lock = PROFILER.blocking_lock();
    let _burners = Burners::start(1);
    let session = cpu::start_with(Some(Engine::Setitimer), 99, Duration::from_secs(1)).unwrap();
    assert_eq!(session.engine(), Engine::Setitimer);
    match cpu::start(99, Duration::from_secs(1)) {
        Err(CpuError::Busy { frequency: 99, .. }) => {}
        other => panic!(
            "a second window on setitimer: {:?}",
            other.map(|s| s.engine())
        ),
    }
    std::thread::sleep(Duration::from_millis(700));
    let profile = session.finish(false).unwrap();
    assert!(
        profile
            .comments
            .iter()
            .any(|c| c.starts_with("engine=setitimer:")),
        "{:?}",
        profile.comments
    );
    assert!(count_burner(&profile) > 0, "setitimer saw the burner");
    assert!(
        profile
            .functions
            .iter()
            .all(|f| !f.name.contains("perf_signal_handler")),
        "pprof-rs's handler frames are cut"
    );

    // Afterwards the best engine is back.
    let next = cpu::start(99, Duration::from_millis(100)).unwrap();
    assert_eq!(next.engine(), Engine::PerfEvent);
}

#[test]
fn the_engine_variable_is_checked() {
    let err = "perf-magic".parse::<Engine>().unwrap_err();
    assert_eq!(
        err.to_string(),
        "the CPU sampler could not start: PYROMETER_CPU_ENGINE=\"perf-magic\" is not an engine: \
         use perf, timer or setitimer"
    );
    assert_eq!("setitimer".parse::<Engine>(), Ok(Engine::Setitimer));
    assert_eq!("perf".parse::<Engine>(), Ok(Engine::PerfEvent));
    assert_eq!("timer".parse::<Engine>(), Ok(Engine::ThreadTimer));
}
