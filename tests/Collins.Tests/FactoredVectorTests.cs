using ILGPU;
using ILGPU.Runtime;
using ILGPU.Runtime.CPU;
using static Collins.Tests.ReferenceTestHelpers;

namespace Collins.Tests;

/// <summary>
/// Vectors under <see cref="SecondMomentEstimate.Factored"/>, factored as n rows × 1 column (C = 1), on the edges of that view: a
/// vector of one entry, vectors shorter than a quantisation block or a vector width, a one-column matrix; on an ILGPU accelerator
/// against the CPU engine, and on the CPU for any thread count with the small tensors batched.
/// </summary>
[Trait("Category", "Kernels")]
public sealed class FactoredVectorTests
{
    public static TheoryData<string> Variants => new() { "factored", "factored clip schedule", "q8", "q4 sr block 64", "q4 clip" };

    private static OptimizerSettings SettingsOf(string name) => name switch
    {
        "factored" => new() { Beta1 = 0, SecondMoment = SecondMomentEstimate.Factored, DenseThreshold = 0 },
        "factored clip schedule" => new() { Beta1 = 0, SecondMoment = SecondMomentEstimate.Factored, DenseThreshold = 0, UpdateClipping = 1, Beta2Schedule = 0.8 },
        "q8" => new() { SecondMoment = SecondMomentEstimate.Factored, FirstMoment = FirstMomentStorage.Quantized8, DenseThreshold = 0 },
        "q4 sr block 64" => new() { SecondMoment = SecondMomentEstimate.Factored, FirstMoment = FirstMomentStorage.Quantized4, StochasticRounding = true, QuantizationBlock = 64, DenseThreshold = 0 },
        "q4 clip" => new() { SecondMoment = SecondMomentEstimate.Factored, FirstMoment = FirstMomentStorage.Quantized4, UpdateClipping = 1, DenseThreshold = 0 },
        _ => throw new ArgumentOutOfRangeException(nameof(name), name, "unknown variant"),
    };

    private static readonly TensorSpec[] Edges =
        [new("one", 1), new("v7", 7), new("v300", 300), new("v5000", 5000), new("m11", [1, 1]), new("column", [40, 1]), new("W", [33, 65])];

    [Theory]
    [MemberData(nameof(Variants))]
    public void The_device_steps_vectors_as_the_CPU_engine_does(string variant)
    {
        var settings = SettingsOf(variant);
        using var context = Context.Create(b => b.CPU());
        using var accelerator = context.CreateCPUAccelerator(0);
        using var cpu = new CountSketchAdam(settings, Edges);
        using var device = new CountSketchAdam(settings, Edges, accelerator);
        Assert.All(cpu.Tensors, t => Assert.True(t.IsFactored, t.Name));
        Assert.Equal((5000, 1), (cpu.Tensors[3].FactorRows, cpu.Tensors[3].FactorColumns));
        var rng = new Random(1);
        var pc = cpu.Tensors.Select(t => Uniform(rng, t.Length)).ToArray();
        var pd = pc.Select(x => { var b = accelerator.Allocate1D<float>(x.Length); b.View.CopyFromCPU(x); return b; }).ToArray();
        try
        {
            for (int step = 1; step <= 10; step++)
            {
                var g = cpu.Tensors.Select(t => Normal(rng, t.Length)).ToArray();
                var gd = g.Select(x => { var b = accelerator.Allocate1D<float>(x.Length); b.View.CopyFromCPU(x); return b; }).ToArray();
                Assert.Equal(StepOutcome.Applied, cpu.Step(1e-2f, pc, g));
                Assert.Equal(StepOutcome.Applied, device.Step(1e-2f, pd.Select(b => (ArrayView<float>)b.View).ToArray(), gd.Select(b => (ArrayView<float>)b.View).ToArray()));
                foreach (var b in gd) b.Dispose();
            }
            for (int t = 0; t < Edges.Length; t++)
            {
                var host = pd[t].GetAsArray1D();
                for (int i = 0; i < host.Length; i++)
                    Assert.True(Math.Abs(host[i] - pc[t][i]) <= 1e-4 * Math.Max(1, Math.Abs(pc[t][i])), $"{variant}: {Edges[t].Name}[{i}] device {host[i]}, CPU {pc[t][i]}");
                Assert.All(cpu.CopySecondMoment(t), x => Assert.True(float.IsFinite(x) && x >= 0));
            }
        }
        finally
        {
            foreach (var b in pd) b.Dispose();
        }
    }

    [Theory]
    [MemberData(nameof(Variants))]
    public void Many_vectors_step_bit_identically_for_any_thread_count_batched_or_not(string variant)
    {
        var settings = SettingsOf(variant);
        var specs = Enumerable.Range(0, 60).Select(i => new TensorSpec($"v{i}", 3000 + 7 * i)).Append(new TensorSpec("one", 1)).ToArray();
        float[][] Run(int threads)
        {
            using var opt = new CountSketchAdam(settings, specs) { MaxThreads = threads };
            Assert.Equal(threads > 1, opt.IsBatchedOnCpu(3, threads));
            var rng = new Random(4);
            var p = opt.Tensors.Select(t => Uniform(rng, t.Length)).ToArray();
            for (int k = 0; k < 4; k++)
                Assert.Equal(StepOutcome.Applied, opt.Step(1e-2f, p, opt.Tensors.Select(t => Normal(rng, t.Length)).ToArray()));
            return p.Concat(Enumerable.Range(0, specs.Length).Select(opt.CopySecondMoment)).ToArray();
        }
        var one = Run(1);
        var two = Run(2);
        Assert.Equal(one.Length, two.Length);
        for (int i = 0; i < one.Length; i++) Assert.Equal(one[i], two[i]);
    }
}
