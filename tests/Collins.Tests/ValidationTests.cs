using System.Buffers;
using System.Runtime.InteropServices;
using static Collins.Tests.ReferenceTestHelpers;
using static Collins.Tests.CheckpointTests;

namespace Collins.Tests;

/// <summary>Bad input at run time: each case names the tensor and the expected/actual value, and changes nothing.</summary>
public class ValidationTests
{
    /// <summary>The attribute, the run-time settings and a generated optimizer with no arguments agree on every default.</summary>
    [Fact]
    public void Defaults_are_the_same_for_the_attribute_the_settings_and_generated_code()
    {
        var attribute = new SketchedOptimizerAttribute();
        var settings = new OptimizerSettings();
        var generated = Generated.AllDefaults.Optimizer.DefaultSettings;   // [SketchedOptimizer] with no arguments
        Assert.Equal((attribute.Beta1, attribute.Beta2, attribute.Epsilon, attribute.WeightDecay, attribute.Seed, attribute.DenseThreshold, attribute.Layout, attribute.SecondMoment),
                     (settings.Beta1, settings.Beta2, settings.Epsilon, settings.WeightDecay, settings.Seed, settings.DenseThreshold, settings.Layout, settings.SecondMoment));
        Assert.Equal(attribute.Ratio, settings.Ratio);
        Assert.Equal((attribute.UpdateClipping, attribute.Beta2Schedule, attribute.MaxGradientNorm), (settings.UpdateClipping, settings.Beta2Schedule, settings.MaxGradientNorm));
        Assert.Equal(0, settings.MaxGradientNorm);   // the README's table: off
        Assert.Equal(settings, generated);
        Assert.Equal((32, 0.9, 0.999, 1e-8, 4096), (settings.Ratio, settings.Beta1, settings.Beta2, settings.Epsilon, settings.DenseThreshold));   // the README's table
    }

    /// <summary>The run-time settings refuse what the generator refuses (COL005/COL006): values valid as doubles that round to an unusable float.</summary>
    [Theory]
    [InlineData(0.99999999, 0.999, 1e-8, "Beta1")]
    [InlineData(0.9, 0.999999999, 1e-8, "Beta2")]
    [InlineData(0.9, 0.999, 1e-50, "Epsilon")]
    [InlineData(0.9, 0.999, 1e39, "Epsilon")]
    public void Settings_that_round_to_unusable_floats_are_refused_as_the_generator_refuses_them(double beta1, double beta2, double epsilon, string name)
    {
        var e = Assert.Throws<ArgumentException>(() => new OptimizerSettings { Beta1 = beta1, Beta2 = beta2, Epsilon = epsilon }.Validate());
        Assert.Equal(name, e.ParamName);
    }

    private static TensorSpec[] Specs => new[]
    {
        new TensorSpec("W1", new[] { 40, 50 }, Ratio: 8, Sketching: TensorSketching.Sketched),
        new TensorSpec("W2", new[] { 30, 33 }, Ratio: 4, Sketching: TensorSketching.Sketched),
        new TensorSpec("b", new[] { 20 }),
    };

    private sealed class Fixture : IDisposable
    {
        public readonly CountSketchAdam Opt = new(new OptimizerSettings(), Specs);
        public readonly float[][] P;
        public readonly float[][] G;
        private Snapshot? _state;
        private float[][]? _p, _g;

        public Fixture()
        {
            var rng = new Random(1);
            P = Opt.Tensors.Select(t => Uniform(rng, t.Length)).ToArray();
            G = Opt.Tensors.Select(t => Normal(rng, t.Length)).ToArray();
            Opt.Step(1e-2f, P, G);   // non-zero state
            G = Opt.Tensors.Select(t => Normal(rng, t.Length)).ToArray();
        }

        /// <summary>Records the state, parameters and gradients (call before the bad step).</summary>
        public void Mark() { _state = Take(Opt); _p = Clone(P); _g = Clone(G); }

        /// <summary>Asserts nothing changed since <see cref="Mark"/>, then that a good step still runs.</summary>
        public void AssertUnchangedAndUsable()
        {
            AssertSame(_state!, Take(Opt));
            for (int n = 0; n < P.Length; n++)
            {
                AssertBits(_p![n], P[n], $"parameters {n}");
                AssertBits(_g![n], G[n], $"gradient {n}");
            }
            Assert.Equal(StepOutcome.Applied, Opt.Step(1e-2f, P, G));
            Assert.Equal(2, Opt.StepCount);
        }

        public void Dispose() => Opt.Dispose();
    }

    [Fact]
    public void Wrong_parameter_length_names_tensor_expected_and_actual()
    {
        using var f = new Fixture();
        f.Mark();
        var p = f.P.ToArray(); p[1] = new float[989];
        var e = Assert.Throws<ArgumentException>(() => f.Opt.Step(1e-2f, p, f.G));
        Assert.Contains("Tensor 'W2': the parameter buffer has 989 elements, expected 990.", e.Message);
        Assert.Equal("W2", e.ParamName);
        f.AssertUnchangedAndUsable();
    }

    [Fact]
    public void Wrong_gradient_length_names_tensor_expected_and_actual()
    {
        using var f = new Fixture();
        f.Mark();
        var g = f.G.ToArray(); g[2] = new float[21];
        var e = Assert.Throws<ArgumentException>(() => f.Opt.Step(1e-2f, f.P, g));
        Assert.Contains("Tensor 'b': the gradient buffer has 21 elements, expected 20.", e.Message);
        Assert.Equal("bGrad", e.ParamName);
        f.AssertUnchangedAndUsable();
    }

    [Fact]
    public void Missing_tensor_buffers_name_the_first_tensor_without_one()
    {
        using var f = new Fixture();
        f.Mark();
        var e = Assert.Throws<ArgumentException>(() => f.Opt.Step(1e-2f, f.P[..2], f.G[..2]));
        Assert.Contains("Tensor 'b' (index 2) has no parameter buffer: expected 3 parameter buffers, one per tensor, got 2.", e.Message);
        e = Assert.Throws<ArgumentException>(() => f.Opt.Step(1e-2f, f.P, f.G[..1]));
        Assert.Contains("Tensor 'W2' (index 1) has no gradient buffer: expected 3 gradient buffers, one per tensor, got 1.", e.Message);
        e = Assert.Throws<ArgumentException>(() => f.Opt.Step(1e-2f, f.P.Append(new float[3]).ToArray(), f.G));
        Assert.Contains("Expected 3 parameter buffers, one per tensor, got 4.", e.Message);
        f.AssertUnchangedAndUsable();
    }

    [Fact]
    public void Null_array_names_the_tensor()
    {
        using var f = new Fixture();
        f.Mark();
        var p = f.P.ToArray(); p[1] = null!;
        var e = Assert.Throws<ArgumentException>(() => f.Opt.Step(1e-2f, p, f.G));
        Assert.Contains("Tensor 'W2': the parameter array is null.", e.Message);
        f.AssertUnchangedAndUsable();
    }

    [Fact]
    public void Overlapping_parameter_and_gradient_are_refused()
    {
        using var f = new Fixture();
        f.Mark();
        var shared = new float[1100];
        f.P[1].CopyTo(shared, 0);
        var p = f.P.Select(x => (Memory<float>)x).ToArray(); p[1] = shared.AsMemory(0, 990);
        var g = f.G.Select(x => (ReadOnlyMemory<float>)x).ToArray(); g[1] = shared.AsMemory(100, 990);
        var sharedBefore = (float[])shared.Clone();
        var e = Assert.Throws<ArgumentException>(() => f.Opt.Step(1e-2f, p, g));
        Assert.Contains("Tensor 'W2': the parameter and gradient buffers overlap in memory.", e.Message);
        AssertBits(sharedBefore, shared, "shared buffer");
        f.AssertUnchangedAndUsable();
    }

    [Fact]
    public void Parameters_overlapping_another_tensor_are_refused()
    {
        using var f = new Fixture();
        f.Mark();
        var shared = new float[3000];
        var p = f.P.Select(x => (Memory<float>)x).ToArray();
        p[0] = shared.AsMemory(0, 2000);
        var g = f.G.Select(x => (ReadOnlyMemory<float>)x).ToArray();
        g[2] = shared.AsMemory(1990, 20);   // tensor b's gradient inside W1's parameters
        var e = Assert.Throws<ArgumentException>(() => f.Opt.Step(1e-2f, p, g));
        Assert.Contains("Tensor 'W1': the parameter buffer overlaps the gradient buffer of tensor 'b'.", e.Message);
        Assert.All(shared, x => Assert.Equal(0f, x));
        f.AssertUnchangedAndUsable();
    }

    [Theory]
    [InlineData(-1e-3f)]
    [InlineData(float.NaN)]
    [InlineData(float.PositiveInfinity)]
    [InlineData(float.NegativeInfinity)]
    public void Invalid_learning_rate_is_refused(float lr)
    {
        using var f = new Fixture();
        f.Mark();
        var e = Assert.Throws<ArgumentOutOfRangeException>(() => f.Opt.Step(lr, f.P, f.G));
        Assert.Equal("learningRate", e.ParamName);
        Assert.Contains($"The learning rate must be finite and >= 0, got {lr}.", e.Message);
        f.AssertUnchangedAndUsable();
    }

    [Fact]
    public void Disposed_optimizer_refuses_steps_and_checkpoints()
    {
        var f = new Fixture();
        var p = Clone(f.P);
        f.Opt.Dispose();
        var e = Assert.Throws<ObjectDisposedException>(() => f.Opt.Step(1e-2f, f.P, f.G));
        Assert.Contains(nameof(CountSketchAdam), e.Message);
        Assert.Throws<ObjectDisposedException>(() => f.Opt.Save(new MemoryStream()));
        Assert.Throws<ObjectDisposedException>(() => f.Opt.Load(new MemoryStream()));
        for (int n = 0; n < p.Length; n++) AssertBits(p[n], f.P[n], $"parameters {n}");
        f.Opt.Dispose(); // idempotent
    }

    [Fact]
    public void Reentrant_step_is_refused_and_the_outer_step_completes()
    {
        using var f = new Fixture();
        f.Mark();
        Exception? inner = null;
        var gated = new HookedMemory(Clone(f.P)[0]);
        var p = f.P.Select(x => (Memory<float>)x).ToArray(); p[0] = gated.Memory;   // (Memory calls GetSpan: set the hook after)
        gated.OnFirstGetSpan = () => inner = Record.Exception(() => f.Opt.Step(1e-2f, Clone(f.P), f.G));
        var g = f.G.Select(x => (ReadOnlyMemory<float>)x).ToArray();

        Assert.Equal(StepOutcome.Applied, f.Opt.Step(1e-2f, p, g));
        var ioe = Assert.IsType<InvalidOperationException>(inner);
        Assert.Contains("Step was called concurrently on one optimizer", ioe.Message);
        Assert.Equal(2, f.Opt.StepCount);   // only the outer step counted
    }

    [Fact]
    public void Concurrent_step_and_checkpoint_from_another_thread_are_refused()
    {
        using var f = new Fixture();
        f.Mark();
        using var entered = new ManualResetEventSlim();
        using var release = new ManualResetEventSlim();
        var gated = new HookedMemory(Clone(f.P)[0]);
        var p = f.P.Select(x => (Memory<float>)x).ToArray(); p[0] = gated.Memory;   // (Memory calls GetSpan: set the hook after)
        gated.OnFirstGetSpan = () => { entered.Set(); release.Wait(TimeSpan.FromSeconds(30)); };
        var g = f.G.Select(x => (ReadOnlyMemory<float>)x).ToArray();

        StepOutcome? outcome = null;
        var worker = new Thread(() => outcome = f.Opt.Step(1e-2f, p, g));
        worker.Start();
        try
        {
            Assert.True(entered.Wait(TimeSpan.FromSeconds(30)));
            var p2 = Clone(f.P);
            var e = Assert.Throws<InvalidOperationException>(() => f.Opt.Step(1e-2f, p2, f.G));
            Assert.Contains("Step was called concurrently on one optimizer; steps must not overlap. Nothing was changed by the refused call.", e.Message);
            for (int n = 0; n < p2.Length; n++) AssertBits(f.P[n], p2[n], $"parameters {n} of the refused call");
            Assert.Contains("while a step", Assert.Throws<InvalidOperationException>(() => f.Opt.Save(new MemoryStream())).Message);
            var bytes = new MemoryStream();
            using (var other = new CountSketchAdam(new OptimizerSettings(), Specs)) other.Save(bytes);
            bytes.Position = 0;
            Assert.Contains("while a step", Assert.Throws<InvalidOperationException>(() => f.Opt.Load(bytes)).Message);
        }
        finally
        {
            release.Set();
            worker.Join();
        }
        Assert.Equal(StepOutcome.Applied, outcome);
        Assert.Equal(2, f.Opt.StepCount);
    }

    /// <summary>A Memory&lt;float&gt; whose first <c>GetSpan</c> runs a hook (to re-enter or block a step).</summary>
    private sealed class HookedMemory : MemoryManager<float>
    {
        private readonly float[] _data;
        private GCHandle _handle;
        public Action? OnFirstGetSpan;

        public HookedMemory(float[] data) => _data = data;

        public override Span<float> GetSpan()
        {
            var hook = Interlocked.Exchange(ref OnFirstGetSpan, null);
            hook?.Invoke();
            return _data;
        }

        public override unsafe MemoryHandle Pin(int elementIndex = 0)
        {
            if (!_handle.IsAllocated) _handle = GCHandle.Alloc(_data, GCHandleType.Pinned);
            return new MemoryHandle((float*)_handle.AddrOfPinnedObject() + elementIndex, default, this);
        }

        public override void Unpin() { }

        protected override void Dispose(bool disposing)
        {
            if (_handle.IsAllocated) _handle.Free();
        }
    }
}
