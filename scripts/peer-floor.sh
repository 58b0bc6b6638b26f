#!/usr/bin/env bash
# The floor of BENCHMARKS.md ("The floor: a proxy that only forwards bytes"): examples/floor_proxy.rs,
# an HTTP proxy on the gateway's own runtime, allocator and upstream client that forwards calls
# byte for byte (unary answers and SSE streams), measured beside the gateway against the same
# fake in one run.
# Optional and not part of `cargo test`.
#
#   scripts/peer-floor.sh            # full counts; add --quick for a short run
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --example floor_proxy
exec cargo bench --bench gateway -- "$@" --peer-cmd "exec '$PWD/target/release/examples/floor_proxy'"
