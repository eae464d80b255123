//! Building responses: the body type every endpoint answers with, and a profile in the format the
//! request asked for.

use hyper::body::Bytes;
use hyper::header::{self, HeaderValue};
use hyper::StatusCode;

use super::error::ApiError;
use super::params::Format;
use crate::profile::flamegraph::{self, FlamegraphOptions};
use crate::profile::{folded, pprof, Profile};

/// Every answer is built whole before it is sent, so one buffer is all a body needs.
pub type Body = http_body_util::Full<Bytes>;

/// What every endpoint returns, on the agent's own server and merged into an app alike.
pub type Response = hyper::Response<Body>;

/// A response with `status`, `body`, its `Content-Type`, and `Cache-Control: no-store`: profiles
/// and pages describe this moment, so nothing in between should keep them.
pub(crate) fn with_body(
    status: StatusCode,
    content_type: &'static str,
    body: impl Into<Bytes>,
) -> Response {
    let mut response = Response::new(Body::new(body.into()));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// A profile in the asked-for format. `stem` names the downloaded file (`cpu` gives `cpu.pb.gz`).
pub(crate) fn respond(
    profile: &Profile,
    format: Format,
    sample_index: usize,
    title: String,
    stem: &str,
) -> Result<Response, ApiError> {
    let (body, content_type, filename) = match format {
        Format::Pprof => (
            pprof::encode(profile),
            "application/octet-stream",
            format!("{stem}.pb.gz"),
        ),
        Format::Folded => (
            folded::write(profile, sample_index).into_bytes(),
            "text/plain; charset=utf-8",
            format!("{stem}.folded"),
        ),
        Format::Svg => {
            let svg = flamegraph::render(profile, &FlamegraphOptions::new(title, sample_index))
                .map_err(|e| {
                    ApiError::internal(format!("rendering the flame graph failed: {e}"))
                })?;
            (svg, "image/svg+xml", format!("{stem}.svg"))
        }
    };
    let disposition = match format {
        Format::Svg => format!("inline; filename=\"{filename}\""),
        _ => format!("attachment; filename=\"{filename}\""),
    };
    let mut response = with_body(StatusCode::OK, content_type, body);
    if let Ok(value) = HeaderValue::from_str(&disposition) {
        response
            .headers_mut()
            .insert(header::CONTENT_DISPOSITION, value);
    }
    Ok(response)
}
