using Collins.Tests.Generated;
using static Collins.Tests.ReferenceTestHelpers;
using static Collins.Tests.CheckpointTests;

namespace Collins.Tests;

/// <summary>The base-class reliability features, exercised through a source-generated optimizer.</summary>
public class CheckpointGeneratedTests
{
    private static float[][] Gradients(Random rng) => RaggedUniversal.Optimizer.TensorSpecs
        .Select(s => Normal(rng, s.Shape.Aggregate(1, (a, b) => a * b))).ToArray();

    private static StepOutcome Step(RaggedUniversal.Optimizer opt, float[][] p, float[][] g)
        => opt.Step(1e-2f, p[0], g[0], p[1], g[1], p[2], g[2], p[3], g[3]);

    [Fact]
    public void Generated_optimizer_resumes_bit_for_bit_and_shares_the_format_with_CountSketchAdam()
    {
        var rng = new Random(31);
        var grads = Enumerable.Range(0, 6).Select(_ => Gradients(rng)).ToArray();
        var p0 = RaggedUniversal.Optimizer.TensorSpecs.Select(s => Uniform(rng, s.Shape.Aggregate(1, (a, b) => a * b))).ToArray();

        using var straight = new RaggedUniversal.Optimizer();
        var p1 = Clone(p0);
        foreach (var g in grads) Assert.Equal(StepOutcome.Applied, Step(straight, p1, g));

        var p2 = Clone(p0);
        byte[] bytes;
        using (var first = new RaggedUniversal.Optimizer())
        {
            for (int s = 0; s < 3; s++) Step(first, p2, grads[s]);
            var ms = new MemoryStream();
            first.Save(ms);
            bytes = ms.ToArray();
        }
        using var resumed = new RaggedUniversal.Optimizer();
        resumed.Load(new MemoryStream(bytes));
        for (int s = 3; s < 6; s++) Step(resumed, p2, grads[s]);
        AssertSame(Take(straight), Take(resumed));
        for (int n = 0; n < p1.Length; n++) AssertBits(p1[n], p2[n], $"parameters {n}");

        // Same plan ⇒ same fingerprint: the run-time optimizer reads the generated one's checkpoint.
        using var runtime = new CountSketchAdam(RaggedUniversal.Optimizer.DefaultSettings, RaggedUniversal.Optimizer.TensorSpecs);
        runtime.Load(new MemoryStream(bytes));
        Assert.Equal(3, runtime.StepCount);
        using var check = new RaggedUniversal.Optimizer();
        check.Load(new MemoryStream(bytes));
        AssertSame(Take(check), Take(runtime));

        // A different variant of the same model (other ratio, β1, estimate) is refused by name.
        using var variant = new RaggedUniversal.MeanNoMomentum();
        var e = Assert.Throws<CheckpointMismatchException>(() => variant.Load(new MemoryStream(bytes)));
        Assert.Contains("Beta1 0.9 in file, 0 in optimizer", e.Message);
        Assert.Contains("tensor 'Prime': ratio 16 in file, 8 in optimizer", e.Message);
    }

    [Fact]
    public void Generated_optimizer_skips_non_finite_steps_without_changing_anything()
    {
        var rng = new Random(32);
        using var opt = new RaggedUniversal.Optimizer();
        var p = RaggedUniversal.Optimizer.TensorSpecs.Select(s => Uniform(rng, s.Shape.Aggregate(1, (a, b) => a * b))).ToArray();
        Step(opt, p, Gradients(rng));
        var before = Take(opt);
        var pBefore = Clone(p);
        var bad = Gradients(rng);
        bad[2][1234] = float.NaN;
        Assert.Equal(StepOutcome.SkippedNonFinite, Step(opt, p, bad));
        for (int n = 0; n < p.Length; n++) AssertBits(pBefore[n], p[n], $"parameters {n}");
        AssertSame(before with { Skipped = 1 }, Take(opt));
        opt.NonFinitePolicy = NonFinitePolicy.Throw;
        Assert.Throws<NonFiniteGradientException>(() => Step(opt, p, bad));
        AssertSame(before with { Skipped = 1 }, Take(opt));
        Assert.Equal(StepOutcome.Applied, Step(opt, p, Gradients(rng)));   // guard released after the throw
    }
}
