using Collins.Kernels;
using Collins.Tests.Generated;
using static Collins.Tests.ReferenceTestHelpers;

namespace Collins.Tests;

/// <summary>
/// The generated CPU step of a Rotation tensor of at least <see cref="RotationStreaming.MinLength"/> entries (phase 1 forms the new
/// moments and coefficients and streams them to the workspace, the step then swaps them in) against the run-time
/// <see cref="CountSketchAdam"/>, which uses neither; plus the skip guarantee across the buffer swap. One tensor of 2^25 + 7 floats
/// (128 MiB per buffer): the smallest that takes this path.
/// </summary>
public class StreamingRotationTests
{
    private const float Lr = 1e-2f;

    [Fact]
    public void The_model_tensor_is_just_above_the_streaming_threshold()
    {
        Assert.True(StreamingRotation.Optimizer.Big.Length >= RotationStreaming.MinLength);
        Assert.True(StreamingRotation.Optimizer.Big.Length - RotationStreaming.MinLength < 64);
        Assert.NotEqual(StreamingRotation.Optimizer.Big.Length, (StreamingRotation.Optimizer.Big.Rows) * StreamingRotation.Optimizer.Big.Buckets); // ragged
    }

    [Fact]
    public void Streaming_step_follows_the_run_time_optimizer_and_a_skipped_step_changes_nothing()
    {
        Check(new StreamingRotation.Optimizer(), StreamingRotation.Optimizer.DefaultSettings,
              (o, p, g) => ((StreamingRotation.Optimizer)o).Step(Lr, p, g));
        Check(new StreamingRotation.MeanNoMomentum(), StreamingRotation.MeanNoMomentum.DefaultSettings,
              (o, p, g) => ((StreamingRotation.MeanNoMomentum)o).Step(Lr, p, g));
    }

    private static void Check(SketchedOptimizerBase generated, OptimizerSettings settings, Func<SketchedOptimizerBase, float[], float[], StepOutcome> step)
    {
        using var opt = generated;
        using var runtime = new CountSketchAdam(settings, new[] { new TensorSpec("Big", new[] { StreamingRotation.Optimizer.Big.Length }) });
        var rng = new Random(17);
        int d = StreamingRotation.Optimizer.Big.Length;
        var p = Uniform(rng, d);
        var q = (float[])p.Clone();
        var g = new float[d];
        for (int s = 1; s <= 3; s++)
        {
            for (int i = 0; i < d; i++) g[i] = (float)(rng.NextDouble() - 0.5) * (i % 97 == 0 ? 10f : 1f);
            if (s == 2)
            {
                // After one applied step the state sits in the buffers that were the workspace: a bad gradient must still change nothing.
                var m0 = opt.CopyFirstMoment(0); var v0 = opt.CopySecondMoment(0); var p0 = (float[])p.Clone();
                float keep = g[d - 1];
                g[d - 1] = float.NaN;   // in the ragged last row
                Assert.Equal(StepOutcome.SkippedNonFinite, step(opt, p, g));
                g[d - 1] = keep;
                Assert.True(p0.AsSpan().SequenceEqual(p), "parameters changed by a skipped step");
                Assert.True(m0.AsSpan().SequenceEqual(opt.CopyFirstMoment(0)), "first moment changed by a skipped step");
                Assert.True(v0.AsSpan().SequenceEqual(opt.CopySecondMoment(0)), "second moment changed by a skipped step");
            }
            Assert.Equal(StepOutcome.Applied, step(opt, p, g));
            Assert.Equal(StepOutcome.Applied, runtime.Step(Lr, new[] { q }, new[] { g }));
            AssertClose(q, p, 1e-5, 0.1, $"step {s} parameters");   // the tolerance CountSketchAdamVsGeneratedTests uses
            AssertClose(runtime.CopySecondMoment(0), opt.CopySecondMoment(0), 1e-5, 1e-30, $"step {s} v");
            if (settings.Beta1 != 0) AssertClose(runtime.CopyFirstMoment(0), opt.CopyFirstMoment(0), 1e-5, 1e-30, $"step {s} m");
        }
        Assert.Equal(3, opt.StepCount);
        Assert.Equal(1, opt.SkippedSteps);
    }
}
