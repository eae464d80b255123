//! The example service over real loopback HTTP, as a child process (its subscriber and maximum
//! level are process-wide): with pyrometer added, requests for 500 names make one route in a
//! diagnose window; with tower-http's default span, at most the bound of routes folded from URIs;
//! and until a profile is asked for, the service logs exactly what it logged without pyrometer.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use pyrometer::spans::{MAX_URI_ROUTES, OTHER_ROUTE};

fn free_addr() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

/// The example running as a child process, its standard output (its log) collected line by line.
struct Service {
    child: Child,
    app: SocketAddr,
    agent: SocketAddr,
    log: Arc<Mutex<Vec<String>>>,
}

impl Service {
    fn start(args: &[&str]) -> Service {
        let (app, agent) = (free_addr(), free_addr());
        let mut child = Command::new(env!("CARGO_BIN_EXE_pyrometer-example-axum07"))
            .args(args)
            .env("APP_ADDR", app.to_string())
            .env("PYROMETER_ADDR", agent.to_string())
            .env_remove("RUST_LOG")
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let log = Arc::new(Mutex::new(Vec::new()));
        let stdout = child.stdout.take().unwrap();
        let lines = log.clone();
        thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                lines.lock().unwrap().push(line);
            }
        });
        let service = Service {
            child,
            app,
            agent,
            log,
        };
        service.wait_for_log(1, "listening");
        service
    }

    /// Waits until `count` lines of the log contain `text`, and returns the log.
    fn wait_for_log(&self, count: usize, text: &str) -> Vec<String> {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let log = self.log.lock().unwrap().clone();
            if log.iter().filter(|l| l.contains(text)).count() >= count {
                return log;
            }
            assert!(
                Instant::now() < deadline,
                "no {count} lines with {text:?} in the service's log: {log:#?}"
            );
            thread::sleep(Duration::from_millis(20));
        }
    }

    fn diagnose_routes_while(&self, load: impl FnOnce()) -> BTreeMap<String, u64> {
        let agent = self.agent;
        let window =
            thread::spawn(move || get(agent, "/debug/pprof/diagnose?seconds=4&format=json"));
        thread::sleep(Duration::from_millis(500));
        load();
        let (status, body) = window.join().unwrap();
        assert_eq!(status, 200, "{body}");
        let report: serde_json::Value = serde_json::from_str(&body).unwrap();
        report["routes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                (
                    r["route"].as_str().unwrap().to_string(),
                    r["requests"].as_u64().unwrap(),
                )
            })
            .collect()
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A GET over a new connection: the status and the body.
fn get(addr: SocketAddr, path: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(addr).unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap();
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        dechunk(body)
    } else {
        body.to_string()
    };
    (status, body)
}

fn dechunk(mut chunked: &str) -> String {
    let mut body = String::new();
    while let Some((size, rest)) = chunked.split_once("\r\n") {
        let size = usize::from_str_radix(size.trim(), 16).unwrap();
        if size == 0 {
            break;
        }
        body.push_str(&rest[..size]);
        chunked = &rest[size + 2..];
    }
    body
}

fn users(service: &Service, names: impl Iterator<Item = String>) {
    for name in names {
        let (status, body) = get(service.app, &format!("/users/{name}"));
        assert_eq!((status, body), (200, format!("hello {name}\n")));
    }
}

fn five_hundred_names() -> impl Iterator<Item = String> {
    (0..500).map(|i| format!("user{i}"))
}

#[test]
fn five_hundred_names_make_one_route_through_request_span() {
    let service = Service::start(&[]);
    let routes = service.diagnose_routes_while(|| users(&service, five_hundred_names()));
    assert_eq!(
        routes,
        BTreeMap::from([("GET /users/:name".to_string(), 500)])
    );
}

#[test]
fn routes_from_raw_uris_are_bounded_without_it() {
    let service = Service::start(&["--default-span"]);
    let routes = service.diagnose_routes_while(|| users(&service, five_hundred_names()));
    assert_eq!(routes.len(), MAX_URI_ROUTES + 1, "{routes:?}");
    assert_eq!(routes[OTHER_ROUTE], 500 - MAX_URI_ROUTES as u64);
    assert_eq!(routes.values().sum::<u64>(), 500);
}

/// The log of a service that served the same requests, without each line's time stamp and with
/// its address as `{app}`.
fn log_of(args: &[&str]) -> Vec<String> {
    let service = Service::start(args);
    users(
        &service,
        ["alice", "bob", "carol"].map(String::from).into_iter(),
    );
    let app = service.app.to_string();
    service
        .wait_for_log(3, "user looked up")
        .iter()
        .map(|line| line.split_once(' ').unwrap().1.replace(&app, "{app}"))
        .collect()
}

#[test]
fn adding_pyrometer_changes_no_log_line_nor_the_maximum_level() {
    let without = log_of(&["--without-pyrometer"]);
    let with = log_of(&[]);
    assert_eq!(with, without);
    assert!(
        without[0].contains("max_level=info"),
        "the service without pyrometer logs at INFO: {without:?}"
    );
    assert_eq!(without.len(), 4, "{without:?}");
}
