//! The SVG in a real browser: Debian's headless Chromium driven over WebDriver (chromedriver).
//! A screenshot of the graph is not blank, clicking a frame zooms into it, and searching
//! highlights the matching frames, all with inferno's own script running in the page.
//!
//! The WebDriver client is a few JSON requests, which is all these checks need.

mod common;

use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use serde_json::{json, Value};

use common::{pyrometer, stderr, testdata};

const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const CHROMIUM: &str = "/usr/bin/chromium";

/// chromedriver on a loopback port, stopped when dropped.
struct Driver {
    child: Child,
    base: String,
    http: reqwest::blocking::Client,
}

impl Driver {
    fn start() -> Driver {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver runs (apt-get install chromium chromium-driver)");
        let driver = Driver {
            child,
            base: format!("http://127.0.0.1:{port}"),
            http: reqwest::blocking::Client::builder()
                .timeout(Duration::from_secs(60))
                .build()
                .unwrap(),
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while driver
            .http
            .get(format!("{}/status", driver.base))
            .send()
            .is_err()
        {
            assert!(Instant::now() < deadline, "chromedriver did not start");
            std::thread::sleep(Duration::from_millis(100));
        }
        driver
    }

    fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let mut request = self.http.request(method, format!("{}{path}", self.base));
        if let Some(body) = body {
            request = request
                .header("Content-Type", "application/json")
                .body(body.to_string());
        }
        let answer: Value =
            serde_json::from_slice(&request.send().unwrap().bytes().unwrap()).unwrap();
        assert!(
            answer["value"].get("error").is_none(),
            "WebDriver {path}: {answer}"
        );
        answer["value"].clone()
    }

    fn session(&self, profile_dir: &Path) -> Session<'_> {
        let args = [
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--window-size=1280,900",
        ]
        .iter()
        .map(|s| s.to_string())
        .chain([format!("--user-data-dir={}", profile_dir.display())])
        .collect::<Vec<_>>();
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {"binary": CHROMIUM, "args": args}
        }}});
        let value = self.call(reqwest::Method::POST, "/session", Some(caps));
        Session {
            driver: self,
            id: value["sessionId"].as_str().unwrap().to_string(),
        }
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

struct Session<'a> {
    driver: &'a Driver,
    id: String,
}

impl Session<'_> {
    fn post(&self, path: &str, body: Value) -> Value {
        self.driver.call(
            reqwest::Method::POST,
            &format!("/session/{}{path}", self.id),
            Some(body),
        )
    }

    fn script(&self, script: &str) -> Value {
        self.post("/execute/sync", json!({"script": script, "args": []}))
    }

    fn screenshot(&self) -> png::Decoder<std::io::Cursor<Vec<u8>>> {
        let value = self.driver.call(
            reqwest::Method::GET,
            &format!("/session/{}/screenshot", self.id),
            None,
        );
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(value.as_str().unwrap())
            .unwrap();
        png::Decoder::new(std::io::Cursor::new(bytes))
    }

    /// The element of the frame whose tooltip starts with `name`.
    fn frame(&self, name: &str) -> String {
        let xpath = format!(
            "//*[local-name()='g'][*[local-name()='title' and starts-with(text(), '{name} (')]]"
        );
        let value = self.post("/element", json!({"using": "xpath", "value": xpath}));
        value
            .as_object()
            .unwrap()
            .values()
            .next()
            .unwrap()
            .as_str()
            .unwrap()
            .to_string()
    }
}

impl Drop for Session<'_> {
    fn drop(&mut self) {
        let _ = self
            .driver
            .http
            .delete(format!("{}/session/{}", self.driver.base, self.id))
            .send();
    }
}

/// Share of pixels that are not the page's white or the graph's pale background, and the
/// number of distinct colours.
fn ink(decoder: png::Decoder<std::io::Cursor<Vec<u8>>>) -> (f64, usize) {
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut buf).unwrap();
    let channels = info.color_type.samples();
    let pixels: Vec<&[u8]> = buf[..info.buffer_size()].chunks(channels).collect();
    let is_background = |p: &&[u8]| p[0] >= 0xe6 && p[1] >= 0xe6 && p[2] >= 0xe6;
    let inked = pixels.iter().filter(|p| !is_background(p)).count();
    let colours: std::collections::HashSet<&[u8]> = pixels.iter().map(|p| &p[..3]).collect();
    (inked as f64 / pixels.len() as f64, colours.len())
}

#[test]
fn flame_graph_renders_zooms_and_searches_in_chromium() {
    let dir = tempfile::tempdir().unwrap();
    let svg = dir.path().join("cpu.svg");
    let out = pyrometer(
        &[
            "flamegraph",
            testdata("pprof/go.cpu.pb.gz").to_str().unwrap(),
            "-o",
            svg.to_str().unwrap(),
        ],
        b"",
    );
    assert!(out.status.success(), "{}", stderr(&out));

    let driver = Driver::start();
    let session = driver.session(&dir.path().join("chromium-profile"));
    session.post("/url", json!({"url": format!("file://{}", svg.display())}));

    let (share, colours) = ink(session.screenshot());
    assert!(
        share > 0.10,
        "the screenshot is nearly blank: {share:.3} inked"
    );
    assert!(
        colours > 20,
        "a flame graph has many colours, the screenshot {colours}"
    );

    // Click a frame: it fills the width and the "Reset Zoom" button appears.
    let name = "crypto/sha256.(*digest).Write";
    let width = format!(
        "return document.evaluate(\"//*[local-name()='g'][*[local-name()='title' and starts-with(text(), '{name} (')]]\", \
         document, null, 9, null).singleNodeValue.querySelector('rect').getBoundingClientRect().width;"
    );
    let before = session.script(&width).as_f64().unwrap();
    assert!(
        session.script("return document.getElementById('unzoom').classList.contains('hide');")
            == json!(true)
    );
    let frame = session.frame(name);
    session.post(&format!("/element/{frame}/click"), json!({}));
    let after = session.script(&width).as_f64().unwrap();
    assert!(
        after > before * 3.0 && after > 1000.0,
        "zoomed from {before} px to {after} px"
    );
    assert_eq!(
        session.script("return document.getElementById('unzoom').classList.contains('hide');"),
        json!(false)
    );
    let (zoomed_share, _) = ink(session.screenshot());
    assert!(
        zoomed_share > 0.02,
        "the zoomed graph is drawn: {zoomed_share:.3}"
    );

    // Search: matching frames turn the search colour and the match share is shown.
    session.script("unzoom(); search('sha256');");
    let fills = session.script(
        "return Array.from(document.querySelectorAll('g')).filter(g => { const t = g.querySelector('title'); \
         return t && t.textContent.includes('sha256'); }).map(g => g.querySelector('rect').getAttribute('fill'));",
    );
    let fills = fills.as_array().unwrap();
    assert!(!fills.is_empty());
    assert!(
        fills.iter().all(|f| f == "rgb(230,0,230)"),
        "highlighted: {fills:?}"
    );
    let other = session.script(
        "return Array.from(document.querySelectorAll('g')).find(g => { const t = g.querySelector('title'); \
         return t && t.textContent.startsWith('runtime.mallocgc'); }).querySelector('rect').getAttribute('fill');",
    );
    assert_ne!(
        other,
        json!("rgb(230,0,230)"),
        "frames that do not match keep their colour"
    );
    let matched = session.script("return document.getElementById('matched').textContent;");
    assert!(
        matched.as_str().unwrap().starts_with("Matched: "),
        "{matched}"
    );
}
