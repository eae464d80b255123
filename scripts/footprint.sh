#!/usr/bin/env bash
# What embedding the agent adds to a service: a small axum 0.7 app (axum, tokio, tracing,
# tracing-subscriber) with a lockfile as of mid-2024 (axum 0.7.5, tokio 1.37, hyper 1.3.1,
# hyper-util 0.1.3), built in release without and with the agent (path dependency, default
# features, not the `axum` feature). Prints which locked versions adding the agent moved, the
# duplicated crates (`cargo tree -d`) before and after, and the binary sizes with and without
# `debug = "line-tables-only"`.
#
#   bash scripts/footprint.sh        # about 10 minutes on 2 cores; needs crates.io through cargo
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export CARGO_TARGET_DIR="$work/target"

app() { # app DIR WITH_AGENT
    mkdir -p "$1/src"
    cat > "$1/Cargo.toml" <<TOML
[package]
name = "app"
version = "0.1.0"
edition = "2021"

[dependencies]
axum = "0.7"
tokio = { version = "1", features = ["rt-multi-thread", "macros", "net"] }
tracing = "0.1"
tracing-subscriber = "0.3"
TOML
    local start=""
    if [ "$2" = yes ]; then
        echo "pyrometer = { path = \"$repo/agent\" }" >> "$1/Cargo.toml"
        # The README's embedding example: a failed start is logged and the app carries on.
        start='let _profiler = pyrometer::Agent::builder().start_or_log();'
    fi
    cat > "$1/src/main.rs" <<RS
use axum::{routing::get, Router};

#[tokio::main]
async fn main() {
    tracing_subscriber::fmt().init();
    $start
    let app = Router::new().route("/", get(|| async { "hello" }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await.unwrap();
    tracing::info!("listening on {}", listener.local_addr().unwrap());
    axum::serve(listener, app).await.unwrap();
}
RS
}

app "$work/base" no
(
    cd "$work/base"
    cargo generate-lockfile --quiet
    cargo update --quiet -p axum --precise 0.7.5
    cargo update --quiet -p tokio --precise 1.37.0
    cargo update --quiet -p hyper --precise 1.3.1
    cargo update --quiet -p hyper-util --precise 0.1.3
)
app "$work/agent" yes
cp "$work/base/Cargo.lock" "$work/agent/Cargo.lock"

versions() { # the locked name@version pairs of a lockfile
    awk '/^name = /{n=$3} /^version = /{gsub(/"/,"",n); v=$3; gsub(/"/,"",v); print n "@" v}' "$1" | sort
}

size() { # size DIR LINE_TABLES(yes|no): release binary size in bytes
    local debug=false
    [ "$2" = yes ] && debug='"line-tables-only"'
    (cd "$1" && CARGO_PROFILE_RELEASE_DEBUG="$debug" cargo build --release --quiet 2>/dev/null)
    stat -c %s "$CARGO_TARGET_DIR/release/app"
}

(cd "$work/agent" && cargo metadata --format-version 1 > /dev/null)
echo "== locked versions adding the agent changed (none means none were moved)"
comm -23 <(versions "$work/base/Cargo.lock") <(versions "$work/agent/Cargo.lock") | sed 's/^/was: /'
for crate in axum tokio hyper hyper-util mio; do
    grep -A1 "^name = \"$crate\"$" "$work/agent/Cargo.lock" | awk -v c="$crate" '/^version/{gsub(/"/,"",$3); printf "%s %s  ", c, $3}'
done
echo
echo
echo "== cargo tree -d, the app alone"
(cd "$work/base" && cargo tree -d -e normal --quiet || true)
echo
echo "== cargo tree -d, the app with the agent"
(cd "$work/agent" && cargo tree -d -e normal --quiet || true)
echo
echo "== release binary size in bytes (built, not stripped)"
printf '%-28s %12s %12s\n' "" "app alone" "with agent"
for lines in no yes; do
    label="debug = false"
    [ "$lines" = yes ] && label='debug = "line-tables-only"'
    base=$(size "$work/base" "$lines")
    with=$(size "$work/agent" "$lines")
    printf '%-28s %12s %12s  (+%s)\n' "$label" "$base" "$with" "$(numfmt --to=iec-i --suffix=B $((with - base)))"
done
