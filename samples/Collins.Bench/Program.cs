using System.Diagnostics;
using System.Globalization;
using System.Runtime.Intrinsics;
using Collins.Bench;

// Collins.Bench: median of interleaved repetitions of each kernel's whole step, effective GB/s,
// and speed relative to dense fused AdamW (vs_adamw), to a stream triad (vs_limit) and to each kind's own floor from the
// measured floor kernels of the same run (vs_floor; Floors.cs).
//   dotnet run -c Release --project samples/Collins.Bench -- --length 64M --ratio 32 [--reps 7] [--threads N] [--filter text] [--gpu]

CultureInfo.DefaultThreadCurrentCulture = CultureInfo.InvariantCulture;
CultureInfo.CurrentCulture = CultureInfo.InvariantCulture;

var opts = Options.Parse(args);
if (opts is null) return 2;
if (opts.DumpPtx is not null) return PtxDump.Run(opts.DumpPtx);
if (opts.Tunings is not null) return TuningBench.Run(opts);
if (opts.Gpu) return GpuBench.Run(opts);   // with --whole-model: GpuWholeModel
if (opts.WholeModel) return opts.Parts ? WholeModelParts.Run(opts) : WholeModelBench.Run(opts);
return CpuBench.Run(opts);
