//! `/debug/pprof/diagnose` on the shop: with everything planted each problem is reported for its
//! route, with its fix on that finding is gone, and with every fix on nothing is reported.

use std::net::SocketAddr;
use std::sync::OnceLock;
use std::time::Duration;

use pyrometer_examples::background::{self, Addresses};
use pyrometer_examples::demo::{mixed_targets, set_fix, target};
use pyrometer_examples::load::{self, Plan, Stop, Target};
use pyrometer_examples::shop::fixes::Problem;
use pyrometer_examples::shop::seed::SeedSize;
use pyrometer_examples::shop::{telemetry, workload, ShopConfig};
use serde_json::Value;

const SEED: SeedSize = SeedSize {
    customers: 20_000,
    orders: 200_000,
    products: 2_000,
};

/// The problems a request's spans can show, and the finding each should produce. (Allocation in
/// the hot path and the missing cache show in CPU and allocation profiles; see tests/shop.rs.)
const DETECTABLE: &[(Problem, &str)] = &[
    (Problem::NPlusOne, "n_plus_one_queries"),
    (Problem::Unindexed, "slow_query"),
    (Problem::ConnPerRequest, "connection_per_request"),
    (Problem::SequentialCalls, "consecutive_http_calls"),
    (Problem::NoTimeout, "no_timeout"),
];

fn fixture() -> &'static Addresses {
    static FIXTURE: OnceLock<Addresses> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        telemetry::init_tracing(true);
        background::start(
            pyrometer::Agent::builder()
                .bind(SocketAddr::from(([127, 0, 0, 1], 0)))
                .diagnose(telemetry::diagnose_config()),
            ShopConfig {
                addr: SocketAddr::from(([127, 0, 0, 1], 0)),
                seed: SEED,
                // As many connections as planted clients, so that the table scans run at once
                // and their p95 shows what a busy service would see.
                pool_size: 16,
                ..ShopConfig::default()
            },
        )
    })
}

/// Drives `targets` with `clients` for four seconds and returns the diagnosis of the middle three.
async fn diagnose_under_load(targets: Vec<Target>, clients: usize) -> Value {
    let f = fixture();
    let url = format!(
        "http://{}/debug/pprof/diagnose?seconds=3&format=json",
        f.agent
    );
    let diagnosis = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(500)).await;
        reqwest::get(url)
            .await
            .expect("agent answers")
            .json::<Value>()
            .await
            .expect("json")
    });
    let plan = Plan::new(f.shop, clients, Stop::After(Duration::from_secs(4)));
    let report = load::run(plan, targets).await.expect("load runs");
    for route in &report.routes {
        // A 504 is the fixed payments call giving up after its bounded retries: by design.
        let unexpected = route.failed.keys().any(|status| *status != 504);
        assert!(!unexpected, "{}: failed {:?}", route.label, route.failed);
        assert!(route.ok > 0, "{}: no request succeeded", route.label);
    }
    diagnosis.await.expect("diagnosis")
}

fn findings(report: &Value) -> Vec<(String, String)> {
    report["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .map(|f| {
            (
                f["kind"].as_str().unwrap().into(),
                f["route"].as_str().unwrap().into(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_problem_is_found_on_its_route_and_gone_once_fixed() {
    let f = fixture();
    let mut table = vec![
        "problem | finding | reported when planted | reported when fixed | example".to_string(),
    ];
    for &(problem, kind) in DETECTABLE {
        let route = format!("GET {}", workload::route(problem));
        let wanted = (kind.to_string(), route.clone());

        set_fix(f.shop, problem, false).await.unwrap();
        let planted = diagnose_under_load(vec![target(problem, SEED)], 16).await;
        let found_planted = findings(&planted).contains(&wanted);

        set_fix(f.shop, problem, true).await.unwrap();
        let fixed = diagnose_under_load(vec![target(problem, SEED)], 16).await;
        let found_fixed = findings(&fixed).contains(&wanted);

        let evidence = planted["findings"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["kind"] == kind && f["route"] == route.as_str())
            .map_or(String::new(), |f| {
                f["example"].as_str().unwrap_or("").to_string()
            });
        table.push(format!(
            "{} | {kind} | {found_planted} | {found_fixed} | {evidence}",
            problem.name()
        ));
        assert!(
            found_planted,
            "{problem}: {kind} on {route} not reported:\n{planted:#}"
        );
        assert!(
            !found_fixed,
            "{problem}: {kind} still reported once fixed:\n{fixed:#}"
        );
    }
    eprintln!("{}", table.join("\n"));

    for problem in Problem::ALL {
        set_fix(f.shop, problem, true).await.unwrap();
    }
    let mut targets = mixed_targets(SEED);
    targets.push(target(Problem::NoTimeout, SEED));
    // One client: the export's join is a heavy statement too, and clients piling up on two cores
    // would make any statement slow; the planted phases above use sixteen, as a busy service would.
    let all_fixed = diagnose_under_load(targets, 1).await;
    assert_eq!(
        all_fixed["routes"].as_array().unwrap().len(),
        Problem::ALL.len(),
        "every route was seen: {all_fixed:#}"
    );
    for route in all_fixed["routes"].as_array().unwrap() {
        eprintln!("all fixed: {} p95 {} ms", route["route"], route["p95_ms"]);
    }
    assert!(
        findings(&all_fixed).is_empty(),
        "with every fix on nothing is reported:\n{all_fixed:#}"
    );
}
