#!/usr/bin/env bash
# The project's tests, exactly as CI runs them: formatting, lints, then every test of the workspace.
# Some tests use go tool pprof (Debian: golang-go) and headless Chromium (chromium, chromium-driver);
# .ci/run installs them on a fresh machine.
set -euo pipefail
cd "$(dirname "$0")/.."

cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings
cargo test --workspace --locked
# The endpoints merged into an axum app need the optional `axum` feature.
cargo test -p pyrometer --features axum --test router_http --locked
