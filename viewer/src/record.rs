//! `pyrometer record URL`: takes a profile from a running agent (or any server that speaks Go's
//! net/http/pprof paths) over plain HTTP.
//!
//! A CPU profile takes its whole window before the server answers, so the request runs on its
//! own thread while the caller is told how far into the window it is (the command draws a
//! progress bar from that). The token comes from the caller (the command reads
//! `PYROMETER_TOKEN`) and goes out as `Authorization: Bearer`. On an error status the server's
//! one-line message is shown as it is: the agent's messages say what to change.

use std::sync::mpsc;
use std::time::{Duration, Instant};

use reqwest::Url;

use crate::error::Error;

/// The agent's CPU profile path, taken when the URL names only a host.
pub const DEFAULT_PATH: &str = "/debug/pprof/profile";

/// The window the agent uses for a CPU profile when none is asked for.
const DEFAULT_CPU_SECONDS: u64 = 30;

/// How long to wait for an answer beyond the window (symbolizing, encoding, a slow network).
const GRACE: Duration = Duration::from_secs(60);

#[derive(Debug, Clone, Default)]
pub struct RecordOptions {
    /// `http://host:port`, or a full profile URL such as `http://host:6060/debug/pprof/heap`.
    pub url: String,
    /// The window; replaces any `seconds` in the URL.
    pub seconds: Option<u64>,
    pub token: Option<String>,
}

/// What the server sent.
#[derive(Debug, Clone)]
pub struct Recording {
    pub bytes: Vec<u8>,
    /// The URL that was asked, with the `seconds` that was used.
    pub url: Url,
    /// The endpoint's last path segment (`profile`, `heap`), for naming the file.
    pub kind: String,
    pub window: Duration,
}

/// The URL to ask, and the window the server will take.
pub fn request_url(options: &RecordOptions) -> Result<(Url, Duration), Error> {
    let raw = options.url.trim();
    let with_scheme = if raw.contains("://") {
        raw.to_string()
    } else {
        format!("http://{raw}")
    };
    let mut url =
        Url::parse(&with_scheme).map_err(|e| Error::new(raw, format!("not a URL: {e}")))?;
    if url.scheme() != "http" {
        return Err(Error::new(
            raw,
            format!(
                "{}:// is not supported: record speaks plain HTTP, as the agent serves it; reach a remote agent through an SSH tunnel to its loopback port",
                url.scheme()
            ),
        ));
    }
    if url.path().is_empty() || url.path() == "/" {
        url.set_path(DEFAULT_PATH);
    }
    if let Some(seconds) = options.seconds {
        let others: Vec<(String, String)> = url
            .query_pairs()
            .filter(|(k, _)| k != "seconds")
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        url.query_pairs_mut()
            .clear()
            .extend_pairs(others)
            .append_pair("seconds", &seconds.to_string());
    }
    let asked = url
        .query_pairs()
        .find(|(k, _)| k == "seconds")
        .and_then(|(_, v)| v.parse::<u64>().ok());
    let seconds = match asked {
        Some(s) => s,
        None if url.path().ends_with("/profile") => DEFAULT_CPU_SECONDS,
        None => 0,
    };
    Ok((url, Duration::from_secs(seconds)))
}

/// Fetches the profile. `progress(elapsed, window)` is called about four times a second while
/// the server takes its window.
pub fn record(
    options: &RecordOptions,
    progress: &mut dyn FnMut(Duration, Duration),
) -> Result<Recording, Error> {
    let (url, window) = request_url(options)?;
    let shown = url.to_string();
    let client = reqwest::blocking::Client::builder()
        .timeout(window + GRACE)
        .build()
        .map_err(|e| {
            Error::new(
                &shown,
                format!("cannot start an HTTP client: {}", chain(&e)),
            )
        })?;
    let mut request = client.get(url.clone());
    if let Some(token) = &options.token {
        request = request.bearer_auth(token);
    }
    let (done, answer) = mpsc::channel();
    std::thread::spawn(move || {
        let result = request.send().and_then(|r| {
            let status = r.status();
            let retry_after = r
                .headers()
                .get(reqwest::header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string);
            r.bytes().map(|b| (status, retry_after, b.to_vec()))
        });
        let _ = done.send(result);
    });
    let start = Instant::now();
    let result = loop {
        match answer.recv_timeout(Duration::from_millis(250)) {
            Ok(result) => break result,
            Err(mpsc::RecvTimeoutError::Timeout) => progress(start.elapsed(), window),
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                return Err(Error::new(
                    &shown,
                    "the request thread ended without an answer",
                ))
            }
        }
    };
    let (status, retry_after, bytes) =
        result.map_err(|e| Error::new(&shown, format!("cannot get the profile: {}", chain(&e))))?;
    if !status.is_success() {
        let body = String::from_utf8_lossy(&bytes);
        let message = body.lines().next().unwrap_or("").trim();
        let retry = retry_after
            .map(|s| format!(" (retry after {s} s)"))
            .unwrap_or_default();
        return Err(Error::new(
            &shown,
            format!("the server answered {status}: {message}{retry}"),
        ));
    }
    let kind = url
        .path_segments()
        .and_then(|mut s| s.next_back())
        .filter(|s| !s.is_empty())
        .unwrap_or("profile")
        .to_string();
    Ok(Recording {
        bytes,
        url,
        kind,
        window,
    })
}

/// An error with its causes, which reqwest keeps apart (`connection refused` is a cause).
fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url_for(url: &str, seconds: Option<u64>) -> (String, u64) {
        let options = RecordOptions {
            url: url.into(),
            seconds,
            token: None,
        };
        let (url, window) = request_url(&options).unwrap();
        (url.to_string(), window.as_secs())
    }

    #[test]
    fn urls_are_completed() {
        assert_eq!(
            url_for("127.0.0.1:6060", Some(5)),
            (
                "http://127.0.0.1:6060/debug/pprof/profile?seconds=5".into(),
                5
            )
        );
        assert_eq!(
            url_for("http://127.0.0.1:6060/", None),
            ("http://127.0.0.1:6060/debug/pprof/profile".into(), 30)
        );
        assert_eq!(
            url_for(
                "http://h:1/debug/pprof/profile?seconds=9&frequency=999",
                Some(2)
            ),
            (
                "http://h:1/debug/pprof/profile?frequency=999&seconds=2".into(),
                2
            )
        );
        assert_eq!(url_for("http://h:1/debug/pprof/heap", None).1, 0);
        let err = request_url(&RecordOptions {
            url: "https://h:1".into(),
            ..Default::default()
        })
        .unwrap_err();
        assert!(err.message.contains("https:// is not supported"), "{err}");
    }
}
