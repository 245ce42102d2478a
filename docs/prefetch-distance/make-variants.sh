#!/bin/bash
# make-variants.sh NAME ACCUMULATE APPLY SKETCH ... : for each quadruple, a copy of HEAD under $VARIANTS/NAME (default
# /tmp/tunevar) with RotationCpu's AccumulatePrefetchAhead, PrefetchAhead and SketchPrefetchAhead set, and its bench built.
set -euo pipefail
root=${VARIANTS:-/tmp/tunevar}
repo=$(git rev-parse --show-toplevel)
while (($# >= 4)); do
  name=$1 acc=$2 app=$3 sk=$4; shift 4
  d=$root/$name; rm -rf "$d"; mkdir -p "$d"
  git -C "$repo" archive HEAD | tar -x -C "$d"
  f=$d/src/Collins/Kernels/RotationCpu.cs
  sed -i -E "s/(const int AccumulatePrefetchAhead = )[0-9]+;/\1$acc;/; s/(const int PrefetchAhead = )[0-9]+;/\1$app;/; s/(const int SketchPrefetchAhead = )[0-9]+;/\1$sk;/" "$f"
  [ "$(grep -cE "const int (AccumulatePrefetchAhead = $acc|PrefetchAhead = $app|SketchPrefetchAhead = $sk);" "$f")" = 3 ] || { echo "$name: constants not found in $f" >&2; exit 1; }
  dotnet build -c Release "$d/samples/Collins.Bench" -v q
done
