#!/usr/bin/env bash
# Device side: unpacks the carried bench (if given the tarball) and runs the GPU benchmark, then
# the PyTorch fused-AdamW comparison when torch is importable. Results go to $OUT (or ./out).
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
