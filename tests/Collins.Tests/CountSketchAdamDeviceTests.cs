using ILGPU;
using ILGPU.Runtime;
using ILGPU.Runtime.CPU;
using Collins.Reference;
using static Collins.Tests.ReferenceTestHelpers;
using static Collins.Tests.CheckpointTests;

namespace Collins.Tests;

/// <summary>CountSketchAdam with state on ILGPU's CPU accelerator (the same kernels run on GPUs).</summary>
public sealed class CountSketchAdamDeviceTests : IDisposable
{
    private readonly Context _context = Context.Create(b => b.CPU());
    private readonly Accelerator _acc;

    public CountSketchAdamDeviceTests() => _acc = _context.CreateCPUAccelerator(0);

    public void Dispose() { _acc.Dispose(); _context.Dispose(); }

    private static TensorSpec[] Specs => CountSketchAdamTests.MixedSpecs(big: false);

    private MemoryBuffer1D<float, Stride1D.Dense>[] Upload(float[][] data, Accelerator? acc = null)
        => data.Select(x => (acc ?? _acc).Allocate1D(x)).ToArray();

    private static ArrayView<float>[] Views(MemoryBuffer1D<float, Stride1D.Dense>[] b) => b.Select(x => (ArrayView<float>)x.View).ToArray();

    [Theory]
    [InlineData(SketchLayout.Rotation, SecondMomentEstimate.Sum, 0.9, 0.01)]
    [InlineData(SketchLayout.Rotation, SecondMomentEstimate.Mean, 0.0, 0.0)]
    [InlineData(SketchLayout.Universal, SecondMomentEstimate.Sum, 0.0, 0.01)]
    [InlineData(SketchLayout.Universal, SecondMomentEstimate.Mean, 0.9, 0.0)]
    public void Device_step_matches_the_reference(SketchLayout layout, SecondMomentEstimate estimate, double beta1, double wd)
    {
        var settings = new OptimizerSettings { Layout = layout, SecondMoment = estimate, Beta1 = beta1, WeightDecay = wd, Seed = 5 };
        using var opt = new CountSketchAdam(settings, Specs, _acc);
        var reference = new ReferenceOptimizer(settings, Specs);
        var rng = new Random(21);
        var q = reference.Tensors.Select(t => Uniform(rng, t.Length)).ToArray();
        var p = Upload(q);
        try
        {
            for (int step = 1; step <= 5; step++)
            {
                var gHost = reference.Tensors.Select(t => Normal(rng, t.Length)).ToArray();
                var g = Upload(gHost);
                Assert.Equal(StepOutcome.Applied, opt.Step(1e-2f, Views(p), Views(g)));
                foreach (var b in g) b.Dispose();
                reference.Step(1e-2f, q, gHost);
                for (int n = 0; n < q.Length; n++)
                {
                    string name = $"step {step} tensor {reference.Tensors[n].Name}";
                    AssertClose(q[n], p[n].GetAsArray1D(), 1e-5, 0.1, name + " p");
                    bool dense = reference.Tensors[n].IsDense;
                    AssertClose(reference.SecondMoment(n), opt.CopySecondMoment(n), 1e-5, 1e-30, name + " v");
                    var mRef = reference.FirstMoment(n);
                    AssertClose(mRef, opt.CopyFirstMoment(n), 1e-5, 0.05 * (mRef.Length == 0 ? 1 : mRef.Max(Math.Abs)), name + " m");
                }
            }
            Assert.Equal(5, opt.StepCount);
        }
        finally { foreach (var b in p) b.Dispose(); }
    }

    [Theory]
    [InlineData(SketchLayout.Rotation, 0)]
    [InlineData(SketchLayout.Universal, 2)]
    [InlineData(SketchLayout.Rotation, 4)]   // dense tensor
    public void Device_skip_policy_changes_nothing(SketchLayout layout, int badTensor)
    {
        using var opt = new CountSketchAdam(new OptimizerSettings { Layout = layout }, Specs, _acc);
        var rng = new Random(22);
        var p = Upload(opt.Tensors.Select(t => Uniform(rng, t.Length)).ToArray());
        var g = Upload(opt.Tensors.Select(t => Normal(rng, t.Length)).ToArray());
        opt.Step(1e-2f, Views(p), Views(g));
        var before = Take(opt);
        var pBefore = p.Select(b => b.GetAsArray1D()).ToArray();
        var bad = opt.Tensors.Select(t => Normal(rng, t.Length)).ToArray();
        bad[badTensor][bad[badTensor].Length / 2] = float.PositiveInfinity;
        var gBad = Upload(bad);
        Assert.Equal(StepOutcome.SkippedNonFinite, opt.Step(1e-2f, Views(p), Views(gBad)));
        for (int n = 0; n < p.Length; n++) AssertBits(pBefore[n], p[n].GetAsArray1D(), $"parameters {n}");
        AssertSame(before with { Skipped = 1 }, Take(opt));

        opt.NonFinitePolicy = NonFinitePolicy.Throw;
        Assert.Throws<NonFiniteGradientException>(() => opt.Step(1e-2f, Views(p), Views(gBad)));
        AssertSame(before with { Skipped = 1 }, Take(opt));
        Assert.Equal(StepOutcome.Applied, opt.Step(1e-2f, Views(p), Views(g)));
        foreach (var b in p.Concat(g).Concat(gBad)) b.Dispose();
    }

    [Fact]
    public void Buffers_of_another_accelerator_are_refused()
    {
        using var other = _context.CreateCPUAccelerator(0);
        using var opt = new CountSketchAdam(new OptimizerSettings(), Specs, _acc);
        var rng = new Random(23);
        var host = opt.Tensors.Select(t => Uniform(rng, t.Length)).ToArray();
        var p = Upload(host);
        var g = Upload(opt.Tensors.Select(t => Normal(rng, t.Length)).ToArray());
        var foreign = other.Allocate1D(host[1]);
        var views = Views(p); views[1] = foreign.View;
        var before = Take(opt);
        var e = Assert.Throws<ArgumentException>(() => opt.Step(1e-2f, views, Views(g)));
        Assert.Contains("Tensor 'W2': the buffers belong to another accelerator than the optimizer's", e.Message);
        AssertSame(before, Take(opt));
        for (int n = 0; n < p.Length; n++) AssertBits(host[n], p[n].GetAsArray1D(), $"parameters {n}");
        AssertBits(host[1], foreign.GetAsArray1D(), "foreign parameters");
        foreach (var b in p.Concat(g).Append(foreign)) b.Dispose();
    }

    [Fact]
    public void Overlapping_device_views_are_refused_and_adjacent_ones_accepted()
    {
        var specs = new[] { new TensorSpec("a", new[] { 100 }, Ratio: 4, Sketching: TensorSketching.Sketched), new TensorSpec("c", new[] { 50 }) };
        using var opt = new CountSketchAdam(new OptimizerSettings(), specs, _acc);
        using var one = _acc.Allocate1D(Uniform(new Random(24), 300));
        ArrayView<float> all = one.View;
        var e = Assert.Throws<ArgumentException>(() =>
            opt.Step(1e-2f, new[] { all.SubView(0, 100), all.SubView(100, 50) }, new[] { all.SubView(90, 100), all.SubView(250, 50) }));
        Assert.Contains("Tensor 'a': the parameter and gradient buffers overlap in memory.", e.Message);
        e = Assert.Throws<ArgumentException>(() =>
            opt.Step(1e-2f, new[] { all.SubView(0, 100), all.SubView(150, 50) }, new[] { all.SubView(100, 100), all.SubView(250, 50) }));
        Assert.Contains("Tensor 'c': the parameter buffer overlaps the gradient buffer of tensor 'a'.", e.Message);
        Assert.Equal(0, opt.StepCount);
        Assert.Equal(StepOutcome.Applied,
            opt.Step(1e-2f, new[] { all.SubView(0, 100), all.SubView(100, 50) }, new[] { all.SubView(150, 100), all.SubView(250, 50) }));
    }

    [Fact]
    public void State_location_and_buffer_kind_must_agree()
    {
        using var device = new CountSketchAdam(new OptimizerSettings(), Specs, _acc);
        var host = device.Tensors.Select(t => new float[t.Length]).ToArray();
        Assert.Contains("step it with ArrayView buffers", Assert.Throws<InvalidOperationException>(() => device.Step(1e-2f, host, host.Select(x => (float[])x.Clone()).ToArray())).Message);
        using var cpu = new CountSketchAdam(new OptimizerSettings(), Specs);
        var p = Upload(host); var g = Upload(host);
        Assert.Contains("construct it with an ILGPU Accelerator", Assert.Throws<InvalidOperationException>(() => cpu.Step(1e-2f, Views(p), Views(g))).Message);
        foreach (var b in p.Concat(g)) b.Dispose();
    }
}
