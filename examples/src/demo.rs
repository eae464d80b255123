//! The one-command demo: the measurement discipline (define the metric, take a baseline, change one
//! thing, measure again) done for real on the shop, with profiles taken through the agent.
//!
//! For each planted problem in turn: drive load at its route for a fixed time while taking a CPU
//! profile (and an allocation profile, where the agent has one) through the agent's HTTP endpoints;
//! switch that one fix on through the shop's admin route; measure and profile again. The pprof files
//! and flame graphs go into one folder, and a before/after table per route (p50, p95, p99,
//! throughput, change) ends the run, with where to look in the profiles.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use pyrometer::profile::flamegraph::{self, FlamegraphOptions};
use pyrometer::profile::SampleIndex;
use pyrometer::{AgentHandle, StartError};

use crate::evidence;
use crate::load::{self, Plan, RouteStats, Stop, Target};
use crate::profiles::{self, FetchError, Fetched, Kind};
use crate::shop::fixes::Problem;
use crate::shop::seed::SeedSize;
use crate::shop::telemetry::{self, QUERIES_HEADER};
use crate::shop::{workload, Shop, ShopConfig};

/// How to run the demo.
#[derive(Debug, Clone)]
pub struct DemoConfig {
    /// Where the profiles go; a new folder in the temp folder when `None`.
    pub out: Option<PathBuf>,
    /// Load per route, before and after its fix.
    pub phase: Duration,
    pub concurrency: usize,
}

/// Starts the agent as configured by the environment, on 127.0.0.1:6060 by default. When that
/// port is taken and no address was asked for, any free loopback port will do for the demo.
pub fn start_agent() -> Result<AgentHandle, StartError> {
    let builder = || pyrometer::Agent::builder().diagnose(telemetry::diagnose_config());
    match builder().start() {
        Err(StartError::Bind(..)) if std::env::var_os("PYROMETER_ADDR").is_none() => builder()
            .bind(SocketAddr::from(([127, 0, 0, 1], 0)))
            .start(),
        other => other,
    }
}

/// One route's figures before and after its fix.
struct Outcome {
    problem: Problem,
    before: RouteStats,
    after: RouteStats,
    evidence: String,
}

/// Runs the demo against a shop started from `config`, taking profiles from the agent at `agent`.
pub async fn run(
    config: ShopConfig,
    agent: SocketAddr,
    demo: DemoConfig,
) -> Result<(), Box<dyn std::error::Error>> {
    let out = match demo.out.clone() {
        Some(dir) => dir,
        None => std::env::temp_dir().join(format!("pyrometer-demo-{}", std::process::id())),
    };
    std::fs::create_dir_all(&out)?;
    let started = Instant::now();
    println!(
        "seeding SQLite with {} customers, {} orders, ~{} order lines...",
        config.seed.customers,
        config.seed.orders,
        config.seed.approx_lines()
    );
    let shop = Shop::start(config).await?;
    println!(
        "shop on http://{}, agent on http://{agent}/debug/pprof/ (seeded in {:.1} s)",
        shop.addr(),
        started.elapsed().as_secs_f64()
    );
    let mut kinds = vec![Kind::Cpu, Kind::Allocs, Kind::Spans];
    warm_up(&shop, demo.concurrency).await?;

    let mut outcomes = Vec::new();
    for problem in Problem::ALL {
        let (planted, fixed) = problem.describe();
        println!(
            "\n{} {}: {planted}; fix: {fixed}",
            problem.name(),
            workload::route(problem)
        );
        let probe = workload::path(problem, shop.seed(), &mut fastrand::Rng::with_seed(3));
        let queries_before = queries_per_request(shop.addr(), &probe).await?;
        let (before, before_profiles) = phase(&shop, agent, &demo, problem, &mut kinds).await?;
        save(&out, problem, "before", &before_profiles)?;
        set_fix(shop.addr(), problem, true).await?;
        let queries_after = queries_per_request(shop.addr(), &probe).await?;
        let (after, after_profiles) = phase(&shop, agent, &demo, problem, &mut kinds).await?;
        save(&out, problem, "after", &after_profiles)?;
        let evidence = evidence::describe(problem, &before_profiles, &after_profiles)
            .unwrap_or_else(|| match problem {
                Problem::NPlusOne => format!(
                    "{queries_before} queries per request before, {queries_after} after (x-db-queries header)"
                ),
                Problem::SequentialCalls => {
                    "waiting, not CPU: the spans profile shows three upstream calls in a row, then at once".into()
                }
                _ => "waiting, not CPU: the spans profile shows the payments call waiting out stalls".into(),
            });
        println!(
            "  p95 {} -> {}  ({})",
            millis(before.quantile(0.95)),
            millis(after.quantile(0.95)),
            evidence
        );
        outcomes.push(Outcome {
            problem,
            before,
            after,
            evidence,
        });
    }
    if !kinds.contains(&Kind::Allocs) {
        println!("\n(no allocation profiles: this agent has no /debug/pprof/allocs endpoint, or the sampling allocator is not installed)");
    }
    print!("{}", table(&outcomes));
    print!("{}", where_to_look(&out, kinds.contains(&Kind::Allocs)));
    println!("\ndone in {:.0} s", started.elapsed().as_secs_f64());
    Ok(())
}

/// A second of mixed load, so every route has warm connections and caches before it is measured.
async fn warm_up(shop: &Shop, concurrency: usize) -> Result<(), load::LoadError> {
    let plan = Plan::new(
        shop.addr(),
        concurrency,
        Stop::After(Duration::from_secs(1)),
    );
    load::run(plan, mixed_targets(shop.seed())).await?;
    Ok(())
}

/// Every route but the stalling payments one, whose stalls would swamp any other figure.
pub fn mixed_targets(seed: SeedSize) -> Vec<Target> {
    Problem::ALL
        .into_iter()
        .filter(|p| *p != Problem::NoTimeout)
        .map(|p| target(p, seed))
        .collect()
}

/// A load report as a table: one line per route and a total.
pub fn report_table(report: &load::Report) -> String {
    let mut out = format!(
        "{:<24}{:>10}{:>8}{:>10}{:>10}{:>10}{:>10}\n",
        "route", "requests", "errors", "p50 ms", "p95 ms", "p99 ms", "req/s"
    );
    let ms = |s: &RouteStats, q| s.quantile(q).as_secs_f64() * 1000.0;
    for s in &report.routes {
        let _ = writeln!(
            out,
            "{:<24}{:>10}{:>8}{:>10.2}{:>10.2}{:>10.2}{:>10.0}",
            s.label,
            s.requests(),
            s.failures(),
            ms(s, 0.5),
            ms(s, 0.95),
            ms(s, 0.99),
            s.throughput()
        );
    }
    let total: f64 = report.routes.iter().map(RouteStats::throughput).sum();
    let _ = writeln!(
        out,
        "total {total:.1} req/s over {:.1} s",
        report.elapsed.as_secs_f64()
    );
    out
}

/// The load generator's target for a problem's route.
pub fn target(problem: Problem, seed: SeedSize) -> Target {
    Target::new(workload::route(problem), move |rng| {
        workload::path(problem, seed, rng)
    })
}

/// Load on one problem's route for `window`, with profiles of `kinds` taken through the agent over
/// the same window. Returns the route's figures and each profile or why it could not be had.
pub async fn measure(
    shop: SocketAddr,
    seed: SeedSize,
    agent: SocketAddr,
    problem: Problem,
    window: Duration,
    concurrency: usize,
    kinds: &[Kind],
) -> Result<(RouteStats, Vec<(Kind, Result<Fetched, FetchError>)>), Box<dyn std::error::Error>> {
    let seconds = window.as_secs().max(1);
    let fetches: Vec<_> = kinds
        .iter()
        .map(|kind| (*kind, tokio::spawn(profiles::fetch(agent, *kind, seconds))))
        .collect();
    let plan = Plan::new(shop, concurrency, Stop::After(window));
    let mut report = load::run(plan, vec![target(problem, seed)]).await?;
    let mut fetched = Vec::with_capacity(fetches.len());
    for (kind, fetch) in fetches {
        fetched.push((kind, fetch.await?));
    }
    Ok((report.routes.remove(0), fetched))
}

/// [`measure`] for the demo: an allocation or span profile that the agent cannot take (no
/// endpoint, no sampling allocator or span layer installed) is dropped from `kinds` for the rest
/// of the run.
async fn phase(
    shop: &Shop,
    agent: SocketAddr,
    demo: &DemoConfig,
    problem: Problem,
    kinds: &mut Vec<Kind>,
) -> Result<(RouteStats, Vec<(Kind, Fetched)>), Box<dyn std::error::Error>> {
    let (stats, fetched) = measure(
        shop.addr(),
        shop.seed(),
        agent,
        problem,
        demo.phase,
        demo.concurrency,
        kinds,
    )
    .await?;
    let mut taken = Vec::new();
    for (kind, result) in fetched {
        match result {
            Ok(profile) => taken.push((kind, profile)),
            Err(FetchError::Status(404 | 503, _)) if kind != Kind::Cpu => {
                kinds.retain(|k| *k != kind)
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok((stats, taken))
}

/// Switches a fix through the shop's admin route, as an operator would.
pub async fn set_fix(
    shop: SocketAddr,
    problem: Problem,
    fixed: bool,
) -> Result<(), Box<dyn std::error::Error>> {
    let url = format!("http://{shop}/admin/fixes/{}?fixed={fixed}", problem.name());
    let response = reqwest::Client::builder()
        .no_proxy()
        .build()?
        .post(&url)
        .send()
        .await?;
    if !response.status().is_success() {
        return Err(format!("{url}: {}", response.text().await.unwrap_or_default()).into());
    }
    Ok(())
}

/// Sends one request and returns the number of queries it ran (the `x-db-queries` header).
pub async fn queries_per_request(
    shop: SocketAddr,
    path: &str,
) -> Result<u32, Box<dyn std::error::Error>> {
    let url = format!("http://{shop}{path}");
    let response = reqwest::Client::builder()
        .no_proxy()
        .build()?
        .get(&url)
        .send()
        .await?;
    let header = response
        .headers()
        .get(QUERIES_HEADER)
        .ok_or_else(|| format!("{url}: no {QUERIES_HEADER} header"))?;
    Ok(header.to_str()?.parse()?)
}

/// Writes `NAME-TAG-KIND.pb.gz` and the matching flame graph `.svg`.
fn save(out: &Path, problem: Problem, tag: &str, taken: &[(Kind, Fetched)]) -> std::io::Result<()> {
    for (kind, fetched) in taken {
        let stem = format!("{}-{tag}-{}", problem.name(), kind.stem());
        std::fs::write(out.join(format!("{stem}.pb.gz")), &fetched.raw)?;
        let index = fetched
            .profile
            .sample_index(&SampleIndex::Default)
            .unwrap_or(0);
        let title = format!(
            "{} {} ({tag} the fix): {} profile",
            problem.name(),
            workload::route(problem),
            kind.stem()
        );
        let svg = flamegraph::render(&fetched.profile, &FlamegraphOptions::new(title, index))?;
        std::fs::write(out.join(format!("{stem}.svg")), svg)?;
    }
    Ok(())
}

fn millis(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

/// How a metric changed: `after / before` as a factor, "lower" or "higher".
fn change(before: f64, after: f64) -> String {
    if after <= 0.0 || before <= 0.0 {
        return "-".into();
    }
    if after <= before {
        format!("{:.1}x lower", before / after)
    } else {
        format!("{:.1}x higher", after / before)
    }
}

/// The before/after table, one block per route.
fn table(outcomes: &[Outcome]) -> String {
    let mut out = String::from(
        "\nbefore/after, one fix at a time (latency in ms, throughput in requests/s)\n",
    );
    for o in outcomes {
        let (planted, fixed) = o.problem.describe();
        let _ = writeln!(
            out,
            "\n{} {}  [{planted} -> {fixed}]",
            workload::route(o.problem),
            o.problem.name()
        );
        let _ = writeln!(
            out,
            "  {:<8}{:>14}{:>14}{:>14}{:>14}{:>8}",
            "", "p50", "p95", "p99", "req/s", "errors"
        );
        for (label, s) in [("before", &o.before), ("after", &o.after)] {
            let ms = |q| s.quantile(q).as_secs_f64() * 1000.0;
            let _ = writeln!(
                out,
                "  {label:<8}{:>14.2}{:>14.2}{:>14.2}{:>14.0}{:>8}",
                ms(0.5),
                ms(0.95),
                ms(0.99),
                s.throughput(),
                s.failures()
            );
        }
        let q = |s: &RouteStats, q| s.quantile(q).as_secs_f64();
        let _ = writeln!(
            out,
            "  {:<8}{:>14}{:>14}{:>14}{:>14}",
            "change",
            change(q(&o.before, 0.5), q(&o.after, 0.5)),
            change(q(&o.before, 0.95), q(&o.after, 0.95)),
            change(q(&o.before, 0.99), q(&o.after, 0.99)),
            change(o.before.throughput(), o.after.throughput()),
        );
        let _ = writeln!(out, "  profile: {}", o.evidence);
    }
    out
}

/// Where the files are and what to run next.
fn where_to_look(out: &Path, allocs: bool) -> String {
    let dir = out.display();
    let mut text = format!(
        "\nprofiles and flame graphs in {dir}/ (open an .svg in a browser: click to zoom, Ctrl-F to search)\n"
    );
    for problem in Problem::ALL {
        if let Some(mut signature) = evidence::signature(problem) {
            if !allocs {
                signature.kind = Kind::Cpu;
            }
            let file = format!("{}-before-{}.svg", problem.name(), signature.kind.stem());
            let _ = writeln!(
                text,
                "  {file:<34} {}: {}",
                signature.frame, signature.meaning
            );
        }
    }
    let _ = writeln!(
        text,
        "  NAME-before-spans.svg              wall time of request, query and upstream spans, waiting included"
    );
    let _ = write!(
        text,
        "compare before and after:\n  \
         go tool pprof -top -diff_base {dir}/unindexed-before-cpu.pb.gz {dir}/unindexed-after-cpu.pb.gz\n  \
         cargo run --release -p pyrometer-viewer -- diff {dir}/no-cache-before-cpu.pb.gz {dir}/no-cache-after-cpu.pb.gz\n\
         profile the shop yourself: cargo run --release --example shop, then\n  \
         curl -o cpu.svg 'http://127.0.0.1:6060/debug/pprof/profile?seconds=10&format=svg'\n"
    );
    text
}
