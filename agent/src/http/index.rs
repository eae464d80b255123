//! `GET /debug/pprof/`: what can be taken, a form for each, and what it costs the service.

use hyper::header::{self, HeaderValue};
use hyper::StatusCode;

use super::{process_name, with_body, Response, Shared};

/// `/debug/pprof` to `/debug/pprof/`, so that the page's relative form actions resolve.
pub(super) fn redirect() -> Response {
    let mut response = Response::default();
    *response.status_mut() = StatusCode::PERMANENT_REDIRECT;
    response
        .headers_mut()
        .insert(header::LOCATION, HeaderValue::from_static("/debug/pprof/"));
    response
}

pub(super) fn page(shared: &Shared) -> Response {
    let max = shared.config.max_seconds;
    let cpu_state = match crate::cpu::status() {
        Some(s) => format!(
            "running ({} engine, {} Hz, {} window(s)), about {} s left",
            s.engine,
            s.frequency,
            s.windows,
            s.ends_in.as_secs()
        ),
        None => "idle".to_string(),
    };
    let heap_state = super::heap::status();
    let spans_state = super::spans::status();
    let limits_state = shared.windows.status();
    let memory_state = crate::memory::status();
    let name = process_name();
    let pid = std::process::id();
    let html = format!(
        r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>pyrometer: {name}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2em; max-width: 60em; }}
table {{ border-collapse: collapse; }} td, th {{ border: 1px solid #ccc; padding: .4em .7em; text-align: left; vertical-align: top; }}
code {{ background: #f4f4f4; padding: 0 .2em; }}
</style></head>
<body>
<h1>pyrometer: {name} (pid {pid})</h1>
<p>CPU profiler: <strong id="cpu-state">{cpu_state}</strong>.</p>
<p>Heap profiler: <strong id="heap-state">{heap_state}</strong>.</p>
<p>Span recording: <strong id="spans-state">{spans_state}</strong>.</p>
<p>Limits: <strong id="limits-state">{limits_state}</strong>.</p>
<p>Memory returned: <strong id="memory-state">{memory_state}</strong>.</p>
<table>
<tr><th>profile</th><th>what it shows</th><th>what it costs the service</th><th>take one</th></tr>
<tr><td><code>profile</code></td>
<td>CPU time by stack, all threads, sampled on SIGPROF.</td>
<td>While running: about 1% of throughput at 99 Hz, a few percent at 999 Hz; nothing when idle. Windows at the running rate or at the default 99 Hz share one sampler.</td>
<td><form action="profile" method="get">
<label>seconds <input name="seconds" type="number" min="1" max="{max}" value="30"></label>
<label>frequency <input name="frequency" type="number" min="1" max="1000" value="99"></label>
<select name="format"><option value="svg">svg</option><option value="pprof">pprof</option><option value="folded">folded</option></select>
<button type="submit">take</button></form></td></tr>
<tr><td><code>heap</code></td>
<td>Memory held now (<code>inuse_space</code>) and allocated since start, by stack; with seconds, the change over the window.</td>
<td>With the sampling allocator installed: a thread-local subtraction per allocation, a stack walk once per 512 KiB allocated on average; nothing more while a profile is taken.</td>
<td><form action="heap" method="get">
<label>seconds (empty: now) <input name="seconds" type="number" min="1" max="{max}"></label>
<select name="format"><option value="svg">svg</option><option value="pprof">pprof</option><option value="folded">folded</option></select>
<select name="sample_index"><option>inuse_space</option><option>inuse_objects</option><option>alloc_space</option><option>alloc_objects</option></select>
<button type="submit">take</button></form></td></tr>
<tr><td><code>allocs</code></td>
<td>Where the code allocates most (<code>alloc_space</code>): allocation pressure in hot paths, since start or over a window.</td>
<td>As for heap.</td>
<td><form action="allocs" method="get">
<label>seconds <input name="seconds" type="number" min="1" max="{max}" value="30"></label>
<select name="format"><option value="svg">svg</option><option value="pprof">pprof</option><option value="folded">folded</option></select>
<select name="sample_index"><option>alloc_space</option><option>alloc_objects</option><option>inuse_space</option><option>inuse_objects</option></select>
<button type="submit">take</button></form></td></tr>
<tr><td><code>spans</code></td>
<td>Wall time of request spans by route and nested span, split into busy (polled) and waiting: where requests wait on the database or other services.</td>
<td>Nothing when no window is open (one atomic load per span callback); while open, a clock read per span enter and exit and the fields it keeps.</td>
<td><form action="spans" method="get">
<label>seconds <input name="seconds" type="number" min="1" max="{max}" value="30"></label>
<select name="format"><option value="svg">svg</option><option value="pprof">pprof</option><option value="folded">folded</option></select>
<select name="sample_index"><option>wall</option><option>busy</option><option>waiting</option></select>
<button type="submit">take</button></form></td></tr>
<tr><td><code>diagnose</code></td>
<td>Per-route p50/p95/p99 latency, queries and calls per request, and the problems found: N+1 queries, sequential calls, slow queries, a connection per request, calls without timeouts.</td>
<td>As for spans.</td>
<td><form action="diagnose" method="get">
<label>seconds <input name="seconds" type="number" min="1" max="{max}" value="30"></label>
<select name="format"><option value="html">html</option><option value="text">text</option><option value="json">json</option></select>
<button type="submit">take</button></form></td></tr>
</table>
<p>From a shell: <code>curl -o cpu.pb.gz 'http://HOST/debug/pprof/profile?seconds=30'</code>, then
<code>go tool pprof -http=: cpu.pb.gz</code> or <code>pyrometer flamegraph cpu.pb.gz</code>.</p>
</body></html>
"#
    );
    with_body(StatusCode::OK, "text/html; charset=utf-8", html)
}
