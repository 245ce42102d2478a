namespace Collins.Kernels;

/// <summary>
/// The memory-access tuning of the CPU kernels: software-prefetch distances (0: leave the stream to the hardware prefetchers)
/// and whether large Rotation tensors write their phase-1 sums with non-temporal stores. None of it changes a result — a
/// prefetch is a hint and a non-temporal store writes the same value — so every choice keeps the kernels bit-identical.
/// Read once per process (static readonly: the JIT folds the values into the kernels).
/// </summary>
/// <remarks>
/// <c>COLLINS_CPU_TUNING</c> overrides any value for measurements, e.g. <c>accumulate=0,rows=256,sketch=64,dense=256,nontemporal=1</c>;
/// the defaults and how they were chosen: docs/benchmarks.md.
/// </remarks>
internal static class CpuTuning
{
    /// <summary>Floats ahead in each row that the Rotation phase 1 prefetches.</summary>
    public static readonly int AccumulatePrefetch;
    /// <summary>Floats ahead in each row (p, and g when β1 = 0) that the Rotation phase 2 prefetches.</summary>
    public static readonly int RowPrefetch;
    /// <summary>Buckets ahead in the moments and workspace that the fused Rotation phase 2 prefetches.</summary>
    public static readonly int SketchPrefetch;
    /// <summary>Floats ahead in each of dense AdamW's streams.</summary>
    public static readonly int DensePrefetch;
    /// <summary>Whether Rotation tensors of at least <see cref="KernelTiles.NonTemporalSumsMinLength"/> entries write their sums non-temporally.</summary>
    public static readonly bool NonTemporalSums;

#pragma warning disable CA1810 // static readonly fields filled from one parse: an explicit static constructor is the clear form
    static CpuTuning()
#pragma warning restore CA1810
    {
        AccumulatePrefetch = 128;
        RowPrefetch = 256;
        SketchPrefetch = 64;
        DensePrefetch = 256;
        NonTemporalSums = true;
        string? overrides = Environment.GetEnvironmentVariable("COLLINS_CPU_TUNING");
        if (string.IsNullOrWhiteSpace(overrides)) return;
        foreach (var part in overrides.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            var kv = part.Split('=', 2, StringSplitOptions.TrimEntries);
            if (kv.Length != 2 || !int.TryParse(kv[1], System.Globalization.NumberStyles.Integer, System.Globalization.CultureInfo.InvariantCulture, out int value) || value < 0)
                continue;
            switch (kv[0])
            {
                case "accumulate": AccumulatePrefetch = value; break;
                case "rows": RowPrefetch = value; break;
                case "sketch": SketchPrefetch = value; break;
                case "dense": DensePrefetch = value; break;
                case "nontemporal": NonTemporalSums = value != 0; break;
            }
        }
    }
}
