#!/bin/sh
# Runs fuzz targets for SECONDS (default 240) each, one after the other, from the repository
# root: `fuzz/run-all.sh [SECONDS [TARGET...]]` (default: every target). Needs cargo-fuzz
# (`cargo install cargo-fuzz`) and a nightly toolchain (`cargo +nightly fuzz`, the default
# here), or a stable one with RUSTC_BOOTSTRAP=1 (TOOLCHAIN= RUSTC_BOOTSTRAP=1 fuzz/run-all.sh).
# Extra libFuzzer flags go in FUZZ_ARGS, e.g. FUZZ_ARGS="-fork=1 -ignore_crashes=1" to keep
# going past a known crash. Crashes land in fuzz/artifacts/TARGET/; copy them to
# fuzz/regressions/TARGET/ so that `cargo test`
# replays them. Logs: fuzz/logs/TARGET.log.
set -eu
cd "$(dirname "$0")/.."
SECONDS_EACH=${1:-240}
[ $# -gt 0 ] && shift
TARGETS=${*:-csv_tables ledger policy policy_run verify_code times}
TOOLCHAIN=${TOOLCHAIN-+nightly}
mkdir -p fuzz/logs
for target in $TARGETS; do
    case $target in
        csv_tables | ledger) dict=fuzz/dicts/csv.dict ;;
        policy | policy_run) dict=fuzz/dicts/policy.dict ;;
        *) dict= ;;
    esac
    mkdir -p "fuzz/corpus/$target"
    echo "== $target: $SECONDS_EACH s"
    # shellcheck disable=SC2086
    cargo $TOOLCHAIN fuzz run -O "$target" "fuzz/corpus/$target" "fuzz/seeds/$target" -- \
        -max_total_time="$SECONDS_EACH" -timeout=10 -rss_limit_mb=2048 -max_len=65536 \
        ${dict:+-dict=$dict} -print_final_stats=1 ${FUZZ_ARGS:-} 2>&1 |
        tee "fuzz/logs/$target.log" | tail -12
done
