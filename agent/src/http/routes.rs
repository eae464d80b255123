//! Which endpoint answers a request: the token check first (so that even a 404 says nothing to a
//! client without the token), then the method, then the path. A table of seven paths needs no
//! router; keeping this to plain `http` types is what lets the agent serve itself on hyper alone
//! and also be mounted in an axum app (see `merge`) with one implementation.

use hyper::http::request::Parts;
use hyper::Method;

use super::error::ApiError;
use super::{auth, cpu, heap, index, spans, Response, Shared};

/// Answers one request. Only the head is needed: no endpoint reads a body.
pub(crate) async fn handle(shared: &Shared, request: &Parts) -> Response {
    answer(shared, request)
        .await
        .unwrap_or_else(ApiError::into_response)
}

async fn answer(shared: &Shared, request: &Parts) -> Result<Response, ApiError> {
    auth::check(shared.config.token.as_deref(), &request.headers)?;
    let path = request.uri.path();
    let endpoint = Endpoint::at(path).ok_or_else(|| ApiError::not_found(path))?;
    if request.method != Method::GET && request.method != Method::HEAD {
        return Err(ApiError::method_not_allowed(&request.method, path));
    }
    let query = request.uri.query();
    match endpoint {
        Endpoint::Redirect => Ok(index::redirect()),
        Endpoint::Index => Ok(index::page(shared)),
        Endpoint::Cpu => cpu::profile(shared, query).await,
        Endpoint::Heap => heap::heap(shared, query).await,
        Endpoint::Allocs => heap::allocs(shared, query).await,
        Endpoint::Spans => spans::spans(shared, query).await,
        Endpoint::Diagnose => spans::diagnose(shared, query).await,
    }
}

enum Endpoint {
    Redirect,
    Index,
    Cpu,
    Heap,
    Allocs,
    Spans,
    Diagnose,
}

impl Endpoint {
    fn at(path: &str) -> Option<Endpoint> {
        Some(match path {
            "/debug/pprof" => Endpoint::Redirect,
            "/debug/pprof/" => Endpoint::Index,
            "/debug/pprof/profile" => Endpoint::Cpu,
            "/debug/pprof/heap" => Endpoint::Heap,
            "/debug/pprof/allocs" => Endpoint::Allocs,
            "/debug/pprof/spans" => Endpoint::Spans,
            "/debug/pprof/diagnose" => Endpoint::Diagnose,
            _ => return None,
        })
    }
}
