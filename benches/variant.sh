#!/usr/bin/env bash
# benches/variant.sh VARIANT IN OUT — writes the three input files of folder IN into folder OUT
# (made if missing) as other exporters write them: VARIANT `crlf` with CRLF line ends (Windows),
# `quoted` with every field quoted (the header too). Used by run.sh (step 5) and pgo.sh (training).
set -euo pipefail
variant=$1 in=$2 out=$3
mkdir -p "$out"
for f in instances requests ledger; do
    case $variant in
        crlf) sed 's/$/\r/' "$in/$f.csv" >"$out/$f.csv" ;;
        quoted) sed 's/,/","/g; s/^/"/; s/$/"/' "$in/$f.csv" >"$out/$f.csv" ;;
        *) echo "variant.sh: unknown variant $variant" >&2; exit 1 ;;
    esac
done
