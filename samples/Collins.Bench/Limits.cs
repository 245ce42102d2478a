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
/// <item><c>read + triad (two-pass limit)</c>: read g, then a triad (read g, read/write p): 16 B/param in two passes, the floor
/// of a step whose phase 2 needs g again (Rotation β1 = 0, the factored second moment).</item>
/// <item><c>2 reads + triad (three-pass limit)</c>: one more read of g first: 20 B/param in three passes (the factored second
/// moment with update clipping, whose RMS(u) pass reads g).</item>
/// <item><c>dense stream (limit)</c>: one pass reading g, p, m, v and writing p, m, v (p −= a·g, m and v scaled), each stream
/// software-prefetched as dense AdamW prefetches its own: 28 B/param, dense AdamW's traffic without its arithmetic;
/// <c>dense stream β1=0 (limit)</c> the same without m (20 B/param). They use the dense rows' shared m and v.</item>
/// <item><c>random scatter+gather (limit)</c>: the memory pattern of a Universal step with the cheapest possible hash
/// (one multiply and a multiply-shift range reduction): phase 1 adds (g, g²) into a random pair of a 2·k-float table
/// (one random cache line per parameter), phase 2 reads p, gathers one float of a k-float table at a random bucket and
/// writes p. Both phases use every thread on a shared table, without atomics (the sums race; timing only).</item>
/// </list>
/// </remarks>
public sealed class LimitKernel : IBenchKernel
{
    public const int TileLength = 1 << 16;
    private const int PrefetchAhead = 256;   // floats, as DenseAdamWCpu
    private static readonly TileKernel ReadTile = Read, ScaleTile = Scale, ScatterTile = Scatter, GatherTile = Gather,
        TriadTile = TriadKernel.TriadTile, StreamTile = Stream;
    private readonly BenchBuffers _b;
    private readonly int _threads;
    private readonly Kind _kind;
    private readonly float[] _pairs = [], _q = [];
    private readonly StepScalars _scalars, _triadScalars, _streamScalars;
    private static readonly float[] s_sink = new float[1024 * 16];   // one 64-byte slot per tile (mod 1024): no false sharing

    public enum Kind { Read, Scale, ReadScale, ReadTriad, ReadReadTriad, DenseStream, DenseStreamNoFirstMoment, RandomScatterGather }

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
        // The triad passes subtract 1e-7·g (as TriadKernel); the dense streams also scale m and v by 1 − 2⁻²⁴ (Decay), so the dense
        // rows' moments they share stay where dense AdamW left them (no growth, no denormals).
        _triadScalars = new StepScalars(1e-7f, 1f, 1f, 1f, 1);
        _streamScalars = new StepScalars(1e-7f, 1f - 1f / (1 << 24), 1f, 1f, 1);
    }

    /// <summary>The floor kernel's row: its name and bytes per parameter (<see cref="Floors"/>, where the per-kind floors use them).</summary>
    public FloorPass Pass => _kind switch
    {
        Kind.Read => Floors.Read,
        Kind.Scale => Floors.Scale,
        Kind.ReadScale => Floors.ReadScale,
        Kind.ReadTriad => Floors.ReadTriad,
        Kind.ReadReadTriad => Floors.ReadReadTriad,
        Kind.DenseStream => Floors.DenseStream,
        Kind.DenseStreamNoFirstMoment => Floors.DenseStreamNoFirstMoment,
        Kind.RandomScatterGather => Floors.RandomScatterGather,
        _ => throw new InvalidOperationException($"unknown floor kind {_kind}"),
    };
    public string Name => Pass.Row;
    public double NominalBytesPerParam => Pass.BytesPerParam;
    public string BytesFormula => _kind switch
    {
        Kind.Read => "4 = read g (floor of phase 1)",
        Kind.Scale => "8 = read/write p (floor of Rotation phase 2)",
        Kind.ReadScale => "12 = read g, then read/write p in a second pass (floor of the two-phase protocol)",
        Kind.ReadTriad => "16 = read g, then read g + read/write p in a second pass (floor of a phase 2 that needs g again)",
        Kind.ReadReadTriad => "20 = read g, read g, then read g + read/write p: three passes",
        Kind.DenseStream => "28 = read g + r/w p, m, v in one pass (dense AdamW's streams)",
        Kind.DenseStreamNoFirstMoment => "20 = read g + r/w p, v in one pass (dense AdamW β1=0's streams)",
        _ => "12 streamed + one random (g, g²) pair add and one random gather per param into 3·k floats (floor of a Universal step)",
    };
    public Floor? Floor => null;
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
            case Kind.ReadTriad:
                TileRunner.Run(Tiles, _threads, ReadTile, p, g, default, default, default, default, in _scalars);
                TileRunner.Run(Tiles, _threads, TriadTile, p, g, default, default, default, default, in _triadScalars);
                break;
            case Kind.ReadReadTriad:
                TileRunner.Run(Tiles, _threads, ReadTile, p, g, default, default, default, default, in _scalars);
                TileRunner.Run(Tiles, _threads, ReadTile, p, g, default, default, default, default, in _scalars);
                TileRunner.Run(Tiles, _threads, TriadTile, p, g, default, default, default, default, in _triadScalars);
                break;
            case Kind.DenseStream:
                TileRunner.Run(Tiles, _threads, StreamTile, p, g, _b.DenseM, _b.DenseV, default, default, in _streamScalars);
                break;
            case Kind.DenseStreamNoFirstMoment:
                TileRunner.Run(Tiles, _threads, StreamTile, p, g, default, _b.DenseV, default, default, in _streamScalars);
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

    // p −= a·g, m ← c·m (when m is given), v ← c·v in one pass; every stream prefetched PrefetchAhead floats ahead, one line per
    // stream per 16 floats, as dense AdamW does (without it four read streams per core leave the hardware prefetchers behind).
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static unsafe bool Stream(int tile, in TileBuffers b, in StepScalars s)
    {
        int start = tile * TileLength, n = Math.Min(TileLength, b.Parameters.Length - start), i = 0;
        bool hasM = b.FirstMoment.Length != 0;
        ref float p = ref Unsafe.Add(ref MemoryMarshal.GetReference(b.Parameters), start);
        ref float g = ref Unsafe.Add(ref MemoryMarshal.GetReference(b.Gradient), start);
        ref float v = ref Unsafe.Add(ref MemoryMarshal.GetReference(b.SecondMoment), start);
        ref float m = ref (hasM ? ref Unsafe.Add(ref MemoryMarshal.GetReference(b.FirstMoment), start) : ref v);
        var va = Vector512.Create(-s.LearningRate);
        var vc = Vector512.Create(s.Decay);
        for (; i <= n - 16; i += 16)
        {
            if (System.Runtime.Intrinsics.X86.Sse.IsSupported && i + PrefetchAhead < n)
            {
                System.Runtime.Intrinsics.X86.Sse.Prefetch0(Unsafe.AsPointer(ref Unsafe.Add(ref g, i + PrefetchAhead)));
                System.Runtime.Intrinsics.X86.Sse.Prefetch0(Unsafe.AsPointer(ref Unsafe.Add(ref v, i + PrefetchAhead)));
                System.Runtime.Intrinsics.X86.Sse.Prefetch0(Unsafe.AsPointer(ref Unsafe.Add(ref p, i + PrefetchAhead)));
                if (hasM) System.Runtime.Intrinsics.X86.Sse.Prefetch0(Unsafe.AsPointer(ref Unsafe.Add(ref m, i + PrefetchAhead)));
            }
            (vc * Vector512.LoadUnsafe(ref v, (nuint)i)).StoreUnsafe(ref v, (nuint)i);
            if (hasM) (vc * Vector512.LoadUnsafe(ref m, (nuint)i)).StoreUnsafe(ref m, (nuint)i);
            Vector512.FusedMultiplyAdd(va, Vector512.LoadUnsafe(ref g, (nuint)i), Vector512.LoadUnsafe(ref p, (nuint)i)).StoreUnsafe(ref p, (nuint)i);
        }
        for (; i < n; i++)
        {
            Unsafe.Add(ref v, i) *= s.Decay;
            if (hasM) Unsafe.Add(ref m, i) *= s.Decay;
            Unsafe.Add(ref p, i) = MathF.FusedMultiplyAdd(-s.LearningRate, Unsafe.Add(ref g, i), Unsafe.Add(ref p, i));
        }
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
