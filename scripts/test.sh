#!/bin/sh
# Set up and run every test: formatting, lints, unit tests, store conformance, the API over
# HTTPS, kubectl end to end and crash safety. Run as root from the repository root.
set -eu
cd "$(dirname "$0")/.."

./scripts/setup.sh
cargo fmt --all -- --check
cargo clippy --all-targets --locked -- -D warnings
cargo build --locked --bins
cargo test --locked --lib --bins --tests -- --test-threads 2
