namespace Collins.Kernels;

/// <summary>
/// The buffers of one tensor for one step, as raw pointers so that tile kernels can run on worker
/// threads (spans cannot cross threads). Only <see cref="TileRunner"/> creates it, while the
/// buffers are pinned; kernels read them through the span properties and never keep them.
/// </summary>
public readonly unsafe struct TileBuffers
{
    private readonly float* _p, _g, _m, _v, _sumM, _sumV;
    private readonly int _length, _buckets, _mLength, _sumMLength, _sumVLength;

    internal TileBuffers(float* p, float* g, int length, float* m, int mLength, float* v, int buckets,
                         float* sumM, int sumMLength, float* sumV, int sumVLength)
    {
        _p = p; _g = g; _length = length; _m = m; _mLength = mLength; _v = v; _buckets = buckets;
        _sumM = sumM; _sumMLength = sumMLength; _sumV = sumV; _sumVLength = sumVLength;
    }

    /// <summary>The tensor's parameters (d).</summary>
    public Span<float> Parameters => new(_p, _length);
    /// <summary>The tensor's gradient (d).</summary>
    public ReadOnlySpan<float> Gradient => new(_g, _length);
    /// <summary>First-moment sketch (k; empty when β1 = 0).</summary>
    public Span<float> FirstMoment => new(_m, _mLength);
    /// <summary>Second-moment sketch (k).</summary>
    public Span<float> SecondMoment => new(_v, _buckets);
    /// <summary>Phase-1 workspace: Σ σ·g per bucket (k; empty when β1 = 0 or dense).</summary>
    public Span<float> SumM => new(_sumM, _sumMLength);
    /// <summary>Phase-1 workspace: Σ g² per bucket (k; empty when dense).</summary>
    public Span<float> SumV => new(_sumV, _sumVLength);
}

/// <summary>A tile kernel: processes tile <paramref name="tile"/>; returns false when it saw a non-finite value.</summary>
public delegate bool TileKernel(int tile, in TileBuffers buffers, in StepScalars scalars);

/// <summary>
/// Runs a tile kernel over a fixed partition of tiles on up to <c>maxThreads</c> threads. The
/// partition never depends on the thread count, so results are bit-identical for any count.
/// </summary>
public static unsafe class TileRunner
{
    /// <summary>Runs <paramref name="kernel"/> for tiles 0..tiles−1; returns true when every tile returned true.</summary>
    public static bool Run(int tiles, int maxThreads, TileKernel kernel,
                           Span<float> parameters, ReadOnlySpan<float> gradient,
                           Span<float> firstMoment, Span<float> secondMoment,
                           Span<float> sumM, Span<float> sumV, in StepScalars scalars)
    {
        fixed (float* p = parameters)
        fixed (float* g = gradient)
        fixed (float* m = firstMoment)
        fixed (float* v = secondMoment)
        fixed (float* sm = sumM)
        fixed (float* sv = sumV)
        {
            var buffers = new TileBuffers(p, g, parameters.Length, m, firstMoment.Length, v, secondMoment.Length,
                                          sm, sumM.Length, sv, sumV.Length);
            return RunCore(tiles, maxThreads, kernel, buffers, scalars);
        }
    }

    private static bool RunCore(int tiles, int maxThreads, TileKernel kernel, TileBuffers buffers, StepScalars scalars)
    {
        if (tiles <= 0) return true;
        if (tiles == 1 || maxThreads <= 1)
        {
            bool ok = true;
            for (int t = 0; t < tiles; t++) ok &= kernel(t, buffers, scalars);
            return ok;
        }
        int failed = 0;
        Parallel.For(0, tiles, new ParallelOptions { MaxDegreeOfParallelism = maxThreads }, t =>
        {
            if (!kernel(t, buffers, scalars)) Volatile.Write(ref failed, 1);
        });
        return failed == 0;
    }
}
