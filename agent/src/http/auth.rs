//! Bearer or Basic token check, in constant time. Basic is accepted (any user name, the token as
//! password) because browsers prompt for it and Go's HTTP client sends it from a URL's user info,
//! so `go tool pprof http://pprof:TOKEN@host:6060/debug/pprof/profile` works.

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine;
use subtle::ConstantTimeEq;

use super::error::ApiError;
use super::Shared;

pub async fn require_token(State(shared): State<Shared>, request: Request, next: Next) -> Response {
    match &shared.config.token {
        Some(token) if !presented_token_matches(request.headers(), token) => ApiError::new(
            StatusCode::UNAUTHORIZED,
            "a token is required: send `Authorization: Bearer $PYROMETER_TOKEN` \
             (or Basic auth with the token as password)",
        )
        .into_response(),
        _ => next.run(request).await,
    }
}

fn presented_token_matches(headers: &HeaderMap, token: &str) -> bool {
    let Some(value) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let presented = if let Some(bearer) = value.strip_prefix("Bearer ") {
        bearer.trim().as_bytes().to_vec()
    } else if let Some(basic) = value.strip_prefix("Basic ") {
        let Ok(decoded) = base64::engine::general_purpose::STANDARD.decode(basic.trim()) else {
            return false;
        };
        match decoded.iter().position(|&b| b == b':') {
            Some(colon) => decoded[colon + 1..].to_vec(),
            None => return false,
        }
    } else {
        return false;
    };
    // `ct_eq` on slices of different lengths returns false without comparing contents; the length
    // of the token is not a secret worth hiding.
    presented.ct_eq(token.as_bytes()).into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::AUTHORIZATION, HeaderValue::from_str(value).unwrap());
        h
    }

    #[test]
    fn accepts_bearer_and_basic() {
        assert!(presented_token_matches(&headers("Bearer s3cret"), "s3cret"));
        let basic = base64::engine::general_purpose::STANDARD.encode("pprof:s3cret");
        assert!(presented_token_matches(
            &headers(&format!("Basic {basic}")),
            "s3cret"
        ));
    }

    #[test]
    fn refuses_wrong_or_missing_tokens() {
        assert!(!presented_token_matches(&HeaderMap::new(), "s3cret"));
        assert!(!presented_token_matches(&headers("Bearer s3cre"), "s3cret"));
        assert!(!presented_token_matches(
            &headers("Bearer s3cretX"),
            "s3cret"
        ));
        assert!(!presented_token_matches(&headers("Basic !!!"), "s3cret"));
        assert!(!presented_token_matches(&headers("s3cret"), "s3cret"));
    }
}
