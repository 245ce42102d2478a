using System.Reflection;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using Collins.Kernels;

namespace Collins.Bench;

/// <summary>One benchmarked kernel: a whole optimizer step (or the triad) over the shared buffers.</summary>
public interface IBenchKernel : IDisposable
{
    /// <summary>Row label.</summary>
    string Name { get; }
    /// <summary>Nominal bytes of memory traffic per parameter, used for the effective GB/s.</summary>
    double NominalBytesPerParam { get; }
    /// <summary>How <see cref="NominalBytesPerParam"/> is counted.</summary>
    string BytesFormula { get; }
    /// <summary>
    /// What this kind must move and which measured floor kernels of the run bound its time (<see cref="Floors"/>); null for the floor
    /// kernels themselves.
    /// </summary>
    Floor? Floor { get; }
    /// <summary>The optimizer's reported state bytes (null for the triad).</summary>
    long? StateBytes { get; }
    /// <summary>State bytes by the formula (β1 ≠ 0 ? 2 : 1)·k·4, k = ceil(d/Ratio) (d for dense AdamW).</summary>
    long? FormulaStateBytes { get; }
    /// <summary>Bytes allocated (whole process) while constructing the kernel's optimizer: state + workspace + plans.</summary>
    long ConstructionBytes { get; }
    /// <summary>One step.</summary>
    void Step();
}

/// <summary>Buffers shared by every kernel of a run: p and g (d each); dense moments are allocated on demand.</summary>
public sealed class BenchBuffers
{
    public BenchBuffers(int length, int seed = 1)
    {
        Length = length;
        Parameters = GC.AllocateUninitializedArray<float>(length, pinned: true);
        Gradient = GC.AllocateUninitializedArray<float>(length, pinned: true);
        // Deterministic, cheap, zero-mean values; small enough that thousands of steps stay finite.
        uint x = (uint)seed * 2654435761u + 1;
        for (int i = 0; i < length; i++)
        {
            x ^= x << 13; x ^= x >> 17; x ^= x << 5;
            float u = (x >> 8) * (1f / (1 << 24)) - 0.5f;
            Parameters[i] = u * 0.2f;
            Gradient[i] = u * 1e-3f + 1e-5f;
        }
    }

    public int Length { get; }
    public float[] Parameters { get; }
    public float[] Gradient { get; }

    private AlignedFloats? _m, _v;
    /// <summary>
    /// Dense first moment (d), shared by the dense rows. Starts on a 64-byte line: the bar gets every help an optimizer owning its
    /// state could give itself (what it measured: docs/benchmarks.md, "Tried in an earlier round and reverted").
    /// </summary>
    public Span<float> DenseM => (_m ??= new AlignedFloats(Length)).Span;
    /// <summary>Dense second moment (d), shared by the dense rows; 64-byte aligned like <see cref="DenseM"/>.</summary>
    public Span<float> DenseV => (_v ??= new AlignedFloats(Length)).Span;
}

/// <summary>The limit: a vectorised, multi-threaded stream triad p[i] −= a·g[i] (read g, read+write p: 12 B/param).</summary>
public sealed class TriadKernel(BenchBuffers buffers, int threads) : IBenchKernel
{
    public const int TileLength = 1 << 16;
    private static readonly TileKernel Kernel = TriadTile;
    private readonly StepScalars _scalars = new(1e-7f, 1f, 1f, 1f, 1);

    public string Name => "triad (limit)";
    public double NominalBytesPerParam => 12;
    public string BytesFormula => "12 = read g + read/write p";
    public Floor? Floor => null;
    public long? StateBytes => null;
    public long? FormulaStateBytes => null;
    public long ConstructionBytes => 0;

    public void Step()
    {
        int tiles = (buffers.Length + TileLength - 1) / TileLength;
        TileRunner.Run(tiles, threads, Kernel, buffers.Parameters, buffers.Gradient, default, default, default, default, in _scalars);
    }

    /// <summary>The triad over one tile (also a pass of the composed floor kernels in Limits.cs).</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    internal static bool TriadTile(int tile, in TileBuffers b, in StepScalars s)
    {
        int start = tile * TileLength;
        int n = Math.Min(TileLength, b.Parameters.Length - start);
        ref float p = ref Unsafe.Add(ref MemoryMarshal.GetReference(b.Parameters), start);
        ref float g = ref Unsafe.Add(ref MemoryMarshal.GetReference(b.Gradient), start);
        float a = s.LearningRate;
        int i = 0;
        if (Vector512.IsHardwareAccelerated)
        {
            var va = Vector512.Create(-a);
            for (; i <= n - 2 * Vector512<float>.Count; i += 2 * Vector512<float>.Count)
            {
                var p0 = Vector512.FusedMultiplyAdd(va, Vector512.LoadUnsafe(ref g, (nuint)i), Vector512.LoadUnsafe(ref p, (nuint)i));
                var p1 = Vector512.FusedMultiplyAdd(va, Vector512.LoadUnsafe(ref g, (nuint)(i + 16)), Vector512.LoadUnsafe(ref p, (nuint)(i + 16)));
                p0.StoreUnsafe(ref p, (nuint)i);
                p1.StoreUnsafe(ref p, (nuint)(i + 16));
            }
        }
        else if (Vector256.IsHardwareAccelerated)
        {
            var va = Vector256.Create(-a);
            for (; i <= n - Vector256<float>.Count; i += Vector256<float>.Count)
                Vector256.FusedMultiplyAdd(va, Vector256.LoadUnsafe(ref g, (nuint)i), Vector256.LoadUnsafe(ref p, (nuint)i)).StoreUnsafe(ref p, (nuint)i);
        }
        for (; i < n; i++) Unsafe.Add(ref p, i) = MathF.FusedMultiplyAdd(-a, Unsafe.Add(ref g, i), Unsafe.Add(ref p, i));
        return true;
    }

    public void Dispose() { }
}

/// <summary>Dense fused AdamW (<see cref="DenseAdamWCpu"/>), multi-threaded over fixed tiles.</summary>
public sealed class DenseAdamWKernel : IBenchKernel
{
    private readonly BenchBuffers _b;
    private readonly int _threads;
    private readonly float _beta1;
    private int _t;

    public DenseAdamWKernel(BenchBuffers buffers, int threads, float beta1)
    {
        _b = buffers; _threads = threads; _beta1 = beta1;
        long before = GC.GetTotalAllocatedBytes(true);
        _ = _b.DenseV;
        if (beta1 != 0) _ = _b.DenseM;
        ConstructionBytes = GC.GetTotalAllocatedBytes(true) - before;
    }

    public string Name => _beta1 == 0 ? "dense AdamW β1=0" : "dense AdamW";
    public double NominalBytesPerParam => _beta1 == 0 ? 20 : 28;
    public string BytesFormula => _beta1 == 0 ? "20 = read g + r/w p, v" : "28 = read g + r/w p, m, v";
    public Floor? Floor => Floors.DenseAdamW(_beta1 == 0);
    public long? StateBytes => (_beta1 == 0 ? 1L : 2L) * _b.Length * 4;
    public long? FormulaStateBytes => (_beta1 == 0 ? 1L : 2L) * _b.Length * 4;
    public long ConstructionBytes { get; }

    public void Step()
    {
        // The step counter cycles so that the bias corrections stay in a realistic range.
        _t = _t % 1000 + 1;
        var s = StepScalars.For(_t, 1e-4f, _beta1, 0.999, 0.01);
        DenseAdamWCpu.Step(_b.Parameters, _b.Gradient, _beta1 == 0 ? Span<float>.Empty : _b.DenseM, _b.DenseV, in s, _beta1, 0.999f, 1e-8f, _threads);
    }

    public void Dispose() { }
}

/// <summary>The CPU step of a source-generated optimizer <c>ModelXM.Layout_Rr[_B0]</c>, found by reflection.</summary>
public sealed class GeneratedKernel : IBenchKernel
{
    public delegate StepOutcome SpanStep(float learningRate, Span<float> parameters, ReadOnlySpan<float> gradient);

    private readonly SketchedOptimizerBase _opt;
    private readonly SpanStep _step;
    private readonly BenchBuffers _b;
    private readonly SketchLayout _layout;

    private GeneratedKernel(string name, SketchedOptimizerBase opt, SpanStep step, BenchBuffers b, SketchLayout layout, long constructionBytes)
    {
        Name = name; _opt = opt; _step = step; _b = b; _layout = layout; ConstructionBytes = constructionBytes;
    }

    public string Name { get; }
    public SketchedOptimizerBase Optimizer => _opt;
    public double NominalBytesPerParam => 12;
    public string BytesFormula => _layout == SketchLayout.Rotation
        ? "12 = read g + r/w p (sketch traffic 4·(β1≠0?4:2)/Ratio not counted)"
        : "12 = read g + r/w p, streamed; + 2 random bucket gathers/scatters per param (not counted)";
    public Floor? Floor => _layout == SketchLayout.Rotation
        ? Floors.Rotation(_b.Length, _opt.Settings.Ratio, _opt.Settings.Beta1 == 0)
        : Floors.Universal(_b.Length, _opt.Settings.Ratio, _opt.Settings.Beta1 == 0);
    public long? StateBytes => _opt.StateBytes;
    public long? FormulaStateBytes => (_opt.Settings.Beta1 != 0 ? 2L : 1L) * ((_b.Length + (long)_opt.Settings.Ratio - 1) / _opt.Settings.Ratio) * 4;
    public long ConstructionBytes { get; }

    public void Step()
    {
        var outcome = _step(1e-4f, _b.Parameters, _b.Gradient);
        if (outcome != StepOutcome.Applied) throw new InvalidOperationException($"{Name}: step was {outcome}");
    }

    public void Dispose() => _opt.Dispose();

    /// <summary>The model class holding generated variants for <paramref name="length"/>, or null.</summary>
    public static Type? ModelFor(int length) => length switch
    {
        1 << 20 => typeof(Model1M),
        1 << 24 => typeof(Model16M),
        1 << 26 => typeof(Model64M),
        1 << 28 => typeof(Model256M),
        _ => null,
    };

    public static string VariantName(SketchLayout layout, int ratio, bool beta1Zero) => $"{layout}_R{ratio}{(beta1Zero ? "_B0" : "")}";

    /// <summary>Creates the kernel, or returns null with the reason it is unavailable.</summary>
    public static GeneratedKernel? TryCreate(BenchBuffers b, int ratio, SketchLayout layout, bool beta1Zero, int threads, out string? why)
    {
        var model = ModelFor(b.Length);
        string variant = VariantName(layout, ratio, beta1Zero);
        if (model is null) { why = $"no generated model for d={b.Length} (sizes 1M, 16M, 64M, 256M)"; return null; }
        var type = model.GetNestedType(variant, BindingFlags.Public);
        if (type is null) { why = $"{model.Name}.{variant} was not generated (generator not merged yet?)"; return null; }
        var step = type.GetMethod("Step", BindingFlags.Public | BindingFlags.Instance, new[] { typeof(float), typeof(Span<float>), typeof(ReadOnlySpan<float>) });
        if (step is null) { why = $"{type.Name} has no Step(float, Span<float>, ReadOnlySpan<float>)"; return null; }
        long before = GC.GetTotalAllocatedBytes(true);
        var opt = (SketchedOptimizerBase)Activator.CreateInstance(type)!;
        long bytes = GC.GetTotalAllocatedBytes(true) - before;
        opt.MaxThreads = threads;
        why = null;
        string name = $"generated {layout}{(beta1Zero ? " β1=0" : "")}";
        return new GeneratedKernel(name, opt, step.CreateDelegate<SpanStep>(opt), b, layout, bytes);
    }
}

/// <summary>
/// The run-time (non-generated) <see cref="CountSketchAdam"/> over one tensor of the bench's length: a Count-Sketch layout
/// (<see cref="TryCreate"/>) or the factored second moment (<see cref="TryCreateFactored"/>).
/// </summary>
public sealed class RuntimeKernel : IBenchKernel
{
    /// <summary>Columns of the factored view: the tensor is d / 1024 rows × 1024 columns.</summary>
    public const int FactoredColumns = 1024;

    private readonly CountSketchAdam _opt;
    private readonly float[][] _p, _g;

    private RuntimeKernel(string name, OptimizerSettings settings, TensorSpec spec, BenchBuffers b, int threads,
                          double bytesPerParam, string bytesFormula, long formulaStateBytes, Floor floor)
    {
        Floor = floor;
        long before = GC.GetTotalAllocatedBytes(true);
        _opt = new CountSketchAdam(settings, [spec]) { MaxThreads = threads };
        ConstructionBytes = GC.GetTotalAllocatedBytes(true) - before;
        Name = name; _p = [b.Parameters]; _g = [b.Gradient];
        NominalBytesPerParam = bytesPerParam; BytesFormula = bytesFormula; FormulaStateBytes = formulaStateBytes;
    }

    public string Name { get; }
    public double NominalBytesPerParam { get; }
    public string BytesFormula { get; }
    public Floor? Floor { get; }
    public long? StateBytes => _opt.StateBytes;
    public long? FormulaStateBytes { get; }
    public long ConstructionBytes { get; }

    public void Step()
    {
        var outcome = _opt.Step(1e-4f, _p, _g);
        if (outcome != StepOutcome.Applied) throw new InvalidOperationException($"{Name}: step was {outcome}");
    }

    public void Dispose() => _opt.Dispose();

    /// <summary>
    /// A Count-Sketch layout at <paramref name="ratio"/>, β1 0.9; with <paramref name="maxGradientNorm"/> &gt; 0, global gradient-norm
    /// clipping (phase 1's k bucket sums of squares added once more; the bench's gradients exceed a bound of 1, so every step clips).
    /// </summary>
    public static RuntimeKernel TryCreate(BenchBuffers b, int ratio, SketchLayout layout, int threads, out string? why, double maxGradientNorm = 0)
    {
        why = null;
        var settings = new OptimizerSettings { Ratio = ratio, Layout = layout, MaxGradientNorm = maxGradientNorm };
        long state = 2L * ((b.Length + (long)ratio - 1) / ratio) * 4;
        return new RuntimeKernel($"runtime CountSketchAdam {layout}" + (maxGradientNorm > 0 ? " clipnorm=1" : ""), settings, new TensorSpec("W", b.Length), b, threads, 12,
            layout == SketchLayout.Rotation ? "12 (as generated Rotation)" : "12 + random gathers (as generated Universal)", state,
            layout == SketchLayout.Rotation ? Floors.Rotation(b.Length, ratio, beta1Zero: false) : Floors.Universal(b.Length, ratio, beta1Zero: false));
    }

    /// <summary>
    /// The run-time engine at Ratio 1: exact AdamW (β1 0.9) through the dense kernel, after phase 1's check of g. With
    /// <paramref name="maxGradientNorm"/> &gt; 0 that check also sums the squares (one pass either way) and phase 2 uses the scale.
    /// </summary>
    public static RuntimeKernel CreateDense(BenchBuffers b, int threads, double maxGradientNorm)
        => new("runtime dense (Ratio 1)" + (maxGradientNorm > 0 ? " clipnorm=1" : ""), new OptimizerSettings { Ratio = 1, MaxGradientNorm = maxGradientNorm },
               new TensorSpec("W", b.Length), b, threads, 32, "32 = read g (phase 1: check, and Σg² when clipping), then read p, g, m, v and write p, m, v",
               8L * b.Length, Floors.DenseEngine());

    /// <summary>
    /// The factored second moment (β1 = 0) of the tensor viewed as d / 1024 rows × 1024 columns; with <paramref name="clip"/>,
    /// Adafactor's update clipping (d = 1), which adds a pass that reads g again to form RMS(u). Null, with the reason, when d
    /// is not a multiple of <see cref="FactoredColumns"/>.
    /// </summary>
    public static RuntimeKernel? TryCreateFactored(BenchBuffers b, bool clip, int threads, out string? why)
    {
        why = b.Length % FactoredColumns == 0 ? null : $"d = {b.Length} is not a multiple of {FactoredColumns}";
        if (why is not null) return null;
        int rows = b.Length / FactoredColumns;
        var settings = new OptimizerSettings { Beta1 = 0, SecondMoment = SecondMomentEstimate.Factored, UpdateClipping = clip ? 1 : 0 };
        return new RuntimeKernel(clip ? "runtime Factored clip=1" : "runtime Factored", settings, new TensorSpec("W", [rows, FactoredColumns]), b, threads,
            clip ? 20 : 16,
            clip ? "20 = read g (phase 1: row and column sums), read g (RMS of the update), read g + r/w p (phase 2)"
                 : "16 = read g (phase 1: row and column sums), then read g + r/w p (phase 2)",
            4L * (rows + FactoredColumns), Floors.Factored(rows, FactoredColumns, clip));
    }

    /// <summary>
    /// The factored second moment with a block-quantised first moment (β1 0.9, block 128): 8 or 4 bits, to nearest or
    /// stochastically rounded. Null, with the reason, when d is not a multiple of <see cref="FactoredColumns"/>.
    /// </summary>
    public static RuntimeKernel? TryCreateQuantized(BenchBuffers b, bool fourBit, bool stochastic, int threads, out string? why)
    {
        why = b.Length % FactoredColumns == 0 ? null : $"d = {b.Length} is not a multiple of {FactoredColumns}";
        if (why is not null) return null;
        int rows = b.Length / FactoredColumns;
        var settings = new OptimizerSettings
        {
            SecondMoment = SecondMomentEstimate.Factored, FirstMoment = fourBit ? FirstMomentStorage.Quantized4 : FirstMomentStorage.Quantized8,
            StochasticRounding = stochastic,
        };
        var spec = new TensorSpec("W", [rows, FactoredColumns]);
        var plan = new TensorPlan(spec, settings);
        double codes = fourBit ? 1 : 2;   // read and written per parameter
        return new RuntimeKernel($"runtime Factored q{(fourBit ? 4 : 8)}{(stochastic ? " sr" : "")}", settings, spec, b, threads,
            16 + codes,
            $"{16 + codes:0} = read g (phase 1), then read g + r/w p + r/w the {(fourBit ? "4" : "8")}-bit codes (phase 2)",
            plan.StateBytes, Floors.FactoredQuantized(rows, FactoredColumns, fourBit, plan.QuantizationBlock));
    }
}

/// <summary>Builds the kernel list for one size and ratio; reports the kernels that could not be built.</summary>
public static class KernelSet
{
    public static List<IBenchKernel> Create(BenchBuffers b, int ratio, int threads, List<string> missing, Func<string, bool>? include = null)
    {
        include ??= _ => true;
        var list = new List<IBenchKernel>();
        void Add(IBenchKernel? k, string? why, string what)
        {
            if (k is null) { missing.Add($"{what}: {why}"); return; }
            if (include(k.Name)) list.Add(k); else k.Dispose();
        }
        Add(new TriadKernel(b, threads), null, "triad");
        foreach (var kind in Enum.GetValues<LimitKernel.Kind>())
            Add(new LimitKernel(b, threads, kind, ratio), null, kind.ToString());
        Add(new DenseAdamWKernel(b, threads, 0.9f), null, "dense AdamW");
        Add(new DenseAdamWKernel(b, threads, 0f), null, "dense AdamW β1=0");
        foreach (var layout in new[] { SketchLayout.Rotation, SketchLayout.Universal })
            foreach (bool b0 in new[] { false, true })
            {
                var k = GeneratedKernel.TryCreate(b, ratio, layout, b0, threads, out var why);
                Add(k, why, $"generated {layout}{(b0 ? " β1=0" : "")}");
            }
        foreach (var layout in new[] { SketchLayout.Rotation, SketchLayout.Universal })
        {
            var k = RuntimeKernel.TryCreate(b, ratio, layout, threads, out var why);
            Add(k, why, $"runtime CountSketchAdam {layout}");
        }
        foreach (bool clip in new[] { false, true })
            Add(RuntimeKernel.TryCreateFactored(b, clip, threads, out var why), why, clip ? "runtime Factored clip=1" : "runtime Factored");
        foreach (bool fourBit in new[] { false, true })
            foreach (bool stochastic in new[] { false, true })
                Add(RuntimeKernel.TryCreateQuantized(b, fourBit, stochastic, threads, out var why), why, $"runtime Factored q{(fourBit ? 4 : 8)}{(stochastic ? " sr" : "")}");
        Add(RuntimeKernel.TryCreate(b, ratio, SketchLayout.Rotation, threads, out var clipWhy, maxGradientNorm: 1), clipWhy, "runtime CountSketchAdam Rotation clipnorm=1");
        foreach (double clipNorm in new[] { 0.0, 1.0 })
            Add(RuntimeKernel.CreateDense(b, threads, clipNorm), null, clipNorm > 0 ? "runtime dense (Ratio 1) clipnorm=1" : "runtime dense (Ratio 1)");
        return list;
    }
}

/// <summary>
/// Profile evidence without hardware counters: times the two phases of a Rotation step separately (phase 1 reads g: 4 B/param;
/// phase 2 updates the buckets, then reads and writes p: 8 B/param, plus g again when β1 = 0), next to the triad, through the
/// runtime's Rotation kernel (<see cref="RotationCpuKernel"/>), the one every generated and run-time optimizer runs since the
/// engine redesign; then the two phases of the factored kernel (<see cref="FactoredCpuKernel"/>, β1 = 0), with and without its
/// AVX-512 row bodies. Each phase is also timed on an L2-sized tensor: the cost of its instructions when memory is no limit.
/// </summary>
public static class PhaseProbe
{
    /// <summary>Entries of the L2-sized tensors the phases are also timed on (256 KiB of p and of g).</summary>
    private const int SmallLength = 1 << 16;

    /// <summary>
    /// From the time of <paramref name="repeat"/> one-thread steps of the L2-sized tensor to that of d entries on all threads: scaled
    /// to d (when d is no multiple of <see cref="SmallLength"/>) and divided by the thread count (the cores share no L2, so each
    /// would do its share in the same time per entry: an assumption about the machine, stated with the figures).
    /// </summary>
    private static double L2Scale(int length, int repeat, int threads) => (double)length / ((long)repeat * SmallLength) / threads;

    /// <summary>One timed step of an L2-sized tensor: <paramref name="step"/> <paramref name="repeat"/> times.</summary>
    private static Action Repeated(int repeat, Action step) => () => { for (int i = 0; i < repeat; i++) step(); };

    public static void Run(BenchBuffers b, int ratio, int threads, int reps, TextWriter w)
    {
        if (b.Length < SmallLength)
        {
            w.WriteLine($"phases: not measured, d = {b.Length} is below the {SmallLength} entries of the L2-sized tensors the phases are also timed on");
            return;
        }
        foreach (bool b0 in new[] { false, true })
        {
            var settings = new OptimizerSettings { Ratio = ratio, Beta1 = b0 ? 0 : 0.9 };
            var plan = new TensorPlan(new TensorSpec("W", b.Length), settings);
            var kernel = new RotationCpuKernel(plan, settings);
            int k = plan.Buckets, tiles = kernel.Tiles;
            float[] m = new float[plan.FirstMomentFloats], v = new float[plan.SecondMomentFloats];
            // The workspaces as the optimizers allocate them (64-byte aligned, so phase 1 can use non-temporal stores).
            AlignedFloats sumM = new(b0 ? 0 : k), sumV = new(k);
            var triad = new TriadKernel(b, threads);
            var read = new LimitKernel(b, threads, LimitKernel.Kind.Read);
            var scale = new LimitKernel(b, threads, LimitKernel.Kind.Scale);
            var s = StepScalars.For(10, 1e-4f, b0 ? 0 : 0.9, 0.999, 0);
            // The same phases on an L2-sized tensor (one thread, repeated to the same entries, divided by the thread count; see Factored).
            var smallPlan = new TensorPlan(new TensorSpec("S", SmallLength), settings);
            var small = new RotationCpuKernel(smallPlan, settings);
            float[] ms = new float[smallPlan.FirstMomentFloats], vs = new float[smallPlan.SecondMomentFloats];
            float[] ps = b.Parameters.AsSpan(0, SmallLength).ToArray(), gs = b.Gradient.AsSpan(0, SmallLength).ToArray();
            AlignedFloats sumMs = new(b0 ? 0 : smallPlan.Buckets), sumVs = new(smallPlan.Buckets);
            int repeat = b.Length / SmallLength;
            double l2 = L2Scale(b.Length, repeat, threads);
            Action[] steps =
            {
                () => triad.Step(),
                () => kernel.Accumulate(threads, b.Parameters, b.Gradient, m, v, sumM, sumV, in s),
                () => kernel.Apply(threads, b.Parameters, b.Gradient, m, v, sumM, sumV, in s),
                () => read.Step(),
                () => scale.Step(),
                Repeated(repeat, () => small.Accumulate(1, ps, gs, ms, vs, sumMs, sumVs, in s)),
                Repeated(repeat, () => small.Apply(1, ps, gs, ms, vs, sumMs, sumVs, in s)),
            };
            var median = CpuBench.Interleaved(steps, reps).Select(CpuBench.Median).ToArray();
            double tt = median[0], ta = median[1], tp = median[2], tr = median[3], ts = median[4], ca = median[5] * l2, cp = median[6] * l2;
            double applyBytes = b0 ? 12 : 8;
            // Each phase's own floor from this run: phase 1 reads g (the read kernel); phase 2 reads and writes p (the scale kernel), and
            // reads g too when β1 = 0 (the triad). The k-sized sketch traffic of each phase is not in these floors.
            double applyFloor = b0 ? tt : ts;
            w.WriteLine($"phases of the Rotation kernel{(b0 ? " β1=0" : "")} ({tiles} tiles, {k / tiles} buckets/tile, {threads} threads, tuning {kernel.Tuning.Name}): " +
                        $"accumulate {ta:F2} ms ({4.0 * b.Length / ta / 1e6:F1} GB/s at 4 B/param; read floor {tr:F2} ms, vs_floor {tr / ta:F2}; in L2 {ca:F2} ms), " +
                        $"apply {tp:F2} ms ({applyBytes * b.Length / tp / 1e6:F1} GB/s at {applyBytes} B/param; {(b0 ? "triad" : "scale")} floor {applyFloor:F2} ms, vs_floor {applyFloor / tp:F2}; in L2 {cp:F2} ms), " +
                        $"sum {ta + tp:F2} ms; triad {tt:F2} ms ({12.0 * b.Length / tt / 1e6:F1} GB/s); " +
                        $"in L2: {SmallLength} entries stepped {repeat} times on 1 thread, scaled to d and / {threads} (its sums stored plainly)");
        }
        if (b.Length % RuntimeKernel.FactoredColumns == 0) Factored(b, threads, reps, w);
    }

    /// <summary>
    /// The two phases of the factored kernel (β1 = 0, d/1024 × 1024; <see cref="FactoredCpuKernel"/>): phase 1 reads g (row sums
    /// and column partials of g²; the read floor), phase 2 reads g and reads and writes p (the triad). Each phase is also timed on an
    /// L2-sized tensor of the same column count, repeated to the same number of entries, on one thread and divided by the thread
    /// count: what the phase's instructions cost when memory is no limit (a compute floor of that code; the phase runs no faster
    /// than either floor).
    /// </summary>
    private static void Factored(BenchBuffers b, int threads, int reps, TextWriter w)
    {
        const int cols = RuntimeKernel.FactoredColumns, smallRows = SmallLength / cols;
        var settings = new OptimizerSettings { Beta1 = 0, SecondMoment = SecondMomentEstimate.Factored };
        var plan = new TensorPlan(new TensorSpec("W", [b.Length / cols, cols]), settings);
        var kernel = new FactoredCpuKernel(plan, settings);
        var small = new FactoredCpuKernel(new TensorPlan(new TensorSpec("S", [smallRows, cols]), settings), settings);
        float[] v = new float[plan.SecondMomentFloats], vs = new float[smallRows + cols];
        float[] ps = b.Parameters.AsSpan(0, SmallLength).ToArray(), gs = b.Gradient.AsSpan(0, SmallLength).ToArray();
        int repeat = b.Length / SmallLength;
        double l2 = L2Scale(b.Length, repeat, threads);
        var triad = new TriadKernel(b, threads);
        var read = new LimitKernel(b, threads, LimitKernel.Kind.Read);
        var s = StepScalars.For(10, 1e-4f, 0, 0.999, 0);
        // The quantised phase 2 of the recommended 4-bit setting (FactoredQ4: β1 = 0.9, 4-bit codes, stochastic rounding).
        var settingsQ = new OptimizerSettings { SecondMoment = SecondMomentEstimate.Factored, FirstMoment = FirstMomentStorage.Quantized4, StochasticRounding = true };
        var planQ = new TensorPlan(new TensorSpec("W", [b.Length / cols, cols]), settingsQ);
        var smallPlanQ = new TensorPlan(new TensorSpec("S", [smallRows, cols]), settingsQ);
        var kernelQ = new FactoredCpuKernel(planQ, settingsQ, new byte[planQ.FirstMomentCodeBytes]);
        var smallQ = new FactoredCpuKernel(smallPlanQ, settingsQ, new byte[smallPlanQ.FirstMomentCodeBytes]);
        float[] mQ = new float[planQ.FirstMomentFloats], vQ = new float[planQ.SecondMomentFloats];
        float[] mQs = new float[smallPlanQ.FirstMomentFloats], vQs = new float[smallPlanQ.SecondMomentFloats];
        var sQ = StepScalars.For(10, 1e-4f, 0.9, 0.999, 0);
        kernelQ.Accumulate(threads, b.Parameters, b.Gradient, mQ, vQ, [], [], in sQ);   // its row and column sums, once
        smallQ.Accumulate(1, ps, gs, mQs, vQs, [], [], in sQ);
        bool wide = WideCpu.Enabled;
        // Each phase with and without the AVX-512 row bodies (WideCpu; the same floats either way), the switch set for that step only.
        Action Narrow(Action step) => () => { WideCpu.Enabled = false; try { step(); } finally { WideCpu.Enabled = wide; } };
        Action accumulate = () => kernel.Accumulate(threads, b.Parameters, b.Gradient, [], v, [], [], in s);
        Action apply = () => kernel.Apply(threads, b.Parameters, b.Gradient, [], v, [], [], in s);
        Action accumulateL2 = Repeated(repeat, () => small.Accumulate(1, ps, gs, [], vs, [], [], in s));
        Action applyL2 = Repeated(repeat, () => small.Apply(1, ps, gs, [], vs, [], [], in s));
        Action[] steps =
        {
            () => triad.Step(), accumulate, apply, () => read.Step(), accumulateL2, applyL2,
            Narrow(accumulate), Narrow(apply), Narrow(accumulateL2), Narrow(applyL2),
            () => kernelQ.Apply(threads, b.Parameters, b.Gradient, mQ, vQ, [], [], in sQ),
            Repeated(repeat, () => smallQ.Apply(1, ps, gs, mQs, vQs, [], [], in sQ)),
        };
        var median = CpuBench.Interleaved(steps, reps).Select(CpuBench.Median).ToArray();
        double tt = median[0], ta = median[1], tp = median[2], tr = median[3], ca = median[4] * l2, cp = median[5] * l2;
        w.WriteLine($"phases of the factored kernel β1=0 ({b.Length / cols} x {cols}, {threads} threads): " +
                    $"accumulate {ta:F2} ms (read floor {tr:F2} ms, vs_floor {tr / ta:F2}; in L2 {ca:F2} ms), " +
                    $"apply {tp:F2} ms (triad floor {tt:F2} ms, vs_floor {tt / tp:F2}; in L2 {cp:F2} ms), " +
                    $"sum {ta + tp:F2} ms against read + triad {tr + tt:F2} ms (vs_floor {(tr + tt) / (ta + tp):F2}); " +
                    (wide ? $"without the AVX-512 row bodies: accumulate {median[6]:F2} ms (in L2 {median[8] * l2:F2}), apply {median[7]:F2} ms (in L2 {median[9] * l2:F2}); "
                          : "(no AVX-512: the row bodies do not run); ") +
                    $"in L2: {smallRows} x {cols} stepped {repeat} times on 1 thread, scaled to d and / {threads}");
        // Its floor: the triad's 12 B/param plus reading and writing the 4-bit codes (1 B/param) and the block scales (8/B).
        double qBytes = 12 + 1 + 8.0 / planQ.QuantizationBlock, qFloor = tt * qBytes / 12;
        w.WriteLine($"phase 2 of the 4-bit factored kernel (FactoredQ4: 4-bit codes, stochastic rounding, blocks of {planQ.QuantizationBlock}): " +
                    $"apply {median[10]:F2} ms (floor {qFloor:F2} ms = triad × {qBytes:F3}/12, vs_floor {qFloor / median[10]:F2}; in L2 {median[11] * l2:F2} ms)");
    }
}
