//! A diagnosis as text (for a terminal), JSON (for scripts) or HTML (for a browser).

use std::fmt::Write;

use super::diagnose::Report;

pub fn json(report: &Report) -> String {
    serde_json::to_string_pretty(report).expect("a report always serializes")
}

pub fn text(report: &Report) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "pyrometer diagnose: {:.1} s window, {} requests{}",
        report.seconds,
        report.requests,
        dropped_note(report)
    );
    if report.routes.is_empty() {
        out.push_str(
            "\nno requests finished in the window (is the service busy, and are its requests in spans with http.route?)\n",
        );
    } else {
        let _ = writeln!(
            out,
            "\n{:<32} {:>8} {:>9} {:>9} {:>9} {:>9} {:>12} {:>12}",
            "route", "requests", "p50 ms", "p95 ms", "p99 ms", "max ms", "queries/req", "calls/req"
        );
        for r in &report.routes {
            let _ = writeln!(
                out,
                "{:<32} {:>8} {:>9.1} {:>9.1} {:>9.1} {:>9.1} {:>7.1} ({:>2}) {:>7.1} ({:>2})",
                r.route,
                r.requests,
                r.p50_ms,
                r.p95_ms,
                r.p99_ms,
                r.max_ms,
                r.queries_mean,
                r.queries_max,
                r.calls_mean,
                r.calls_max
            );
        }
    }
    if report.findings.is_empty() {
        out.push_str("\nno problems found\n");
    } else {
        let _ = writeln!(
            out,
            "\nfindings ({}), costliest first:",
            report.findings.len()
        );
        for (i, f) in report.findings.iter().enumerate() {
            let _ = writeln!(out, "\n{}. {} on {}", i + 1, f.title, f.route);
            let _ = writeln!(out, "   {}", f.pattern);
            let _ = writeln!(
                out,
                "   {} occurrences in {} requests, {:.0} ms",
                f.occurrences, f.requests, f.cost_ms
            );
            let _ = writeln!(out, "   example: {}", f.example);
            let _ = writeln!(out, "   fix: {}", f.hint);
        }
    }
    out
}

pub fn html(report: &Report) -> String {
    let mut out = String::from(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>pyrometer diagnose</title>\
         <style>body{font-family:system-ui,sans-serif;margin:2em}table{border-collapse:collapse}\
         td,th{border:1px solid #ccc;padding:.3em .6em;text-align:right}td:first-child,th:first-child{text-align:left}\
         code{background:#f4f4f4}.finding{margin:1em 0;padding:.5em 1em;border-left:4px solid #c33}</style></head><body>",
    );
    let _ = write!(
        out,
        "<h1>Diagnosis: {:.1} s window, {} requests{}</h1>",
        report.seconds,
        report.requests,
        escape(&dropped_note(report))
    );
    out.push_str("<table><tr><th>route</th><th>requests</th><th>p50 ms</th><th>p95 ms</th><th>p99 ms</th><th>max ms</th><th>queries/req (max)</th><th>calls/req (max)</th></tr>");
    for r in &report.routes {
        let _ = write!(
            out,
            "<tr><td>{}</td><td>{}</td><td>{:.1}</td><td>{:.1}</td><td>{:.1}</td><td>{:.1}</td><td>{:.1} ({})</td><td>{:.1} ({})</td></tr>",
            escape(&r.route), r.requests, r.p50_ms, r.p95_ms, r.p99_ms, r.max_ms, r.queries_mean,
            r.queries_max, r.calls_mean, r.calls_max
        );
    }
    out.push_str("</table>");
    let _ = write!(out, "<h2>Findings ({})</h2>", report.findings.len());
    if report.findings.is_empty() {
        out.push_str("<p>No problems found.</p>");
    }
    for f in &report.findings {
        let _ = write!(
            out,
            "<div class=\"finding\" data-kind=\"{}\"><h3>{} on {}</h3><p><code>{}</code></p>\
             <p>{} occurrences in {} requests, {:.0} ms. Example: {}</p><p>Fix: {}</p></div>",
            serde_json::to_value(f.kind)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default(),
            escape(f.title),
            escape(&f.route),
            escape(&f.pattern),
            f.occurrences,
            f.requests,
            f.cost_ms,
            escape(&f.example),
            escape(&f.hint)
        );
    }
    out.push_str("</body></html>\n");
    out
}

fn dropped_note(report: &Report) -> String {
    match (report.dropped_requests, report.dropped_spans) {
        (0, 0) => String::new(),
        (r, s) => format!(" (window full: {r} requests and {s} spans left out)"),
    }
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}
