#!/usr/bin/env bash
# Publishes Collins.Bench self-contained for linux-x64 (untrimmed: the bench binds the generated
# optimizers by reflection) and packs it, with the device-side scripts, into
# .carry/collins-bench-linux-x64.tar.xz (an ignored folder) for a GPU machine without a .NET SDK.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
out="$root/.carry"
stage="$out/stage"
rm -rf "$stage"
mkdir -p "$stage/collins-bench"
dotnet publish "$root/samples/Collins.Bench/Collins.Bench.csproj" -c Release -r linux-x64 --self-contained true \
  -p:PublishTrimmed=false -p:PublishSingleFile=false -p:DebugType=none -p:GenerateDocumentationFile=false \
  -o "$stage/collins-bench" --nologo -v quiet
cp "$root/samples/Collins.Bench/run-gpu.sh" "$root/samples/Collins.Bench/bench_torch.py" "$stage/collins-bench/"
chmod +x "$stage/collins-bench/run-gpu.sh" "$stage/collins-bench/Collins.Bench"
tar -C "$stage" -cJf "$out/collins-bench-linux-x64.tar.xz" collins-bench
rm -rf "$stage"
bytes=$(stat -c %s "$out/collins-bench-linux-x64.tar.xz")
echo "packed $out/collins-bench-linux-x64.tar.xz: $bytes bytes ($((bytes / 1048576)) MiB)"
if [ "$bytes" -ge $((64 * 1048576)) ]; then echo "error: over the 64 MiB carry limit" >&2; exit 1; fi
