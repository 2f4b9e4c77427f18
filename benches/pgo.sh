#!/usr/bin/env bash
# benches/pgo.sh — builds icp-audit with profile-guided optimization (PGO): the binary the
# benchmark judges its targets on, and the fastest build of the tool we know how to make.
#
# Usage: benches/pgo.sh            prints, on its last line, the path of the binary it built:
#                                  TARGET/pgo/use/HOST/release/icp-audit
#
# rustc can instrument a build to count how often each branch and call is taken
# (-Cprofile-generate), and use those counts in a second build (-Cprofile-use) to lay out hot
# code together, inline where calls are frequent and leave cold paths small. The script:
#   1. builds an instrumented binary (TARGET/pgo/gen);
#   2. runs it on a training workload of its own, unlike the benchmark's (seed 7, 200,000
#      instances and requests, where the benchmark uses seed 1 at 1M and 10M): a full run, a run
#      of the same files with CRLF line ends, one with every field quoted, a dry run, a run
#      with --jobs 1 and one that updates its ledger in place (the nightly default), so that the
#      readers and paths the benchmark and a nightly run take are trained on;
#   3. merges the counts with llvm-profdata (rustup's llvm-tools component, which must match
#      rustc's LLVM: it is added with `rustup component add llvm-tools`, a download, when
#      missing; LLVM_PROFDATA names another one of the same LLVM version);
#   4. builds the optimized binary (TARGET/pgo/use) from the same sources, with the same
#      Cargo.toml profile.
# The same source code, built differently: CI runs every test again on the binary of step 4.
# Both builds name the host as their target (--target HOST), so that the PGO flags reach the
# program and its crates but not the build scripts. The build is made again on every call
# (about two minutes here: two release builds and the training runs); it takes about 0.6 GB
# under TARGET/pgo, and 0.8 GB more for the training files while it runs. Copy the binary out
# (`install -m 755 "$(benches/pgo.sh | tail -n 1)" /usr/local/bin/icp-audit`) rather than
# running it from TARGET: the next call, or `cargo clean`, replaces or removes it.
#
# Exit status: 0 with the binary built; 2 when no llvm-profdata can be found or added (the
# benchmark then judges the plain build and says so); 1 when any other step fails.
# CARGO_TARGET_DIR and RUSTC are honoured. Flags in RUSTFLAGS or CARGO_ENCODED_RUSTFLAGS are kept
# and the PGO flags added to them (as CARGO_ENCODED_RUSTFLAGS, so that paths may hold spaces);
# like any RUSTFLAGS, they replace the build.rustflags of a .cargo/config.toml.

set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT" # the toolchain a rustup override or a toolchain file names for this checkout
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
case $TARGET_DIR in /*) ;; *) TARGET_DIR=$ROOT/$TARGET_DIR ;; esac
PGO=$TARGET_DIR/pgo
RUSTC=${RUSTC:-rustc}

HOST=$("$RUSTC" -vV | sed -n 's/^host: //p')
PROFDATA=${LLVM_PROFDATA:-$("$RUSTC" --print sysroot)/lib/rustlib/$HOST/bin/llvm-profdata}
if [[ ! -x $PROFDATA && -z ${LLVM_PROFDATA:-} ]]; then
    echo "pgo: llvm-profdata not found; adding rustup's llvm-tools component (a download) ..." >&2
    if command -v timeout >/dev/null; then
        timeout 300 rustup component add llvm-tools >&2 || true
    else
        rustup component add llvm-tools >&2 || true
    fi
fi
if [[ ! -x $PROFDATA ]]; then
    echo "pgo: no llvm-profdata for this rustc ($PROFDATA): cannot build with PGO" >&2
    exit 2
fi
# From here on every failure is a failed step (exit 1), whatever the failing command's own
# status: 2 is kept for the missing llvm-profdata, on which the benchmark falls back.
set -E
trap 'exit 1' ERR

mkdir -p "$PGO"
# One build at a time per target folder (a benchmark and CI in one checkout).
if command -v flock >/dev/null; then
    exec 9>"$PGO/.lock"
    flock 9
fi
T=$PGO/train
rm -rf "$PGO/profiles" "$T"
mkdir -p "$PGO/profiles" "$T"
trap 'rm -rf "$T"' EXIT

# The caller's flags, one per element, with the PGO flag added: passed to cargo as
# CARGO_ENCODED_RUSTFLAGS (flags separated by the unit separator), which it prefers to RUSTFLAGS.
flags() { # flags EXTRA: prints the encoded flags
    local base=() out
    if [[ -n ${CARGO_ENCODED_RUSTFLAGS:-} ]]; then
        IFS=$'\x1f' read -r -a base <<<"$CARGO_ENCODED_RUSTFLAGS"
    elif [[ -n ${RUSTFLAGS:-} ]]; then
        read -r -a base <<<"$RUSTFLAGS"
    fi
    out=$(printf '%s\x1f' "${base[@]}" "$1")
    printf '%s' "${out%$'\x1f'}"
}
build() { # build DIR FLAG
    env -u RUSTFLAGS CARGO_ENCODED_RUSTFLAGS="$(flags "$2")" \
        cargo build --release --locked --quiet --target "$HOST" --target-dir "$1"
}

echo "pgo: 1/4 instrumented build ..." >&2
build "$PGO/gen" "-Cprofile-generate=$PGO/profiles"
GEN=$PGO/gen/$HOST/release/icp-audit

echo "pgo: 2/4 training runs ..." >&2
AS_OF=2026-11-27T00:00:00Z
"$GEN" generate --out "$T/lf" --instances 200000 --requests 200000 --seed 7 >/dev/null
for variant in crlf quoted; do
    bash "$ROOT/benches/variant.sh" "$variant" "$T/lf" "$T/$variant"
done
train() { # train NAME INPUT [extra args]
    local name=$1 input=$2 rc=0
    shift 2
    "$GEN" run --input "$input" --out "$T/out-$name" --as-of "$AS_OF" --quiet "$@" \
        >/dev/null 2>"$T/$name.err" || rc=$?
    if [[ $rc != 0 ]]; then
        echo "pgo: training run $name failed (exit $rc):" >&2
        sed 's/^/  | /' "$T/$name.err" >&2
        exit 1
    fi
}
train lf "$T/lf" --ledger-out "$T/lf.ledger.csv" --timings
train crlf "$T/crlf" --ledger-out "$T/crlf.ledger.csv"
train quoted "$T/quoted" --ledger-out "$T/quoted.ledger.csv"
train dry "$T/lf" --dry-run
train jobs1 "$T/lf" --ledger-out "$T/jobs1.ledger.csv" --jobs 1
cp "$T/lf/ledger.csv" "$T/in-place.ledger.csv" # the nightly default: the ledger updated in place
train in-place "$T/lf" --ledger "$T/in-place.ledger.csv"

echo "pgo: 3/4 merging the profiles ..." >&2
"$PROFDATA" merge -o "$PGO/merged.profdata" "$PGO/profiles"

echo "pgo: 4/4 optimized build ..." >&2
build "$PGO/use" "-Cprofile-use=$PGO/merged.profdata"
# The flags of that build, encoded as cargo takes them, for building its tests the same way
# (.ci/run): CARGO_ENCODED_RUSTFLAGS="$(cat TARGET/pgo/use.flags)" cargo test --release
# --target HOST --target-dir TARGET/pgo/use.
flags "-Cprofile-use=$PGO/merged.profdata" >"$PGO/use.flags"
echo "$PGO/use/$HOST/release/icp-audit"
