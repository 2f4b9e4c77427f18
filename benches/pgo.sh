#!/usr/bin/env bash
# benches/pgo.sh — builds icp-audit with profile-guided optimization (PGO): the binary the
# benchmark judges its targets on, and the fastest build of the tool we know how to make.
#
# Usage: benches/pgo.sh            prints, on its last line, the path of the binary it built:
#                                  TARGET/pgo/use/release/icp-audit
#
# rustc can instrument a build to count how often each branch and call is taken
# (-Cprofile-generate), and use those counts in a second build (-Cprofile-use) to lay out hot
# code together, inline where calls are frequent and leave cold paths small. The script:
#   1. builds an instrumented binary (TARGET/pgo/gen);
#   2. runs it on a training workload of its own, unlike the benchmark's (seed 7, 200,000
#      instances and requests, where the benchmark uses seed 1 at 1M and 10M): a full run, a run
#      of the same files with CRLF line ends, one with every field quoted, a dry run and a run
#      with --jobs 1, so that the readers and paths the benchmark also times are trained on;
#   3. merges the counts with llvm-profdata (rustup's llvm-tools component, which must match
#      rustc's LLVM: it is added with `rustup component add llvm-tools` when missing);
#   4. builds the optimized binary (TARGET/pgo/use) from the same sources, with the same
#      Cargo.toml profile.
# The same source code, built differently: every test holds for it as for a plain build.
# It takes about two minutes here (two release builds and the training runs).
#
# Exit status: 0 with the binary built; 2 when llvm-profdata cannot be found or added (the
# benchmark then falls back to the plain build and says so); 1 when a step fails.
# CARGO_TARGET_DIR is honoured; RUSTFLAGS, when set, is kept and the PGO flags added to it.

set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
case $TARGET_DIR in /*) ;; *) TARGET_DIR=$ROOT/$TARGET_DIR ;; esac
PGO=$TARGET_DIR/pgo

HOST=$(rustc -vV | sed -n 's/^host: //p')
PROFDATA=$(rustc --print sysroot)/lib/rustlib/$HOST/bin/llvm-profdata
if [[ ! -x $PROFDATA ]]; then
    echo "pgo: llvm-profdata not found; adding rustup's llvm-tools component ..." >&2
    timeout 300 rustup component add llvm-tools >&2 || true
fi
if [[ ! -x $PROFDATA ]]; then
    echo "pgo: no llvm-profdata for this rustc ($PROFDATA): cannot build with PGO" >&2
    exit 2
fi

rm -rf "$PGO/profiles" "$PGO/train"
mkdir -p "$PGO/profiles" "$PGO/train"

echo "pgo: 1/4 instrumented build ..." >&2
(cd "$ROOT" && RUSTFLAGS="${RUSTFLAGS:-} -Cprofile-generate=$PGO/profiles" \
    cargo build --release --locked --quiet --target-dir "$PGO/gen")
GEN=$PGO/gen/release/icp-audit

echo "pgo: 2/4 training runs ..." >&2
T=$PGO/train
AS_OF=2026-11-27T00:00:00Z
"$GEN" generate --out "$T/lf" --instances 200000 --requests 200000 --seed 7 >/dev/null
for variant in crlf quoted; do
    mkdir -p "$T/$variant"
    for f in instances requests ledger; do
        case $variant in
            crlf) sed 's/$/\r/' "$T/lf/$f.csv" >"$T/$variant/$f.csv" ;;
            quoted) sed 's/,/","/g; s/^/"/; s/$/"/' "$T/lf/$f.csv" >"$T/$variant/$f.csv" ;;
        esac
    done
done
train() { # train NAME INPUT [extra args]
    local name=$1 input=$2 rc=0
    shift 2
    "$GEN" run --input "$input" --out "$T/out-$name" --as-of "$AS_OF" --quiet "$@" >/dev/null 2>&1 || rc=$?
    if [[ $rc != 0 ]]; then
        echo "pgo: training run $name failed (exit $rc)" >&2
        exit 1
    fi
}
train lf "$T/lf" --ledger-out "$T/lf.ledger.csv" --timings
train crlf "$T/crlf" --ledger-out "$T/crlf.ledger.csv"
train quoted "$T/quoted" --ledger-out "$T/quoted.ledger.csv"
train dry "$T/lf" --dry-run
train jobs1 "$T/lf" --ledger-out "$T/jobs1.ledger.csv" --jobs 1

echo "pgo: 3/4 merging the profiles ..." >&2
"$PROFDATA" merge -o "$PGO/merged.profdata" "$PGO/profiles"
rm -rf "$T"

echo "pgo: 4/4 optimized build ..." >&2
(cd "$ROOT" && RUSTFLAGS="${RUSTFLAGS:-} -Cprofile-use=$PGO/merged.profdata" \
    cargo build --release --locked --quiet --target-dir "$PGO/use")
echo "$PGO/use/release/icp-audit"
