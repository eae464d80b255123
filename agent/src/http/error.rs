//! Failures as go tool pprof expects them: a one-line text/plain body, a fitting status, and the
//! header `X-Go-Pprof: 1` (which tells go tool pprof to print the body instead of a parse error).

use hyper::header::{self, HeaderValue};
use hyper::{Method, StatusCode};

use super::response::{with_body, Response};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
    retry_after: Option<u64>,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        ApiError {
            status,
            message: message.into(),
            retry_after: None,
        }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }

    /// 409 with `Retry-After`, for a profiler that only one client can use at a time.
    pub fn busy(message: impl Into<String>, retry_after_secs: u64) -> Self {
        ApiError {
            retry_after: Some(retry_after_secs.max(1)),
            ..Self::new(StatusCode::CONFLICT, message)
        }
    }

    /// 503 for a profile kind this process was built or started without.
    pub fn not_enabled(message: impl Into<String>) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, message)
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, message)
    }

    /// 404 for a path that is not an endpoint.
    pub fn not_found(path: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            format!("no such endpoint: {path}; see /debug/pprof/ for the list"),
        )
    }

    /// 405 for anything but GET or HEAD: every endpoint only reads.
    pub fn method_not_allowed(method: &Method, path: &str) -> Self {
        Self::new(
            StatusCode::METHOD_NOT_ALLOWED,
            format!("{path} answers GET and HEAD, not {method}"),
        )
    }

    /// The response: a one-line text body and the headers go tool pprof and browsers expect.
    pub fn into_response(self) -> Response {
        let one_line = self.message.replace(['\n', '\r'], " ");
        let mut response = with_body(
            self.status,
            "text/plain; charset=utf-8",
            format!("{one_line}\n"),
        );
        let headers = response.headers_mut();
        headers.insert("X-Go-Pprof", HeaderValue::from_static("1"));
        if let Some(secs) = self.retry_after {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        if self.status == StatusCode::UNAUTHORIZED {
            headers.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static(r#"Basic realm="pyrometer", charset="UTF-8""#),
            );
        }
        if self.status == StatusCode::METHOD_NOT_ALLOWED {
            headers.insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
        }
        response
    }
}
