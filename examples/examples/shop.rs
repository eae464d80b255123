//! The shop: a realistic axum service over SQLite with the classic backend killers planted, and
//! the pyrometer agent embedded.
//!
//!     cargo run --release --example shop -- --demo     # the one-minute tour
//!     cargo run --release --example shop               # serve it, then profile it yourself
//!     cargo run --release --example shop -- --fix unindexed,no-cache
//!     cargo run --release --example shop -- --load http://127.0.0.1:8080 --seconds 10
//!
//! `--fix` (or `SHOP_FIX`) starts problems fixed; `POST /admin/fixes/NAME?fixed=true` switches one
//! at run time. The agent listens on 127.0.0.1:6060 (`PYROMETER_ADDR`, `PYROMETER_TOKEN`).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use pyrometer_examples::demo::{self, DemoConfig};
use pyrometer_examples::load::{self, Plan, Stop};
use pyrometer_examples::shop::fixes::{self, Problem};
use pyrometer_examples::shop::seed::SeedSize;
use pyrometer_examples::shop::{telemetry, workload, Shop, ShopConfig};

/// Samples allocations for `/debug/pprof/heap` and `/debug/pprof/allocs`.
#[global_allocator]
static ALLOC: pyrometer::heap::SamplingAllocator = pyrometer::heap::SamplingAllocator::system();

#[derive(Debug, Parser)]
#[command(
    about = "A shop service with planted backend performance problems, and the pyrometer agent"
)]
struct Args {
    /// Run the demo: load, profiles, each fix in turn, a before/after table; about a minute.
    #[arg(long)]
    demo: bool,
    /// Where the shop listens (the demo picks a free port).
    #[arg(long, default_value = "127.0.0.1:8080")]
    addr: SocketAddr,
    /// Problems that start fixed: a comma-separated list of names, or `all`.
    #[arg(long, env = "SHOP_FIX", default_value = "")]
    fix: String,
    /// Customers to seed.
    #[arg(long, default_value_t = SeedSize::default().customers)]
    customers: u32,
    /// Orders to seed (with about three lines each).
    #[arg(long, default_value_t = SeedSize::default().orders)]
    orders: u32,
    /// Products to seed.
    #[arg(long, default_value_t = SeedSize::default().products)]
    products: u32,
    /// Connections in the shared pool.
    #[arg(long, default_value_t = 8)]
    pool_size: u32,
    /// Latency of every upstream call, in milliseconds.
    #[arg(long, default_value_t = 10)]
    upstream_latency_ms: u64,
    /// Every n-th upstream payments call stalls (0: never).
    #[arg(long, default_value_t = 20)]
    stall_every: u64,
    /// How long a stalled payments call hangs, in milliseconds.
    #[arg(long, default_value_t = 1500)]
    stall_ms: u64,
    /// Demo: where to write profiles (default: a new folder under the system's temp folder).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Demo: seconds of load per route, before and after its fix.
    #[arg(long, default_value_t = 3)]
    phase_seconds: u64,
    /// Demo and --load: concurrent clients.
    #[arg(long, default_value_t = 8)]
    concurrency: usize,
    /// Instead of serving, drive load at a shop already running at this loopback URL (for
    /// example http://127.0.0.1:8080), over every route but the stalling one, and print the
    /// percentiles per route.
    #[arg(long, value_name = "URL")]
    load: Option<String>,
    /// --load: seconds of load.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Leave the agent's span layer out of the tracing subscriber (to measure what it costs).
    #[arg(long)]
    no_span_layer: bool,
}

fn main() -> ExitCode {
    let args = Args::parse();
    telemetry::init_tracing(!args.no_span_layer);
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("shop: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("shop: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> Result<(), Box<dyn std::error::Error>> {
    let seed = SeedSize {
        customers: args.customers,
        orders: args.orders,
        products: args.products,
    };
    if let Some(target) = &args.load {
        let addr = load::loopback_target(target)?;
        let plan = Plan::new(
            addr,
            args.concurrency,
            Stop::After(Duration::from_secs(args.seconds)),
        );
        let report = load::run(plan, demo::mixed_targets(seed)).await?;
        print!("{}", demo::report_table(&report));
        return Ok(());
    }
    let agent = demo::start_agent()?;
    let mut config = ShopConfig {
        addr: args.addr,
        seed,
        pool_size: args.pool_size,
        fixed: fixes::parse_list(&args.fix)?,
        upstream_latency: Duration::from_millis(args.upstream_latency_ms),
        stall_every: args.stall_every,
        upstream_stall: Duration::from_millis(args.stall_ms),
        ..ShopConfig::default()
    };
    if args.demo {
        config.addr = SocketAddr::from(([127, 0, 0, 1], 0));
        config.fixed.clear();
        let demo = DemoConfig {
            out: args.out,
            phase: Duration::from_secs(args.phase_seconds.clamp(1, 60)),
            concurrency: args.concurrency,
        };
        return demo::run(config, agent.local_addr(), demo).await;
    }
    eprintln!(
        "seeding {} customers and {} orders...",
        config.seed.customers, config.seed.orders
    );
    let shop = Shop::start(config).await?;
    let (base, agent) = (shop.addr(), agent.local_addr());
    println!(
        "shop on http://{base} (upstream on http://{})",
        shop.upstream_addr()
    );
    println!("profiles on http://{agent}/debug/pprof/\n");
    for problem in Problem::ALL {
        println!("  curl 'http://{base}{}'", workload::example_path(problem));
    }
    println!("\n  curl -o cpu.svg 'http://{agent}/debug/pprof/profile?seconds=10&format=svg'");
    println!("  curl -X POST 'http://{base}/admin/fixes/unindexed?fixed=true'");
    println!("\nCtrl-C stops it.");
    tokio::signal::ctrl_c().await?;
    Ok(())
}
