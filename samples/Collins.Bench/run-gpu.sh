#!/usr/bin/env bash
# Device side: unpacks the carried bench (if given the tarball), then, each step under its own time cap (the caps add up to
# 7 min 45 s; the steps are expected to take a few minutes in all), most valuable first:
#   1. --gpu at Ratio 32: copy, triad, dense AdamW, the generated optimizers and the run-time rows (Rotation control, Factored
#      β1 = 0, clip = 1, q8 / q8 sr / q4 / q4 sr, Rotation clipnorm = 1) on one tensor of the largest size that fits (256M);
#   2. --gpu --whole-model: the generated GPT-2-small optimizers' device step over the 148 tensors;
#   3. bench_torch.py (torch.optim.AdamW fused) when torch with CUDA is importable;
#   4. --gpu at Ratio 8 (the same rows; the factored ones do not depend on the ratio);
#   5. every generated kernel's PTX (and the factored kernels'), assembled with ptxas -v (registers, spills to local memory).
# Results go to $OUT (or ./out); steps.txt records each step's exit code and seconds (124 = it hit its cap).
#   bash run-gpu.sh [path/to/collins-bench-linux-x64.tar.xz] [extra Collins.Bench options for the --gpu steps]
set -uo pipefail
out="${OUT:-$PWD/out}"
mkdir -p "$out"
here="$(cd "$(dirname "$0")" && pwd)"
if [ $# -ge 1 ] && [ -f "$1" ]; then
  dir="$(mktemp -d)"
  tar -C "$dir" -xJf "$1"
  bench="$dir/collins-bench"
  shift
else
  bench="$here"
fi
: > "$out/steps.txt"
# step NAME CAP_SECONDS OUTFILE COMMAND...: runs COMMAND under `timeout CAP`, output to the terminal and $out/OUTFILE.
step() {
  local name="$1" cap="$2" file="$3"; shift 3
  local t0=$SECONDS
  timeout --kill-after=10 "$cap" "$@" 2>&1 | tee "$out/$file"
  local rc=${PIPESTATUS[0]}
  echo "$name rc=$rc seconds=$((SECONDS - t0)) cap=$cap" | tee -a "$out/steps.txt"
}
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>&1 | tee "$out/nvidia-smi.txt"
export DOTNET_gcServer=0
step gpu-r32 120 collins-gpu-r32.txt "$bench/Collins.Bench" --gpu --ratio 32 --reps 9 "$@"
step gpu-whole-model 150 collins-gpu-whole-model.txt "$bench/Collins.Bench" --gpu --whole-model --reps 9 "$@"
if python3 -c "import torch; assert torch.cuda.is_available()" 2>/dev/null; then
  step torch 45 torch-adamw.txt python3 "$bench/bench_torch.py" --length 256M --reps 9
else
  echo "torch with CUDA not available: skipping bench_torch.py" | tee "$out/torch-adamw.txt"
fi
step gpu-r8 75 collins-gpu-r8.txt "$bench/Collins.Bench" --gpu --ratio 8 --reps 9 "$@"
step dump-ptx 30 ptx-dump.txt "$bench/Collins.Bench" --dump-ptx "$out/ptx"
ptxas_bin="$(command -v ptxas || true)"
if [ -z "$ptxas_bin" ]; then
  triton_ptxas="$(python3 -c 'import os, triton; print(os.path.join(os.path.dirname(triton.__file__), "backends", "nvidia", "bin", "ptxas"))' 2>/dev/null || true)"
  for c in /usr/local/cuda/bin/ptxas "$triton_ptxas"; do
    if [ -n "$c" ] && [ -x "$c" ]; then ptxas_bin="$c"; break; fi
  done
fi
if [ -n "$ptxas_bin" ]; then
  t0=$SECONDS
  "$ptxas_bin" --version > "$out/ptxas-v.txt" 2>&1
  for f in "$out"/ptx/*.ptx; do
    if [ $((SECONDS - t0)) -ge 45 ]; then echo "ptxas: stopped at its 45 s cap before $(basename "$f")"; break; fi
    echo "== $(basename "$f")"; timeout 10 "$ptxas_bin" -arch=sm_90 -v "$f" -o /dev/null 2>&1
  done >> "$out/ptxas-v.txt"
  echo "ptxas: $ptxas_bin; spill lines over every kernel (count, line):" | tee "$out/ptxas-spills.txt"
  grep -E "spill" "$out/ptxas-v.txt" | sed 's/^ptxas info *: *//' | sort | uniq -c | tee -a "$out/ptxas-spills.txt"
  echo "ptxas seconds=$((SECONDS - t0)) cap=45" | tee -a "$out/steps.txt"
else
  echo "ptxas not found (no CUDA toolkit, no triton): PTX is in $out/ptx, not assembled" | tee "$out/ptxas-spills.txt"
fi
