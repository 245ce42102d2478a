using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using Collins.Kernels;
using static Collins.Tests.Generated.GeneratedTestSupport;

namespace Collins.Tests;

/// <summary>
/// The AVX-512 paths of the factored kernel (<see cref="WideCpu"/>) against the <see cref="System.Numerics.Vector{T}"/> and scalar
/// paths they stand in for: the same optimizer, inputs and steps with <see cref="WideCpu.Enabled"/> on and off must leave the same
/// parameters, block scales, codes, second moments and update clipping's Σ u², bit for bit. The shapes put blocks across rows, partial last blocks,
/// columns that are not multiples of 16 and rows shorter than a block next to whole-block runs, so every switch between the paths
/// is crossed. On a CPU without AVX-512F both runs take the fallback (then only determinism is checked).
/// </summary>
[Trait("Category", "Kernels")]
public class WideKernelTests
{
    private static readonly object Switch = new();

    public static TheoryData<string> Variants => new()
    {
        "q8", "q8 sr", "q4", "q4 sr", "q8 block 32", "q4 block 32 sr", "q4 block 64", "q8 block 256 sr",
        "q8 clip", "q4 sr clip", "q8 gradient-norm", "q4 sr gradient-norm clip",
        "factored", "factored clip", "factored gradient-norm clip", "factored schedule clip",
    };

    private static OptimizerSettings Variant(string name)
    {
        var storage = name.StartsWith("q4", StringComparison.Ordinal) ? FirstMomentStorage.Quantized4 : FirstMomentStorage.Quantized8;
        var settings = name.StartsWith("factored", StringComparison.Ordinal)
            ? new OptimizerSettings { SecondMoment = SecondMomentEstimate.Factored, Beta1 = 0 }
            : new OptimizerSettings { SecondMoment = SecondMomentEstimate.Factored, Beta1 = 0.9, FirstMoment = storage, StochasticRounding = name.Contains(" sr", StringComparison.Ordinal) };
        foreach (int block in new[] { 32, 64, 256 })
            if (name.Contains($"block {block}", StringComparison.Ordinal)) settings = settings with { QuantizationBlock = block };
        if (name.Contains("clip", StringComparison.Ordinal)) settings = settings with { UpdateClipping = 0.5 };
        if (name.Contains("gradient-norm", StringComparison.Ordinal)) settings = settings with { MaxGradientNorm = 2 };
        if (name.Contains("schedule", StringComparison.Ordinal)) settings = settings with { Beta2Schedule = 0.8 };
        return settings with { WeightDecay = 0.01, DenseThreshold = 1 };
    }

    // Row lengths: whole blocks per row (1024, 512), blocks across rows and a partial last block (1000 × 3 + 7 rows of 100),
    // rows shorter than a block (40), one row of many blocks whose length is no multiple of 16 (4099); and rows that take the
    // 16-lane body, then the 8-lane loop, then the scalar tail (27 = 16 + 8 + 3), only the 8-lane loop and the tail (11), or only
    // the tail (5).
    private static readonly IReadOnlyList<TensorSpec> Specs =
    [
        new TensorSpec("A", [8, 1024]), new TensorSpec("B", [3, 1000]), new TensorSpec("C", [7, 100]), new TensorSpec("D", [9, 40]),
        new TensorSpec("E", [1, 4099]), new TensorSpec("F", [6, 512]), new TensorSpec("G", [2, 2, 200]),
        new TensorSpec("H", [13, 27]), new TensorSpec("I", [9, 11]), new TensorSpec("J", [7, 5]),
    ];

    private static float[][] Run(OptimizerSettings settings, bool wide, int threads)
    {
        lock (Switch)
        {
            bool saved = WideCpu.Enabled;
            WideCpu.Enabled = wide && saved;
            try
            {
                using var o = new CountSketchAdam(settings, Specs) { MaxThreads = threads };
                var p = Parameters(Specs, 3);
                var squares = new List<float>();
                for (int step = 1; step <= 6; step++)
                {
                    var g = Gradients(Specs, 3, step);
                    // Every fifth entry 10⁻⁶ times smaller (u² spans more than a double's 53 bits over a row, so Σ u² depends
                    // on the order of its additions), a block of zeros and a block far below Q / float.MaxValue (stored as m = 0).
                    foreach (var gt in g)
                        for (int i = 0; i < gt.Length; i += 5) gt[i] *= 1e-6f;
                    Array.Clear(g[0], 256, 128);
                    for (int i = 512; i < 640; i++) g[0][i] *= 1e-39f;
                    Assert.Equal(StepOutcome.Applied, o.Step(1e-2f, p, g));
                    // Update clipping's Σ u² of the step (a double: its two halves as floats, bit for bit).
                    for (int t = 0; t < Specs.Count; t++)
                    {
                        long bits = BitConverter.DoubleToInt64Bits(((FactoredCpuKernel)o.CpuKernelOf(t)).UpdateSquares);
                        squares.Add(BitConverter.Int32BitsToSingle((int)bits));
                        squares.Add(BitConverter.Int32BitsToSingle((int)(bits >> 32)));
                    }
                }
                if (settings.UpdateClipping > 0) Assert.Contains(squares, x => x != 0f);
                var state = new List<float[]>(p) { squares.ToArray() };
                for (int t = 0; t < Specs.Count; t++)
                {
                    state.Add(o.CopySecondMoment(t));
                    if (settings.Beta1 > 0)
                    {
                        state.Add(o.CopyFirstMoment(t));
                        state.Add([.. o.CopyFirstMomentCodes(t).Select(b => (float)b)]);
                    }
                }
                return [.. state];
            }
            finally { WideCpu.Enabled = saved; }
        }
    }

    [Theory]
    [MemberData(nameof(Variants))]
    public void The_wide_paths_give_the_fallback_bits(string variant)
    {
        var settings = Variant(variant);
        var fallback = Run(settings, wide: false, threads: 1);
        AssertBitIdentical(fallback, Run(settings, wide: true, threads: 1));
        AssertBitIdentical(fallback, Run(settings, wide: true, threads: 3));
    }

    [Fact]
    public void The_wide_paths_run_where_the_hardware_has_AVX512F()
        => Assert.Equal(Vector512.IsHardwareAccelerated && Avx512F.IsSupported, WideCpu.Enabled);
}
