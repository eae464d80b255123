//! Bearer or Basic token check, in constant time. Basic is accepted (any user name, the token as
//! password) because browsers prompt for it and Go's HTTP client sends it from a URL's user info,
//! so `go tool pprof http://pprof:TOKEN@host:6060/debug/pprof/profile` works. The scheme's name is
//! case-insensitive, as RFC 9110 (section 11.1) says: `bearer` and `BASIC` are accepted too.

use base64::Engine;
use hyper::header::{self, HeaderMap};
use hyper::StatusCode;
use subtle::ConstantTimeEq;

use super::error::ApiError;

/// Passes a request that presents `token`, or any request when no token is configured.
pub(super) fn check(token: Option<&str>, headers: &HeaderMap) -> Result<(), ApiError> {
    match token {
        Some(token) if !presented_token_matches(headers, token) => Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "a token is required: send `Authorization: Bearer $PYROMETER_TOKEN` \
             (or Basic auth with the token as password)",
        )),
        _ => Ok(()),
    }
}

fn presented_token_matches(headers: &HeaderMap, token: &str) -> bool {
    let Some((scheme, credentials)) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().split_once(' '))
    else {
        return false;
    };
    let credentials = credentials.trim();
    let presented = if scheme.eq_ignore_ascii_case("Bearer") {
        credentials.as_bytes().to_vec()
    } else if scheme.eq_ignore_ascii_case("Basic") {
        let Ok(decoded) = base64::engine::general_purpose::STANDARD.decode(credentials) else {
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
    use hyper::header::HeaderValue;

    fn headers(value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::AUTHORIZATION, HeaderValue::from_str(value).unwrap());
        h
    }

    fn basic(user_and_password: &str) -> String {
        base64::engine::general_purpose::STANDARD.encode(user_and_password)
    }

    #[test]
    fn accepts_bearer_and_basic() {
        assert!(presented_token_matches(&headers("Bearer s3cret"), "s3cret"));
        let basic = basic("pprof:s3cret");
        assert!(presented_token_matches(
            &headers(&format!("Basic {basic}")),
            "s3cret"
        ));
    }

    #[test]
    fn the_scheme_is_case_insensitive() {
        for scheme in ["bearer", "BEARER", "bEaReR"] {
            let value = format!("{scheme} s3cret");
            assert!(
                presented_token_matches(&headers(&value), "s3cret"),
                "{value}"
            );
        }
        let basic = basic("pprof:s3cret");
        for scheme in ["basic", "BASIC"] {
            let value = format!("{scheme} {basic}");
            assert!(
                presented_token_matches(&headers(&value), "s3cret"),
                "{value}"
            );
        }
        // The token itself is not: it is a secret compared byte for byte.
        assert!(!presented_token_matches(
            &headers("bearer S3CRET"),
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
        assert!(!presented_token_matches(&headers("Token s3cret"), "s3cret"));
        assert!(!presented_token_matches(&headers("Bearers3cret"), "s3cret"));
        let no_colon = basic("s3cret");
        assert!(!presented_token_matches(
            &headers(&format!("Basic {no_colon}")),
            "s3cret"
        ));
    }

    #[test]
    fn without_a_configured_token_everything_passes() {
        assert!(check(None, &HeaderMap::new()).is_ok());
        let err = check(Some("s3cret"), &HeaderMap::new()).unwrap_err();
        assert_eq!(err.status, StatusCode::UNAUTHORIZED);
    }
}
