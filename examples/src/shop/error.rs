//! The shop's error responses and request-parameter parsing.
//!
//! A client that sends a bad request must learn what was wrong from the response alone: every
//! failure is a status that fits (400 for a malformed or out-of-range parameter, 404 for an unknown
//! id, 502/504 for an upstream that failed or did not answer, 500 for the database) and a one-line
//! plain-text body that names the parameter or the id.

use std::collections::HashMap;
use std::ops::RangeInclusive;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use super::outbound::CallError;

/// A failed request: a status and a one-line message.
#[derive(Debug)]
pub struct ShopError {
    pub status: StatusCode,
    pub message: String,
}

impl ShopError {
    pub fn bad_request(message: impl Into<String>) -> Self {
        ShopError {
            status: StatusCode::BAD_REQUEST,
            message: message.into(),
        }
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        ShopError {
            status: StatusCode::NOT_FOUND,
            message: message.into(),
        }
    }
}

impl IntoResponse for ShopError {
    fn into_response(self) -> Response {
        let mut message = self.message.replace(['\n', '\r'], " ");
        message.push('\n');
        (self.status, message).into_response()
    }
}

impl From<sqlx::Error> for ShopError {
    fn from(e: sqlx::Error) -> Self {
        tracing::error!(error = %e, "database error");
        ShopError {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            message: format!("database error: {e}"),
        }
    }
}

impl From<CallError> for ShopError {
    fn from(e: CallError) -> Self {
        let status = match e {
            CallError::TimedOut { .. } => StatusCode::GATEWAY_TIMEOUT,
            CallError::Failed(_) => StatusCode::BAD_GATEWAY,
        };
        ShopError {
            status,
            message: e.to_string(),
        }
    }
}

/// Parses an id from a path segment: a positive integer.
pub fn parse_id(what: &str, raw: &str) -> Result<i64, ShopError> {
    match raw.parse::<i64>() {
        Ok(id) if id > 0 => Ok(id),
        _ => Err(ShopError::bad_request(format!(
            "{what} must be a positive integer, got {raw:?}"
        ))),
    }
}

/// The query parameters of a request.
#[derive(Debug, Default)]
pub struct Params(HashMap<String, String>);

impl Params {
    /// Parses a raw query string, refusing parameters the route does not know.
    pub fn parse(query: Option<&str>, known: &[&str]) -> Result<Params, ShopError> {
        let mut params = HashMap::new();
        for (key, value) in form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
            if !known.contains(&key.as_ref()) {
                return Err(ShopError::bad_request(format!(
                    "unknown parameter {key:?}; this route takes: {}",
                    known.join(", ")
                )));
            }
            params.insert(key.into_owned(), value.into_owned());
        }
        Ok(Params(params))
    }

    /// An integer parameter within `range`, or `default` when absent.
    pub fn int(
        &self,
        name: &str,
        default: i64,
        range: RangeInclusive<i64>,
    ) -> Result<i64, ShopError> {
        let Some(raw) = self.0.get(name) else {
            return Ok(default);
        };
        match raw.parse::<i64>() {
            Ok(v) if range.contains(&v) => Ok(v),
            _ => Err(ShopError::bad_request(format!(
                "parameter {name} must be an integer from {} to {}, got {raw:?}",
                range.start(),
                range.end()
            ))),
        }
    }

    /// A required, non-empty text parameter.
    pub fn text(&self, name: &str) -> Result<&str, ShopError> {
        match self.0.get(name) {
            Some(v) if !v.is_empty() => Ok(v),
            _ => Err(ShopError::bad_request(format!(
                "parameter {name} is required"
            ))),
        }
    }

    /// A boolean parameter (`true`/`false`, `on`/`off`, `1`/`0`).
    pub fn flag(&self, name: &str) -> Result<Option<bool>, ShopError> {
        match self.0.get(name).map(String::as_str) {
            None => Ok(None),
            Some("true" | "on" | "1") => Ok(Some(true)),
            Some("false" | "off" | "0") => Ok(Some(false)),
            Some(other) => Err(ShopError::bad_request(format!(
                "parameter {name} must be true or false, got {other:?}"
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameters_are_checked_and_named() {
        let p = Params::parse(
            Some("limit=20&reference=ORD%2D1+x"),
            &["limit", "reference"],
        )
        .unwrap();
        assert_eq!(p.int("limit", 50, 1..=200).unwrap(), 20);
        assert_eq!(p.int("before", 7, 1..=200).unwrap(), 7);
        assert_eq!(p.text("reference").unwrap(), "ORD-1 x");
        let e = Params::parse(Some("limit=0"), &["limit"])
            .unwrap()
            .int("limit", 5, 1..=200)
            .unwrap_err();
        assert_eq!(e.status, StatusCode::BAD_REQUEST);
        assert!(
            e.message.contains("limit") && e.message.contains("1 to 200"),
            "{}",
            e.message
        );
        let e = Params::parse(Some("limt=3"), &["limit"]).unwrap_err();
        assert!(e.message.contains("\"limt\""), "{}", e.message);
        assert!(parse_id("order id", "abc")
            .unwrap_err()
            .message
            .contains("\"abc\""));
        assert!(parse_id("order id", "0").is_err());
    }
}
