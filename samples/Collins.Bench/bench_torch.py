#!/usr/bin/env python3
"""Times torch.optim.AdamW(fused=True) on one CUDA tensor of the same size as Collins.Bench --gpu,
next to a device-to-device copy, with CUDA events: median of interleaved repetitions."""
import argparse
import statistics

import torch


def parse_size(s: str) -> int:
    s = s.strip().upper()
    mult = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}.get(s[-1], 1)
    return int(s[:-1] if mult != 1 else s) * mult


def timed(fn, iters: int) -> float:
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    for _ in range(iters):
        fn()
    end.record()
    torch.cuda.synchronize()
    return start.elapsed_time(end) / iters


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--length", default="256M")
    ap.add_argument("--reps", type=int, default=9)
    ap.add_argument("--iters", type=int, default=20)
    args = ap.parse_args()
    d = parse_size(args.length)
    dev = torch.device("cuda")
    p = torch.nn.Parameter(torch.randn(d, device=dev) * 0.1)
    p.grad = torch.randn(d, device=dev) * 1e-3
    opt = torch.optim.AdamW([p], lr=1e-4, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01, fused=True)
    dst = torch.empty_like(p.grad)
    kernels = {
        "device copy (d2d)": (8, lambda: dst.copy_(p.grad)),
        "torch AdamW fused": (28, lambda: opt.step()),
    }
    for _, fn in kernels.values():  # warm-up (allocates the moments)
        fn(); fn()
    torch.cuda.synchronize()
    samples = {k: [] for k in kernels}
    names = list(kernels)
    for r in range(args.reps):
        for j in range(len(names)):
            k = names[(j + r) % len(names)]
            samples[k].append(timed(kernels[k][1], args.iters))
    print(f"torch {torch.__version__}  device {torch.cuda.get_device_name()}  d={args.length} ({d:,} params)")
    print(f"| {'kernel':<20} | {'median ms':>9} | {'GB/s':>7} | {'B/param':>7} |")
    print(f"|{'-' * 22}|{'-' * 11}|{'-' * 9}|{'-' * 9}|")
    for k, (nbytes, _) in kernels.items():
        ms = statistics.median(samples[k])
        print(f"| {k:<20} | {ms:9.3f} | {nbytes * d / (ms * 1e-3) / 1e9:7.1f} | {nbytes:7d} |")


if __name__ == "__main__":
    main()
