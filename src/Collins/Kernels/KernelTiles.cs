namespace Collins.Kernels;

// The one tile table of the CPU engine (CpuTensorKernel): every optimizer, generated or run-time, cuts every tensor
// into these tiles, which is part of why they are bit-identical.
/// <summary>
/// The fixed CPU partition of every kind of tensor (never the thread count: results are bit-identical for any
/// <c>MaxThreads</c>). The Rotation tiles and store kind, which change no value, are the CPU's (<see cref="CpuTuning"/>).
/// Why these values: docs/benchmarks.md.
/// </summary>
internal static class KernelTiles
{
    /// <summary>Buckets per tile of the Universal moment update (<c>RotationCpu.UpdateBuckets</c> / <c>UpdateBucketsMean</c>).</summary>
    public const int UniversalBucketTile = 4096;

    /// <summary>Entries per tile of the Universal gather and of dense AdamW.</summary>
    public const int ElementTile = 16384;

    /// <summary>
    /// Tensors of at most this many entries may be stepped whole, one thread each, in a batch of tensors (<see cref="TensorBatch"/>)
    /// rather than each in its own parallel run; larger ones always run their own tiles in parallel.
    /// </summary>
    public const int BatchedTensorMaxLength = 1 << 22;

    /// <summary>
    /// A batch of small tensors (<see cref="TensorBatch"/>) is run only when its tensors hold at least this many entries together:
    /// below it, waking the pool costs about what it saves, and the tensors run one by one as before (a tensor of one tile inline).
    /// </summary>
    public const int BatchMinLength = 1 << 17;

    /// <summary>ceil(<paramref name="count"/> / <paramref name="tile"/>) without overflow.</summary>
    public static int Tiles(int count, int tile) => (int)(((long)count + tile - 1) / tile);
}
