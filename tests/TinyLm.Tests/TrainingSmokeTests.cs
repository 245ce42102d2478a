using System.Reflection;
using Collins;
using Xunit.Abstractions;

namespace TinyLm.Tests;

public class TrainingSmokeTests(ITestOutputHelper output)
{
    private static readonly Lazy<Corpus> Data = new(() => Corpus.Load());

    // ~50 steps of 8×64 tokens on the first 50k training characters.
    private static readonly TrainOptions Smoke = new()
    {
        Steps = 50, Batch = 8, LearningRate = 3e-3f, WarmupSteps = 5, EvalEvery = 0, FinalEvalWindows = 64, TrainTokens = 50_000, Seed = 3,
    };

    private RunResult Train(ITrainerOptimizer opt)
    {
        var r = Trainer.Train(TinyLmModel.Config, Data.Value, opt, Smoke);
        output.WriteLine($"{r.Name} ({r.Implementation}): first {r.TrainLosses.Take(5).Average():F4} last {r.TrainLosses.TakeLast(5).Average():F4} val {r.FinalValidationLoss:F4}");
        return r;
    }

    private static void AssertLossFalls(RunResult r)
    {
        double first = r.TrainLosses.Take(5).Average(), last = r.TrainLosses.TakeLast(5).Average();
        Assert.True(r.TrainLosses[0] > 4.0, $"{r.Name}: the untrained model should be near ln 65 ≈ 4.17, was {r.TrainLosses[0]:F3}");
        Assert.True(last < first - 0.5, $"{r.Name}: train loss fell only from {first:F3} to {last:F3}");
        Assert.True(r.FinalValidationLoss < 3.6, $"{r.Name}: validation loss {r.FinalValidationLoss:F3}");
    }

    [Fact]
    public void AdamW_loss_falls() => AssertLossFalls(Train(OptimizerCatalog.Create("AdamW", TinyLmModel.Config)));

    [Theory]
    [InlineData("C32")]
    [InlineData("C32Mean")]
    public void Collins_ratio_32_loss_falls(string variant)
    {
        var opt = OptimizerCatalog.Create(variant, TinyLmModel.Config);
        var adam = new DenseAdamW(TinyLmModel.Config.Specs());
        Assert.True(opt.StateBytes * 10 < adam.StateBytes, $"{variant} keeps {opt.StateBytes} B, AdamW {adam.StateBytes} B");
        AssertLossFalls(Train(opt));
    }

    [Fact]
    public void Collins_ratio_1_tracks_AdamW_within_one_percent()
    {
        var adam = Train(OptimizerCatalog.Create("AdamW", TinyLmModel.Config));
        var c1 = Train(OptimizerCatalog.Create("C1", TinyLmModel.Config));
        Assert.Equal(adam.StateBytes, c1.StateBytes);
        for (int i = 0; i < adam.TrainLosses.Count; i++)
            Assert.True(Math.Abs(c1.TrainLosses[i] - adam.TrainLosses[i]) <= 0.01 * adam.TrainLosses[i],
                $"step {i}: Collins Ratio 1 {c1.TrainLosses[i]:F5} vs AdamW {adam.TrainLosses[i]:F5}");
        Assert.True(Math.Abs(c1.FinalValidationLoss - adam.FinalValidationLoss) <= 0.01 * adam.FinalValidationLoss);
    }

    [Fact]
    public void Training_is_deterministic_given_the_seed()
    {
        var o = Smoke with { Steps = 10 };
        var a = Trainer.Train(TinyLmModel.Config, Data.Value, OptimizerCatalog.Create("C32", TinyLmModel.Config), o);
        var b = Trainer.Train(TinyLmModel.Config, Data.Value, OptimizerCatalog.Create("C32", TinyLmModel.Config), o);
        var c = Trainer.Train(TinyLmModel.Config, Data.Value, OptimizerCatalog.Create("C32", TinyLmModel.Config), o with { Seed = 4 });
        Assert.Equal(a.TrainLosses, b.TrainLosses);
        Assert.Equal(a.FinalValidationLoss, b.FinalValidationLoss);
        Assert.NotEqual(a.TrainLosses, c.TrainLosses);
    }
}

public class ModelDeclarationTests
{
    [Fact]
    public void Tensor_attributes_match_the_model_config_in_order()
    {
        var fields = typeof(TinyLmModel).GetFields(BindingFlags.Public | BindingFlags.Instance)
            .Where(f => f.GetCustomAttribute<TensorAttribute>() is not null)
            .OrderBy(f => f.MetadataToken).ToArray();
        var specs = TinyLmModel.Config.Specs();
        Assert.Equal(specs.Select(s => s.Name), fields.Select(f => f.Name));
        for (int i = 0; i < specs.Count; i++)
            Assert.Equal(specs[i].Shape, fields[i].GetCustomAttribute<TensorAttribute>()!.Shape);
        var model = new TinyLmModel();
        var tensors = model.Tensors();
        for (int i = 0; i < specs.Count; i++)
            Assert.Same(fields[i].GetValue(model), tensors[i]);
    }

    [Fact]
    public void Big_matrices_are_sketched_and_small_vectors_stay_dense()
    {
        var settings = OptimizerCatalog.ToSettings(OptimizerCatalog.Variants.Single(v => v.Name == "C32"));
        var plans = TinyLmModel.Config.Specs().Select(s => new TensorPlan(s, settings)).ToDictionary(p => p.Name);
        foreach (var name in new[] { "Embed", "Pos", "L0Wqkv", "L0Wo", "L0W1", "L0W2", "L1Wqkv", "L1Wo", "L1W1", "L1W2", "Head" })
            Assert.False(plans[name].IsDense, name);
        foreach (var name in new[] { "L0Ln1G", "L0B1", "LnfB", "HeadB" })
            Assert.True(plans[name].IsDense, name);
    }

    [Fact]
    public void Every_declared_variant_can_be_created()
    {
        foreach (var name in OptimizerCatalog.Names)
        {
            var opt = OptimizerCatalog.Create(name, TinyLmModel.Config);
            Assert.Equal(name, opt.Name);
            Assert.True(opt.StateBytes > 0);
        }
        Assert.Throws<ArgumentException>(() => OptimizerCatalog.Create("NoSuchVariant", TinyLmModel.Config));
    }
}

public class SpanStepAdapterTests
{
    // Stands in for a generated optimizer: a Step with one Span/ReadOnlySpan pair per tensor.
    public sealed class FakeGenerated
    {
        public readonly List<(float Lr, float[] P0, float G0Sum)> Calls = new();
        public long StateBytes => 123;
        public StepOutcome Step(float learningRate, Span<float> a, ReadOnlySpan<float> aGrad, Span<float> b, ReadOnlySpan<float> bGrad)
        {
            for (int i = 0; i < a.Length; i++) a[i] -= learningRate * aGrad[i];
            for (int i = 0; i < b.Length; i++) b[i] -= learningRate * bGrad[i];
            return StepOutcome.Applied;
        }
    }

    [Fact]
    public void Spreads_arrays_into_span_pairs_in_order()
    {
        var fake = new FakeGenerated();
        var opt = new SpanStepOptimizer("Fake", fake, tensorCount: 2);
        float[][] p = [[1, 2], [10, 20, 30]];
        float[][] g = [[1, 1], [2, 2, 2]];
        opt.Step(0.5f, p, g);
        Assert.Equal(new float[] { 0.5f, 1.5f }, p[0]);
        Assert.Equal(new float[] { 9, 19, 29 }, p[1]);
        Assert.Equal(123, opt.StateBytes);
    }

    [Fact]
    public void Refuses_a_type_without_a_matching_step()
    {
        Assert.Throws<ArgumentException>(() => new SpanStepOptimizer("Fake", new FakeGenerated(), tensorCount: 3));
        Assert.Null(SpanStepOptimizer.FindStep(typeof(string), 1));
    }
}
