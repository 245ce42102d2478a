using System.Collections.Concurrent;
using System.Numerics;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;

namespace Collins.Kernels;

/// <summary>
/// Dense fused AdamW on the CPU: the kernel for dense tensors (Ratio 1, small tensors) and the bar
/// the sketched kernels are measured against. One pass: reads p, g, m, v; writes p, m, v
/// (28 bytes of memory traffic per parameter with β1 ≠ 0, 20 with β1 = 0).
/// </summary>
/// <remarks>
/// The widest hardware-accelerated vector is used (Vector512, else Vector256, else
/// <see cref="Vector{T}"/>), with fused multiply-adds for the moment updates and the parameter
/// update; the scalar tail evaluates the same formula with <see cref="MathF.FusedMultiplyAdd"/>, so
/// every element of a tensor is computed the same way whatever its position.
/// </remarks>
public static unsafe class DenseAdamWCpu
{
    /// <summary>Elements per tile of the multi-threaded entry points (a fixed partition: results never depend on the thread count).</summary>
    public const int TileLength = 1 << 16;

    /// <summary>
    /// Floats ahead that the Vector512 loop software-prefetches in each of its four streams (one line per stream per iteration).
    /// With four read streams and three write streams per core the hardware prefetchers fall behind, and the prefetch brings the
    /// step to the read bandwidth a pure read stream reaches; the distance is not critical. Measurements: docs/benchmarks.md
    /// ("What moved in this round", change 4).
    /// </summary>
    private const int PrefetchAhead = 256;

    /// <summary>True when every value is finite (not NaN, not ±Inf).</summary>
    public static bool AllFinite(ReadOnlySpan<float> values) => Check<Values>(values);

    /// <summary>
    /// True when the square of every gradient value is a finite float (|g| ≤ about 1.8e19, no NaN or ±Inf): the phase-1 verdict of a
    /// dense tensor. It is the sketched tensors' rule (every bucket's Σg² finite) for buckets of one entry, so a gradient entry that
    /// would make (1 − β2)·g² overflow into v refuses the step for a dense tensor exactly as it does for a sketched one.
    /// </summary>
    public static bool SquaresFinite(ReadOnlySpan<float> gradient) => Check<Squares>(gradient);

    /// <summary>The first index whose square is not a finite float, or −1 (the slow path of a refused step only).</summary>
    public static long FirstNonFiniteSquare(ReadOnlySpan<float> gradient)
    {
        for (int i = 0; i < gradient.Length; i++)
        {
            float x = gradient[i];
            if (!float.IsFinite(x * x)) return i;
        }
        return -1;
    }

    private interface ICheckMode { static abstract bool Square { get; } }
    private readonly struct Values : ICheckMode { public static bool Square => false; }
    private readonly struct Squares : ICheckMode { public static bool Square => true; }

    private static bool Check<TMode>(ReadOnlySpan<float> gradient) where TMode : struct, ICheckMode
    {
        ref float g = ref MemoryMarshal.GetReference(gradient);
        nuint n = (nuint)gradient.Length, i = 0;
        // x·0 is 0 for finite x and NaN for NaN/±Inf; NaN then sticks in the accumulator. In Squares mode x is first squared
        // (the JIT folds the mode away), so an entry whose square overflows gives Inf·0 = NaN too.
        if (Vector512.IsHardwareAccelerated && n >= (nuint)Vector512<float>.Count)
        {
            nuint w = (nuint)Vector512<float>.Count;
            Vector512<float> a0 = default, a1 = default, a2 = default, a3 = default;
            for (; i + 4 * w <= n; i += 4 * w)
            {
                a0 += Sq<TMode>(Vector512.LoadUnsafe(ref g, i)) * Vector512<float>.Zero;
                a1 += Sq<TMode>(Vector512.LoadUnsafe(ref g, i + w)) * Vector512<float>.Zero;
                a2 += Sq<TMode>(Vector512.LoadUnsafe(ref g, i + 2 * w)) * Vector512<float>.Zero;
                a3 += Sq<TMode>(Vector512.LoadUnsafe(ref g, i + 3 * w)) * Vector512<float>.Zero;
            }
            for (; i + w <= n; i += w) a0 += Sq<TMode>(Vector512.LoadUnsafe(ref g, i)) * Vector512<float>.Zero;
            var acc = (a0 + a1) + (a2 + a3);
            if (!Vector512.EqualsAll(acc, acc)) return false;
        }
        else if (Vector256.IsHardwareAccelerated && n >= (nuint)Vector256<float>.Count)
        {
            nuint w = (nuint)Vector256<float>.Count;
            Vector256<float> a0 = default, a1 = default, a2 = default, a3 = default;
            for (; i + 4 * w <= n; i += 4 * w)
            {
                a0 += Sq<TMode>(Vector256.LoadUnsafe(ref g, i)) * Vector256<float>.Zero;
                a1 += Sq<TMode>(Vector256.LoadUnsafe(ref g, i + w)) * Vector256<float>.Zero;
                a2 += Sq<TMode>(Vector256.LoadUnsafe(ref g, i + 2 * w)) * Vector256<float>.Zero;
                a3 += Sq<TMode>(Vector256.LoadUnsafe(ref g, i + 3 * w)) * Vector256<float>.Zero;
            }
            for (; i + w <= n; i += w) a0 += Sq<TMode>(Vector256.LoadUnsafe(ref g, i)) * Vector256<float>.Zero;
            var acc = (a0 + a1) + (a2 + a3);
            if (!Vector256.EqualsAll(acc, acc)) return false;
        }
        else if (Vector.IsHardwareAccelerated && n >= (nuint)Vector<float>.Count)
        {
            nuint w = (nuint)Vector<float>.Count;
            var acc = Vector<float>.Zero;
            for (; i + w <= n; i += w) acc += Sq<TMode>(Vector.LoadUnsafe(ref g, i)) * Vector<float>.Zero;
            if (!Vector.EqualsAll(acc, acc)) return false;
        }
        for (; i < n; i++) if (!float.IsFinite(Sq<TMode>(Unsafe.Add(ref g, i)))) return false;
        return true;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)] private static Vector512<float> Sq<TMode>(Vector512<float> x) where TMode : struct, ICheckMode => TMode.Square ? x * x : x;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] private static Vector256<float> Sq<TMode>(Vector256<float> x) where TMode : struct, ICheckMode => TMode.Square ? x * x : x;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] private static Vector<float> Sq<TMode>(Vector<float> x) where TMode : struct, ICheckMode => TMode.Square ? x * x : x;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] private static float Sq<TMode>(float x) where TMode : struct, ICheckMode => TMode.Square ? x * x : x;

    /// <summary>
    /// One AdamW step over a slice: m ← β1·m + (1−β1)·g; v ← β2·v + (1−β2)·g²;
    /// p ← p·decay − lr·(m·invBc1)/(√v·invSqrtBc2 + ε). When <paramref name="firstMoment"/> is empty (β1 = 0), m̂ = g.
    /// </summary>
    public static void Step(Span<float> parameters, ReadOnlySpan<float> gradient, Span<float> firstMoment, Span<float> secondMoment,
                            in StepScalars s, float beta1, float beta2, float epsilon)
        => StepCoefficients(parameters, gradient, firstMoment, secondMoment, in s, beta1, 1f - beta1, beta2, 1f - beta2, epsilon);

    /// <summary>
    /// As the <see cref="float"/> overload, with β1 and β2 given in double: (1 − β1) and (1 − β2) are computed in double
    /// and rounded to float once (for β2 = 0.999, 0.001f rather than 1f − 0.999f = 0.00099998713).
    /// </summary>
    public static void Step(Span<float> parameters, ReadOnlySpan<float> gradient, Span<float> firstMoment, Span<float> secondMoment,
                            in StepScalars s, double beta1, double beta2, float epsilon)
        => Step(parameters, gradient, firstMoment, secondMoment, in s, KernelCoefficients.From(beta1, beta2, epsilon));

    /// <summary>The same step with the coefficients formed once by the caller (<see cref="KernelCoefficients"/>).</summary>
    internal static void Step(Span<float> parameters, ReadOnlySpan<float> gradient, Span<float> firstMoment, Span<float> secondMoment,
                              in StepScalars s, in KernelCoefficients k)
        => StepCoefficients(parameters, gradient, firstMoment, secondMoment, in s, k.Beta1, k.OneMinusBeta1, k.Beta2, k.OneMinusBeta2, k.Epsilon);

    private static void StepCoefficients(Span<float> parameters, ReadOnlySpan<float> gradient, Span<float> firstMoment, Span<float> secondMoment,
                                         in StepScalars s, float beta1, float c1, float beta2, float c2, float epsilon)
    {
        int n = parameters.Length;
        if (gradient.Length != n || secondMoment.Length != n || (firstMoment.Length != 0 && firstMoment.Length != n))
            throw new ArgumentException($"AdamW buffers disagree: p {n}, g {gradient.Length}, m {firstMoment.Length}, v {secondMoment.Length}.");
        if (n == 0) return;
        ref float p = ref MemoryMarshal.GetReference(parameters);
        ref float g = ref MemoryMarshal.GetReference(gradient);
        ref float v = ref MemoryMarshal.GetReference(secondMoment);
        if (firstMoment.Length != 0)
            StepCore<WithFirstMoment>(ref p, ref g, ref MemoryMarshal.GetReference(firstMoment), ref v, (nuint)n, in s, beta1, c1, beta2, c2, epsilon);
        else
            StepCore<NoFirstMoment>(ref p, ref g, ref v, ref v, (nuint)n, in s, beta1, c1, beta2, c2, epsilon);
    }

    /// <summary>
    /// The same step over a whole tensor, split into a fixed partition of <see cref="TileLength"/>-element
    /// tiles run on up to <paramref name="maxThreads"/> threads by <see cref="TileRunner"/>. Bit-identical
    /// to the single-threaded overload for any thread count; allocates nothing after the first call
    /// with given (β1, β2, ε).
    /// </summary>
    public static void Step(Span<float> parameters, ReadOnlySpan<float> gradient, Span<float> firstMoment, Span<float> secondMoment,
                            in StepScalars s, float beta1, float beta2, float epsilon, int maxThreads)
        => StepThreaded(parameters, gradient, firstMoment, secondMoment, in s, beta1, 1f - beta1, beta2, 1f - beta2, epsilon, maxThreads);

    /// <summary>As the multi-threaded <see cref="float"/> overload, with (1 − β1), (1 − β2) computed in double and rounded once.</summary>
    public static void Step(Span<float> parameters, ReadOnlySpan<float> gradient, Span<float> firstMoment, Span<float> secondMoment,
                            in StepScalars s, double beta1, double beta2, float epsilon, int maxThreads)
    {
        var k = KernelCoefficients.From(beta1, beta2, epsilon);
        StepThreaded(parameters, gradient, firstMoment, secondMoment, in s, k.Beta1, k.OneMinusBeta1, k.Beta2, k.OneMinusBeta2, k.Epsilon, maxThreads);
    }

    private static void StepThreaded(Span<float> parameters, ReadOnlySpan<float> gradient, Span<float> firstMoment, Span<float> secondMoment,
                                     in StepScalars s, float beta1, float c1, float beta2, float c2, float epsilon, int maxThreads)
    {
        int n = parameters.Length;
        if (gradient.Length != n || secondMoment.Length != n || (firstMoment.Length != 0 && firstMoment.Length != n))
            throw new ArgumentException($"AdamW buffers disagree: p {n}, g {gradient.Length}, m {firstMoment.Length}, v {secondMoment.Length}.");
        if (n == 0) return;
        int tiles = (int)(((long)n + TileLength - 1) / TileLength);
        if (tiles == 1 || maxThreads <= 1)
        {
            StepCoefficients(parameters, gradient, firstMoment, secondMoment, in s, beta1, c1, beta2, c2, epsilon);
            return;
        }
        var kernel = TileKernels.GetOrAdd((beta1, c1, beta2, c2, epsilon), static key => new DenseTileKernel(key.Item1, key.Item2, key.Item3, key.Item4, key.Item5).Invoke);
        TileRunner.Run(tiles, maxThreads, kernel, parameters, gradient, firstMoment, secondMoment, default, default, in s);
    }

    /// <summary>
    /// Tile <paramref name="tile"/> (of <see cref="TileLength"/> elements) of a dense AdamW step, for use
    /// inside a <see cref="TileKernel"/>; always returns true (finiteness is checked separately).
    /// </summary>
    public static bool StepTile(int tile, in TileBuffers buffers, in StepScalars s, float beta1, float beta2, float epsilon)
        => StepTileCoefficients(tile, in buffers, in s, beta1, 1f - beta1, beta2, 1f - beta2, epsilon);

    /// <summary>As the <see cref="float"/> overload of <c>StepTile</c>, with (1 − β1), (1 − β2) computed in double and rounded once.</summary>
    public static bool StepTile(int tile, in TileBuffers buffers, in StepScalars s, double beta1, double beta2, float epsilon)
    {
        var k = KernelCoefficients.From(beta1, beta2, epsilon);
        return StepTileCoefficients(tile, in buffers, in s, k.Beta1, k.OneMinusBeta1, k.Beta2, k.OneMinusBeta2, k.Epsilon);
    }

    private static bool StepTileCoefficients(int tile, in TileBuffers buffers, in StepScalars s, float beta1, float c1, float beta2, float c2, float epsilon)
    {
        int start = tile * TileLength;
        int length = Math.Min(TileLength, buffers.Parameters.Length - start);
        if (length <= 0) return true;
        var m = buffers.FirstMoment;
        StepCoefficients(buffers.Parameters.Slice(start, length), buffers.Gradient.Slice(start, length),
             m.Length == 0 ? Span<float>.Empty : m.Slice(start, length), buffers.SecondMoment.Slice(start, length),
             in s, beta1, c1, beta2, c2, epsilon);
        return true;
    }

    private static readonly ConcurrentDictionary<(float, float, float, float, float), TileKernel> TileKernels = new();

    private sealed class DenseTileKernel(float beta1, float c1, float beta2, float c2, float epsilon)
    {
        public bool Invoke(int tile, in TileBuffers buffers, in StepScalars s) => StepTileCoefficients(tile, in buffers, in s, beta1, c1, beta2, c2, epsilon);
    }

    private interface IMomentMode { static abstract bool HasFirstMoment { get; } }
    private readonly struct WithFirstMoment : IMomentMode { public static bool HasFirstMoment => true; }
    private readonly struct NoFirstMoment : IMomentMode { public static bool HasFirstMoment => false; }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void StepCore<TMode>(ref float p, ref float g, ref float m, ref float v, nuint n, in StepScalars s,
                                        float beta1, float c1, float beta2, float c2, float epsilon) where TMode : struct, IMomentMode
    {
        float lr = s.LearningRate, decay = s.Decay, ib1 = s.InvBiasCorrection1, isb2 = s.InvSqrtBiasCorrection2;
        nuint i = 0;
        if (Vector512.IsHardwareAccelerated && n >= (nuint)Vector512<float>.Count)
        {
            nuint w = (nuint)Vector512<float>.Count;
            var vb1 = Vector512.Create(beta1); var vc1 = Vector512.Create(c1);
            var vb2 = Vector512.Create(beta2); var vc2 = Vector512.Create(c2);
            var vnlr = Vector512.Create(-lr); var vdecay = Vector512.Create(decay);
            var vib1 = Vector512.Create(ib1); var visb2 = Vector512.Create(isb2); var veps = Vector512.Create(epsilon);
            for (; i + w <= n; i += w)
            {
                if (System.Runtime.Intrinsics.X86.Sse.IsSupported && i + PrefetchAhead < n)
                {
                    System.Runtime.Intrinsics.X86.Sse.Prefetch0(Unsafe.AsPointer(ref Unsafe.Add(ref g, i + PrefetchAhead)));
                    System.Runtime.Intrinsics.X86.Sse.Prefetch0(Unsafe.AsPointer(ref Unsafe.Add(ref v, i + PrefetchAhead)));
                    System.Runtime.Intrinsics.X86.Sse.Prefetch0(Unsafe.AsPointer(ref Unsafe.Add(ref p, i + PrefetchAhead)));
                    if (TMode.HasFirstMoment) System.Runtime.Intrinsics.X86.Sse.Prefetch0(Unsafe.AsPointer(ref Unsafe.Add(ref m, i + PrefetchAhead)));
                }
                var gi = Vector512.LoadUnsafe(ref g, i);
                var vi = Vector512.FusedMultiplyAdd(vb2, Vector512.LoadUnsafe(ref v, i), vc2 * gi * gi);
                vi.StoreUnsafe(ref v, i);
                Vector512<float> mhat;
                if (TMode.HasFirstMoment)
                {
                    var mi = Vector512.FusedMultiplyAdd(vb1, Vector512.LoadUnsafe(ref m, i), vc1 * gi);
                    mi.StoreUnsafe(ref m, i);
                    mhat = mi * vib1;
                }
                else mhat = gi;
                var den = Vector512.FusedMultiplyAdd(Vector512.Sqrt(vi), visb2, veps);
                var pi = Vector512.FusedMultiplyAdd(Vector512.LoadUnsafe(ref p, i), vdecay, vnlr * mhat / den);
                pi.StoreUnsafe(ref p, i);
            }
        }
        else if (Vector256.IsHardwareAccelerated && n >= (nuint)Vector256<float>.Count)
        {
            nuint w = (nuint)Vector256<float>.Count;
            var vb1 = Vector256.Create(beta1); var vc1 = Vector256.Create(c1);
            var vb2 = Vector256.Create(beta2); var vc2 = Vector256.Create(c2);
            var vnlr = Vector256.Create(-lr); var vdecay = Vector256.Create(decay);
            var vib1 = Vector256.Create(ib1); var visb2 = Vector256.Create(isb2); var veps = Vector256.Create(epsilon);
            for (; i + w <= n; i += w)
            {
                var gi = Vector256.LoadUnsafe(ref g, i);
                var vi = Vector256.FusedMultiplyAdd(vb2, Vector256.LoadUnsafe(ref v, i), vc2 * gi * gi);
                vi.StoreUnsafe(ref v, i);
                Vector256<float> mhat;
                if (TMode.HasFirstMoment)
                {
                    var mi = Vector256.FusedMultiplyAdd(vb1, Vector256.LoadUnsafe(ref m, i), vc1 * gi);
                    mi.StoreUnsafe(ref m, i);
                    mhat = mi * vib1;
                }
                else mhat = gi;
                var den = Vector256.FusedMultiplyAdd(Vector256.Sqrt(vi), visb2, veps);
                var pi = Vector256.FusedMultiplyAdd(Vector256.LoadUnsafe(ref p, i), vdecay, vnlr * mhat / den);
                pi.StoreUnsafe(ref p, i);
            }
        }
        else if (Vector.IsHardwareAccelerated && n >= (nuint)Vector<float>.Count)
        {
            nuint w = (nuint)Vector<float>.Count;
            var vb1 = new Vector<float>(beta1); var vc1 = new Vector<float>(c1);
            var vb2 = new Vector<float>(beta2); var vc2 = new Vector<float>(c2);
            var vnlr = new Vector<float>(-lr); var vdecay = new Vector<float>(decay);
            var vib1 = new Vector<float>(ib1); var visb2 = new Vector<float>(isb2); var veps = new Vector<float>(epsilon);
            for (; i + w <= n; i += w)
            {
                var gi = Vector.LoadUnsafe(ref g, i);
                var vi = Vector.FusedMultiplyAdd(vb2, Vector.LoadUnsafe(ref v, i), vc2 * gi * gi);
                vi.StoreUnsafe(ref v, i);
                Vector<float> mhat;
                if (TMode.HasFirstMoment)
                {
                    var mi = Vector.FusedMultiplyAdd(vb1, Vector.LoadUnsafe(ref m, i), vc1 * gi);
                    mi.StoreUnsafe(ref m, i);
                    mhat = mi * vib1;
                }
                else mhat = gi;
                var den = Vector.FusedMultiplyAdd(Vector.SquareRoot(vi), visb2, veps);
                var pi = Vector.FusedMultiplyAdd(Vector.LoadUnsafe(ref p, i), vdecay, vnlr * mhat / den);
                pi.StoreUnsafe(ref p, i);
            }
        }
        for (; i < n; i++)
        {
            float gi = Unsafe.Add(ref g, i);
            float vi = MathF.FusedMultiplyAdd(beta2, Unsafe.Add(ref v, i), c2 * gi * gi);
            Unsafe.Add(ref v, i) = vi;
            float mhat;
            if (TMode.HasFirstMoment)
            {
                float mi = MathF.FusedMultiplyAdd(beta1, Unsafe.Add(ref m, i), c1 * gi);
                Unsafe.Add(ref m, i) = mi;
                mhat = mi * ib1;
            }
            else mhat = gi;
            float den = MathF.FusedMultiplyAdd(MathF.Sqrt(vi), isb2, epsilon);
            Unsafe.Add(ref p, i) = MathF.FusedMultiplyAdd(Unsafe.Add(ref p, i), decay, -lr * mhat / den);
        }
    }
}
