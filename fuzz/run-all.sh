#!/bin/sh
# Runs every fuzz target for SECONDS (default 240) each, one after the other, from the
# repository root. Needs cargo-fuzz (`cargo install cargo-fuzz`) and a nightly toolchain
# (`cargo +nightly fuzz`), or a stable one with RUSTC_BOOTSTRAP=1. Crashes land in
# fuzz/artifacts/TARGET/; copy them to fuzz/regressions/TARGET/ so that `cargo test` replays them.
set -eu
cd "$(dirname "$0")/.."
SECONDS_EACH=${1:-240}
TOOLCHAIN=${TOOLCHAIN:-+nightly}
mkdir -p fuzz/logs
for target in csv_tables ledger policy policy_run verify_code times; do
    case $target in
        csv_tables | ledger) dict=fuzz/dicts/csv.dict ;;
        policy | policy_run) dict=fuzz/dicts/policy.dict ;;
        *) dict= ;;
    esac
    mkdir -p "fuzz/corpus/$target"
    echo "== $target: $SECONDS_EACH s"
    cargo $TOOLCHAIN fuzz run -O "$target" "fuzz/corpus/$target" "fuzz/seeds/$target" -- \
        -max_total_time="$SECONDS_EACH" -timeout=10 -rss_limit_mb=2048 -max_len=65536 \
        ${dict:+-dict=$dict} -print_final_stats=1 2>&1 | tee "fuzz/logs/$target.log" | tail -25
done
