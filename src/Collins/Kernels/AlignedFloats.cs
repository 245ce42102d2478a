using System.Runtime.CompilerServices;

namespace Collins.Kernels;

/// <summary>
/// A fixed-length block of zeroed floats whose first element sits on a 64-byte boundary (one cache line, one AVX-512 vector),
/// in a pinned array that never moves. The optimizers keep their CPU phase-1 workspaces (the bucket sums) in these, so that
/// <see cref="RotationCpu.AccumulateTile"/> can write whole lines with non-temporal stores. Converts implicitly to
/// <see cref="Span{T}"/>, so kernels take it wherever they take a span.
/// </summary>
public sealed class AlignedFloats
{
    private const int Alignment = 64;
    private readonly float[] _storage;
    private readonly int _offset;

    /// <summary>A zeroed block of <paramref name="length"/> floats (length 0 allocates nothing).</summary>
    public AlignedFloats(int length)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(length);
        Length = length;
        if (length == 0) { _storage = Array.Empty<float>(); return; }
        // Pinned-object heap: the address, hence the alignment, holds for the array's lifetime.
        _storage = GC.AllocateArray<float>(length + Alignment / sizeof(float) - 1, pinned: true);
        _offset = OffsetToAlignment(_storage);
    }

    /// <summary>The empty block.</summary>
    public static AlignedFloats Empty { get; } = new(0);

    /// <summary>Number of floats.</summary>
    public int Length { get; }

    /// <summary>The floats.</summary>
    public Span<float> Span => _storage.AsSpan(_offset, Length);

    public static implicit operator Span<float>(AlignedFloats block) => block.Span;
    public static implicit operator ReadOnlySpan<float>(AlignedFloats block) => block.Span;

    private static unsafe int OffsetToAlignment(float[] storage)
    {
        nuint address = (nuint)Unsafe.AsPointer(ref storage[0]); // pinned: stable
        return (int)((Alignment - (address & (Alignment - 1))) & (Alignment - 1)) / sizeof(float);
    }
}
