using ILGPU;
using ILGPU.Runtime;

namespace Collins.Kernels;

/// <summary>
/// Global gradient-norm clipping on a device (<see cref="OptimizerSettings.MaxGradientNorm"/> &gt; 0): one double per tensor, Σ g²
/// of its gradient, reduced from the float sums phase 1 forms anyway (a sketch's bucket sums of squares, a factored tensor's row
/// sums; a dense tensor's squares, formed here). Deterministic, without atomics: a level splits its input into parts of at most
/// <see cref="Chunk"/> values (part j holds the values j, j + P, j + 2P, … of P = ceil(count / Chunk) parts, so neighbouring
/// threads read neighbouring values), one thread sums its part in double in index order; levels repeat over the partials until at
/// most <see cref="Chunk"/> remain, which one thread adds in order into the tensor's double. The result depends on the count
/// only, never on the device or the thread schedule. Workspace, not state; created only when clipping is on.
/// </summary>
internal sealed class DeviceGradientNorm : IDisposable
{
    /// <summary>Values one thread adds per level.</summary>
    internal const int Chunk = 256;

    private readonly Accelerator _accelerator;
    private readonly MemoryBuffer1D<double, Stride1D.Dense> _squares;
    private readonly MemoryBuffer1D<double, Stride1D.Dense> _partials;
    private readonly Action<Index1D, ArrayView<float>, ArrayView<double>, int> _floats;
    private readonly Action<Index1D, ArrayView<double>, ArrayView<double>> _doubles;

    /// <param name="accelerator">The optimizer's accelerator.</param>
    /// <param name="tensors">How many tensors (one double each).</param>
    /// <param name="longestSource">The most values any one tensor reduces (sizes the partials, which every tensor reuses in launch order).</param>
    public DeviceGradientNorm(Accelerator accelerator, int tensors, int longestSource)
    {
        _accelerator = accelerator;
        _squares = accelerator.Allocate1D<double>(tensors);
        _partials = accelerator.Allocate1D<double>(Math.Max(1, Workspace(longestSource)));
        _floats = accelerator.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<double>, int>(GradientNormDeviceKernels.SumFloats);
        _doubles = accelerator.LoadAutoGroupedStreamKernel<Index1D, ArrayView<double>, ArrayView<double>>(GradientNormDeviceKernels.SumDoubles);
    }

    /// <summary>Partials a reduction of <paramref name="count"/> values needs over all its levels but the last.</summary>
    internal static int Workspace(int count)
    {
        int total = 0;
        while (count > Chunk)
        {
            count = Parts(count);
            total += count;
        }
        return total;
    }

    private static int Parts(int count) => (int)(((long)count + Chunk - 1) / Chunk);

    /// <summary>
    /// Launches the reduction of tensor <paramref name="tensor"/>: Σ of <paramref name="values"/> (of their float squares when
    /// <paramref name="square"/>) in double, into the tensor's slot. Queued after phase 1 on the same stream; read by <see cref="Read"/>.
    /// </summary>
    public void Reduce(int tensor, ArrayView<float> values, bool square)
    {
        var slot = _squares.View.SubView(tensor, 1);
        int count = checked((int)values.Length);
        if (count <= Chunk)
        {
            _floats(1, values, slot, square ? 1 : 0);
            return;
        }
        int parts = Parts(count), offset = 0;
        _floats(parts, values, _partials.View.SubView(0, parts), square ? 1 : 0);
        count = parts;
        while (count > Chunk)
        {
            parts = Parts(count);
            _doubles(parts, _partials.View.SubView(offset, count), _partials.View.SubView(offset + count, parts));
            offset += count;
            count = parts;
        }
        _doubles(1, _partials.View.SubView(offset, count), slot);
    }

    /// <summary>
    /// Copies every tensor's Σ g² to <paramref name="squares"/>. Waits for the device first: the copy alone is not ordered after the
    /// reduction kernels on every accelerator (on ILGPU's CPU accelerator it could read the slots before the last kernel wrote them).
    /// </summary>
    public void Read(double[] squares)
    {
        _accelerator.Synchronize();
        _squares.View.CopyToCPU(ref squares[0], squares.Length);
    }

    public void Dispose()
    {
        _squares.Dispose();
        _partials.Dispose();
    }
}

/// <summary>The reduction's two kernels (one thread per part); also compiled by the PTX checks (no local memory).</summary>
internal static class GradientNormDeviceKernels
{
    /// <summary>Part j of <paramref name="values"/> (j, j + P, … below its length; P = the partials' length) summed in double: each value, or its square formed in float when <paramref name="square"/> is 1.</summary>
    internal static void SumFloats(Index1D part, ArrayView<float> values, ArrayView<double> partials, int square)
    {
        long parts = partials.Length, count = values.Length;   // long: e + parts cannot wrap for any length
        double sum = 0;
        for (long e = part; e < count; e += parts)
        {
            float x = values[e];
            sum += square != 0 ? (double)(x * x) : x;
        }
        partials[part] = sum;
    }

    /// <summary>Part j of the previous level's partials summed in double in index order.</summary>
    internal static void SumDoubles(Index1D part, ArrayView<double> values, ArrayView<double> partials)
    {
        long parts = partials.Length, count = values.Length;
        double sum = 0;
        for (long e = part; e < count; e += parts) sum += values[e];
        partials[part] = sum;
    }
}
