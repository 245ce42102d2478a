using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using Collins.Kernels;

namespace Collins.Bench;

/// <summary>
/// Floors, not optimizers: the least time any kernel needs for the memory traffic a step's protocol implies,
/// measured on this machine in the same process as the rows they bound. They answer "is the target physically
/// reachable here?" with a measurement instead of an argument.
/// </summary>
/// <remarks>
/// <list type="bullet">
/// <item><c>read (limit)</c>: Σ g, vectorised, multi-threaded: 4 B/param, the floor of phase 1 of a sketched step.</item>
/// <item><c>scale (limit)</c>: p ← a·p: 8 B/param, the floor of a Rotation phase 2 (read and write p).</item>
/// <item><c>read + scale (two-pass limit)</c>: the two as two runs, back to back: the floor of the two-phase protocol
/// (every gradient known to be finite before anything is written), 12 B/param in two streaming passes.</item>
/// <item><c>random scatter+gather (limit)</c>: the memory pattern of a Universal step with the cheapest possible hash
/// (one multiply and a multiply-shift range reduction): phase 1 adds (g, g²) into a random pair of a 2·k-float table
/// (one random cache line per parameter), phase 2 reads p, gathers one float of a k-float table at a random bucket and
/// writes p. Both phases use every thread on a shared table, without atomics (the sums race; timing only).</item>
/// </list>
/// </remarks>
public sealed class LimitKernel : IBenchKernel
{
    public const int TileLength = 1 << 16;
    private static readonly TileKernel ReadTile = Read, ScaleTile = Scale, ScatterTile = Scatter, GatherTile = Gather;
    private readonly BenchBuffers _b;
    private readonly int _threads;
    private readonly Kind _kind;
    private readonly float[] _pairs = [], _q = [];
    private readonly StepScalars _scalars;
    private static readonly float[] s_sink = new float[1024 * 16];   // one 64-byte slot per tile (mod 1024): no false sharing

    public enum Kind { Read, Scale, ReadScale, RandomScatterGather }

    public LimitKernel(BenchBuffers buffers, int threads, Kind kind, int ratio = 32)
    {
        _b = buffers; _threads = threads; _kind = kind;
        if (kind == Kind.RandomScatterGather)
        {
            int k = (int)((buffers.Length + (long)ratio - 1) / ratio);
            _pairs = GC.AllocateArray<float>(2 * k, pinned: true);
            _q = GC.AllocateArray<float>(k, pinned: true);
            _q.AsSpan().Fill(1e-9f);
        }
        // LearningRate carries the factor of scale (1 − 2⁻²⁴ rounds to 1 − 2⁻²⁴: p shrinks by one ulp-ish per step, never to 0 in a bench).
        _scalars = new StepScalars(1f - 1f / (1 << 24), 1f, 1f, 1f, 1);
    }

    public string Name => _kind switch
    {
        Kind.Read => "read (limit)",
        Kind.Scale => "scale (limit)",
        Kind.ReadScale => "read + scale (two-pass limit)",
        _ => "random scatter+gather (limit)",
    };
    public double NominalBytesPerParam => _kind switch { Kind.Read => 4, Kind.Scale => 8, _ => 12 };
    public string BytesFormula => _kind switch
    {
        Kind.Read => "4 = read g (floor of phase 1)",
        Kind.Scale => "8 = read/write p (floor of Rotation phase 2)",
        Kind.ReadScale => "12 = read g, then read/write p in a second pass (floor of the two-phase protocol)",
        _ => "12 streamed + one random (g, g²) pair add and one random gather per param into 3·k floats (floor of a Universal step)",
    };
    public long? StateBytes => null;
    public long? FormulaStateBytes => null;
    public long ConstructionBytes => 0;
    private int Tiles => (_b.Length + TileLength - 1) / TileLength;

    public void Step()
    {
        var p = _b.Parameters; var g = _b.Gradient;
        switch (_kind)
        {
            case Kind.Read: TileRunner.Run(Tiles, _threads, ReadTile, p, g, default, default, default, default, in _scalars); break;
            case Kind.Scale: TileRunner.Run(Tiles, _threads, ScaleTile, p, g, default, default, default, default, in _scalars); break;
            case Kind.ReadScale:
                TileRunner.Run(Tiles, _threads, ReadTile, p, g, default, default, default, default, in _scalars);
                TileRunner.Run(Tiles, _threads, ScaleTile, p, g, default, default, default, default, in _scalars);
                break;
            default:
                _pairs.AsSpan().Clear();
                TileRunner.Run(Tiles, _threads, ScatterTile, p, g, default, default, _pairs, _q, in _scalars);
                TileRunner.Run(Tiles, _threads, GatherTile, p, g, default, default, _pairs, _q, in _scalars);
                break;
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static bool Read(int tile, in TileBuffers b, in StepScalars s)
    {
        int start = tile * TileLength, n = Math.Min(TileLength, b.Gradient.Length - start), i = 0;
        ref float g = ref Unsafe.Add(ref MemoryMarshal.GetReference(b.Gradient), start);
        var a0 = Vector512<float>.Zero; var a1 = a0; var a2 = a0; var a3 = a0;
        for (; i <= n - 64; i += 64)
        {
            a0 += Vector512.LoadUnsafe(ref g, (nuint)i);
            a1 += Vector512.LoadUnsafe(ref g, (nuint)(i + 16));
            a2 += Vector512.LoadUnsafe(ref g, (nuint)(i + 32));
            a3 += Vector512.LoadUnsafe(ref g, (nuint)(i + 48));
        }
        float sum = Vector512.Sum(a0 + a1 + a2 + a3);
        for (; i < n; i++) sum += Unsafe.Add(ref g, i);
        s_sink[(tile & 1023) * 16] = sum;   // one cache line per slot: no false sharing between threads
        return true;
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static bool Scale(int tile, in TileBuffers b, in StepScalars s)
    {
        int start = tile * TileLength, n = Math.Min(TileLength, b.Parameters.Length - start), i = 0;
        ref float p = ref Unsafe.Add(ref MemoryMarshal.GetReference(b.Parameters), start);
        var va = Vector512.Create(s.LearningRate);
        for (; i <= n - 32; i += 32)
        {
            (va * Vector512.LoadUnsafe(ref p, (nuint)i)).StoreUnsafe(ref p, (nuint)i);
            (va * Vector512.LoadUnsafe(ref p, (nuint)(i + 16))).StoreUnsafe(ref p, (nuint)(i + 16));
        }
        for (; i < n; i++) Unsafe.Add(ref p, i) *= s.LearningRate;
        return true;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static int RandomBucket(int i, int k) => (int)(((ulong)((uint)i * 0x9E3779B1u) * (uint)k) >> 32);

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static bool Scatter(int tile, in TileBuffers b, in StepScalars s)
    {
        int start = tile * TileLength, n = Math.Min(TileLength, b.Gradient.Length - start);
        ref float g = ref Unsafe.Add(ref MemoryMarshal.GetReference(b.Gradient), start);
        ref float pairs = ref MemoryMarshal.GetReference(b.SumM);
        int k = b.SumV.Length;
        for (int i = 0; i < n; i++)
        {
            float x = Unsafe.Add(ref g, i);
            int j = 2 * RandomBucket(start + i, k);
            Unsafe.Add(ref pairs, j) += x;
            Unsafe.Add(ref pairs, j + 1) += x * x;
        }
        return true;
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static bool Gather(int tile, in TileBuffers b, in StepScalars s)
    {
        int start = tile * TileLength, n = Math.Min(TileLength, b.Parameters.Length - start);
        ref float p = ref Unsafe.Add(ref MemoryMarshal.GetReference(b.Parameters), start);
        ref float q = ref MemoryMarshal.GetReference(b.SumV);
        int k = b.SumV.Length;
        for (int i = 0; i < n; i++)
            Unsafe.Add(ref p, i) -= Unsafe.Add(ref q, RandomBucket(start + i, k));
        return true;
    }

    public void Dispose() { }
}
