#!/usr/bin/env bash
# Device side: unpacks the carried bench (if given the tarball) and runs the GPU benchmark, then
# the PyTorch fused-AdamW comparison when torch is importable, then writes every generated kernel's
# PTX and assembles it with ptxas -v (registers, spills to local memory). Results go to $OUT (or ./out).
#   bash run-gpu.sh [path/to/collins-bench-linux-x64.tar.xz] [extra Collins.Bench options]
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
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>&1 | tee "$out/nvidia-smi.txt"
export DOTNET_gcServer=0
"$bench/Collins.Bench" --gpu --ratio 32 --reps 9 "$@" 2>&1 | tee "$out/collins-gpu-r32.txt"
"$bench/Collins.Bench" --gpu --ratio 8 --reps 9 "$@" 2>&1 | tee "$out/collins-gpu-r8.txt"
if python3 -c "import torch; assert torch.cuda.is_available()" 2>/dev/null; then
  python3 "$bench/bench_torch.py" --length 256M --reps 9 2>&1 | tee "$out/torch-adamw.txt"
else
  echo "torch with CUDA not available: skipping bench_torch.py" | tee "$out/torch-adamw.txt"
fi
"$bench/Collins.Bench" --dump-ptx "$out/ptx" 2>&1 | tee "$out/ptx-dump.txt"
ptxas_bin="$(command -v ptxas || true)"
if [ -z "$ptxas_bin" ]; then
  triton_ptxas="$(python3 -c 'import os, triton; print(os.path.join(os.path.dirname(triton.__file__), "backends", "nvidia", "bin", "ptxas"))' 2>/dev/null || true)"
  for c in /usr/local/cuda/bin/ptxas "$triton_ptxas"; do
    if [ -n "$c" ] && [ -x "$c" ]; then ptxas_bin="$c"; break; fi
  done
fi
if [ -n "$ptxas_bin" ]; then
  "$ptxas_bin" --version > "$out/ptxas-v.txt" 2>&1
  for f in "$out"/ptx/*.ptx; do echo "== $(basename "$f")"; "$ptxas_bin" -arch=sm_90 -v "$f" -o /dev/null 2>&1; done >> "$out/ptxas-v.txt"
  echo "ptxas: $ptxas_bin; spill lines over every kernel (count, line):" | tee "$out/ptxas-spills.txt"
  grep -E "spill" "$out/ptxas-v.txt" | sed 's/^ptxas info *: *//' | sort | uniq -c | tee -a "$out/ptxas-spills.txt"
else
  echo "ptxas not found (no CUDA toolkit, no triton): PTX is in $out/ptx, not assembled" | tee "$out/ptxas-spills.txt"
fi
