//! The minimal example, which embeds the agent as the README says, run as a real process: when the
//! profiler cannot start, the service still serves and one line on standard error says why.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

/// The example's executable. `cargo test` builds examples only when no test target is named, so
/// it is built here (a no-op when it is up to date).
fn minimal_example() -> PathBuf {
    let mut command = Command::new(env!("CARGO"));
    command.current_dir(env!("CARGO_MANIFEST_DIR")).args([
        "build",
        "--locked",
        "--message-format=json",
        "--example",
        "minimal",
    ]);
    if !cfg!(debug_assertions) {
        command.arg("--release");
    }
    let output = command.output().expect("cargo runs");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .find(|m| m["target"]["name"] == "minimal" && m["executable"].is_string())
        .map(|m| PathBuf::from(m["executable"].as_str().unwrap()))
        .expect("cargo names the example's executable")
}

/// The example started with the profiler on `profiler_addr`; killed when dropped.
struct Minimal {
    child: Child,
    service: SocketAddr,
}

impl Minimal {
    fn start(profiler_addr: &str) -> Minimal {
        let mut child = Command::new(minimal_example())
            .arg("--no-load")
            .env("PYROMETER_ADDR", profiler_addr)
            .env_remove("PYROMETER_TOKEN")
            .env("MINIMAL_ADDR", "127.0.0.1:0")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the example starts");
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let mut first = String::new();
        stdout.read_line(&mut first).unwrap();
        let service = first
            .strip_prefix("service:  http://")
            .and_then(|rest| rest.split('/').next())
            .and_then(|addr| addr.parse().ok())
            .unwrap_or_else(|| panic!("the service's address on stdout: {first:?}"));
        let mut second = String::new();
        stdout.read_line(&mut second).unwrap();
        assert_eq!(second, "profiler: off\n");
        Minimal { child, service }
    }

    /// GET `path` from the service over loopback; the whole response.
    fn get(&self, path: &str) -> String {
        let mut stream = TcpStream::connect(self.service).unwrap();
        write!(
            stream,
            "GET {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
            self.service
        )
        .unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).unwrap();
        response
    }

    /// Stops the example and returns what it wrote to standard error.
    fn stop(mut self) -> String {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
        let mut stderr = String::new();
        self.child
            .stderr
            .take()
            .unwrap()
            .read_to_string(&mut stderr)
            .unwrap();
        stderr
    }
}

impl Drop for Minimal {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn a_taken_profiler_port_leaves_the_service_serving() {
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let minimal = Minimal::start(&format!("127.0.0.1:{port}"));

    let response = minimal.get("/work?items=10");
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(response.contains("10 items, smallest hash"), "{response}");

    assert_eq!(
        minimal.stop(),
        format!(
            "pyrometer: profiler off: cannot listen on 127.0.0.1:{port}: Address already in use \
             (os error 98); choose another address with PYROMETER_ADDR\n"
        )
    );
    drop(taken);
}

/// The refusal of an open address without a token is explained in full (its `Display`), not
/// named (`TokenRequired(0.0.0.0:0)`).
#[test]
fn an_open_address_without_a_token_is_refused_with_the_full_explanation() {
    let minimal = Minimal::start("0.0.0.0:0");
    assert!(minimal.get("/work?items=10").starts_with("HTTP/1.1 200"));
    assert_eq!(
        minimal.stop(),
        "pyrometer: profiler off: refusing to serve profiles on 0.0.0.0:0 without a token: anyone \
         who can reach it could read this process's code paths. Set PYROMETER_TOKEN (or call \
         .token(..)), or bind a loopback address such as 127.0.0.1:0\n"
    );
}
