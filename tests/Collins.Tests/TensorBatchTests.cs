using Collins.Kernels;
using static Collins.Tests.ReferenceTestHelpers;

namespace Collins.Tests;

/// <summary>
/// The small tensors' batch of the CPU step (<see cref="TensorBatch"/>): which tensors it takes, and that a batched step is
/// bit-identical to one that runs every tensor on its own (MaxThreads = 1 batches nothing), for every kind of tensor.
/// </summary>
[Trait("Category", "Kernels")]
public class TensorBatchTests
{
    // Sixty-two small tensors (together above KernelTiles.BatchMinLength) of every shape class (ragged matrices, a sketched vector, dense vectors), none dominating the rest, so
    // that two and three threads batch them, and one of several tiles that is too large to share the batch (it runs its own tiles in
    // parallel, and seven threads, which batch nothing here, still give the pool workers tiles).
    private static TensorSpec[] SmallSpecs(bool sketchedVector)
    {
        var specs = new List<TensorSpec> { new("Big", [300, 400]) };
        for (int i = 0; i < 20; i++)
        {
            int j = i % 10;
            specs.Add(new($"W{i}", [40 + 3 * j, 96 + 4 * j]));
            specs.Add(new($"b{i}", 50 + 30 * j));                                    // dense: below the dense threshold
            specs.Add(new($"U{i}", [3, 5 + j % 3, 300 - 10 * j]));
        }
        if (sketchedVector) specs.Add(new("v", 6000));                              // a sketched vector (factored as 6000 × 1 under Factored)
        specs.Add(new("one", 1));
        return specs.ToArray();
    }

    public static TheoryData<string> Settings => new() { "Rotation clip", "Rotation Mean b1=0", "Universal", "Factored b1=0 update-clip", "Factored q4 sr clip", "Factored q8" };

    private static OptimizerSettings SettingsOf(string name) => name switch
    {
        "Rotation clip" => new() { Ratio = 8, WeightDecay = 0.01, MaxGradientNorm = 0.5 },
        "Rotation Mean b1=0" => new() { Ratio = 16, Beta1 = 0, SecondMoment = SecondMomentEstimate.Mean },
        "Universal" => new() { Layout = SketchLayout.Universal, Ratio = 4 },
        "Factored b1=0 update-clip" => new() { Beta1 = 0, SecondMoment = SecondMomentEstimate.Factored, UpdateClipping = 1, Beta2Schedule = 0.8 },
        "Factored q4 sr clip" => new() { SecondMoment = SecondMomentEstimate.Factored, FirstMoment = FirstMomentStorage.Quantized4, StochasticRounding = true, QuantizationBlock = 32, MaxGradientNorm = 0.5 },
        "Factored q8" => new() { SecondMoment = SecondMomentEstimate.Factored, FirstMoment = FirstMomentStorage.Quantized8, WeightDecay = 0.1 },
        _ => throw new ArgumentOutOfRangeException(nameof(name), name, "unknown setting"),
    };

    [Theory]
    [MemberData(nameof(Settings))]
    public void Batched_steps_are_bit_identical_to_unbatched_ones_for_any_MaxThreads(string setting)
    {
        var settings = SettingsOf(setting);
        var specs = SmallSpecs(sketchedVector: true);
        Generated.ThreadCountDeterminism.AssertBitIdentical(threads =>
        {
            using var opt = new CountSketchAdam(settings, specs) { MaxThreads = threads };
            // One thread batches nothing (the reference run); two and three batch every tensor of this model but Big; more threads
            // leave more of the largest out (each batched tensor is one thread's work), never fewer.
            int Batched(int t) => Enumerable.Range(0, specs.Length).Count(i => opt.IsBatchedOnCpu(i, t));
            Assert.False(opt.IsBatchedOnCpu(0, threads));
            if (threads <= 3) Assert.Equal(threads == 1 ? 0 : specs.Length - 1, Batched(threads));
            else Assert.InRange(Batched(threads), 0, Batched(3));
            var rng = new Random(7);
            var p = opt.Tensors.Select(t => Uniform(rng, t.Length)).ToArray();
            for (int step = 0; step < 3; step++)
                Assert.Equal(StepOutcome.Applied, opt.Step(1e-2f, p, opt.Tensors.Select(t => Normal(rng, t.Length)).ToArray()));
            return Generated.ThreadCountDeterminism.Capture(opt, p);
        });
    }

    [Fact]
    public void A_refused_batched_step_names_the_first_bad_tensor_in_declaration_order_and_changes_nothing()
    {
        var specs = SmallSpecs(sketchedVector: true);
        using var opt = new CountSketchAdam(new OptimizerSettings { Ratio = 8 }, specs) { MaxThreads = 2 };
        // U0 is declared before W19 but is smaller, so the batch (largest first) runs W19 first: the verdicts must still be read in
        // declaration order.
        int early = Array.FindIndex(specs, s => s.Name == "U0"), late = Array.FindIndex(specs, s => s.Name == "W19");
        Assert.True(early < late && opt.Tensors[early].Length < opt.Tensors[late].Length);
        Assert.True(opt.IsBatchedOnCpu(early, 2) && opt.IsBatchedOnCpu(late, 2));
        var rng = new Random(3);
        var p = opt.Tensors.Select(t => Uniform(rng, t.Length)).ToArray();
        var before = p.Select(x => (float[])x.Clone()).ToArray();
        var g = opt.Tensors.Select(t => Normal(rng, t.Length)).ToArray();
        g[late][5] = float.NaN;
        g[early][17] = float.PositiveInfinity;
        Assert.Equal(StepOutcome.SkippedNonFinite, opt.Step(1e-2f, p, g));
        Assert.Equal(early, opt.LastNonFinite!.Value.TensorIndex);
        Assert.Equal(17, opt.LastNonFinite!.Value.ElementIndex);
        for (int t = 0; t < p.Length; t++)
        {
            Assert.Equal(before[t], p[t]);
            Assert.All(opt.CopySecondMoment(t), x => Assert.Equal(0f, x));
        }
        Assert.Equal(0, opt.StepCount);
    }

    [Fact]
    public void The_batch_leaves_out_large_tensors_and_those_that_would_dominate_it()
    {
        var specs = new List<TensorSpec> { new("huge", KernelTiles.BatchedTensorMaxLength + 1), new("big", 400_000) };
        for (int i = 0; i < 20; i++) specs.Add(new($"s{i}", 10_000 + i));
        using var opt = new CountSketchAdam(new OptimizerSettings(), specs);
        // Two threads: "huge" exceeds the length bound; "big" holds more than 1/8 of the 600,190 entries it would share the batch with.
        Assert.False(opt.IsBatchedOnCpu(0, 2));
        Assert.False(opt.IsBatchedOnCpu(1, 2));
        Assert.All(Enumerable.Range(2, 20), i => Assert.True(opt.IsBatchedOnCpu(i, 2)));
        // Ten threads: a 10,000-entry tensor is more than 1/40 of the 200,190 left, so none is batched (nor are single survivors).
        Assert.All(Enumerable.Range(0, specs.Count), i => Assert.False(opt.IsBatchedOnCpu(i, 10)));
        // Small tensors that hold fewer than BatchMinLength entries together are not worth waking the pool for.
        int few = KernelTiles.BatchMinLength / 1000 - 1;
        using var small = new CountSketchAdam(new OptimizerSettings(), Enumerable.Range(0, few).Select(i => new TensorSpec($"t{i}", 1000)).ToArray());
        Assert.All(Enumerable.Range(0, few), i => Assert.False(small.IsBatchedOnCpu(i, 2)));
        using var enough = new CountSketchAdam(new OptimizerSettings(), Enumerable.Range(0, few + 2).Select(i => new TensorSpec($"t{i}", 1000)).ToArray());
        Assert.All(Enumerable.Range(0, few + 2), i => Assert.True(enough.IsBatchedOnCpu(i, 2)));
        // One thread batches nothing; back to two, the same choice as before.
        Assert.All(Enumerable.Range(0, specs.Count), i => Assert.False(opt.IsBatchedOnCpu(i, 1)));
        Assert.True(opt.IsBatchedOnCpu(5, 2));
    }
}
