using Collins.TorchSharp;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Collins.TorchSharp.Tests;

public class AdapterTests
{
    private static readonly OptimizerSettings Sketched = new() { Ratio = 8, Beta1 = 0.9, WeightDecay = 0.01 };

    /// <summary>The Count-Sketch setting above and the README's two recommended factored settings, by name.</summary>
    private static OptimizerSettings SettingsNamed(string name) => name switch
    {
        "Sketched" => Sketched,
        "FactoredQ4" => new() { SecondMoment = SecondMomentEstimate.Factored, FirstMoment = FirstMomentStorage.Quantized4, StochasticRounding = true, WeightDecay = 0.01 },
        "FactoredClipAll" => new() { Beta1 = 0, SecondMoment = SecondMomentEstimate.Factored, UpdateClipping = 1, DenseThreshold = 0 },
        _ => throw new ArgumentException(name),
    };

    private static float[] Random(int n, int seed)
    {
        var r = new Random(seed);
        return Enumerable.Range(0, n).Select(_ => (float)(r.NextDouble() * 2 - 1)).ToArray();
    }

    private static Parameter Param(float[] values, params long[] shape) => new(tensor(values, shape), requires_grad: true);

    private static float[] Values(Tensor t) => t.data<float>().ToArray();

    private static (string, Parameter)[] Model(out float[][] values)
    {
        values = [Random(96 * 64, 1), Random(64, 2), Random(8 * 1000, 3)];
        return [("embed.weight", Param(values[0], 96, 64)), ("embed.bias", Param(values[1], 64)), ("head.weight", Param(values[2], 8, 1000))];
    }

    [Theory]
    [InlineData("Sketched")]
    [InlineData("FactoredQ4")]
    [InlineData("FactoredClipAll")]
    public void StepsInPlaceWithoutCopyingBitForBitAsTheEngineOnArrays(string settingsName)
    {
        var settings = SettingsNamed(settingsName);
        var named = Model(out var values);
        var pointers = named.Select(p => CollinsOptimizer.DataPointer(p.Item2)).ToArray();
        using var adapter = new CollinsOptimizer(named, 1e-2, settings);
        using var engine = new CountSketchAdam(settings, named.Select(p => new TensorSpec(p.Item1, p.Item2.shape.Select(d => (int)d).ToArray())).ToArray());
        var arrays = values.Select(v => (float[])v.Clone()).ToArray();
        for (int step = 0; step < 4; step++)
        {
            var grads = values.Select((v, i) => Random(v.Length, 100 * step + i)).ToArray();
            for (int i = 0; i < named.Length; i++) named[i].Item2.grad = tensor(grads[i], named[i].Item2.shape);
            Assert.Equal(StepOutcome.Applied, adapter.step());
            Assert.Equal(StepOutcome.Applied, engine.Step(1e-2f, arrays, grads));
            for (int i = 0; i < named.Length; i++)
            {
                Assert.Equal(pointers[i], CollinsOptimizer.DataPointer(named[i].Item2));   // the same storage, stepped in place
                Assert.Equal(arrays[i], Values(named[i].Item2));                           // bit for bit (float equality)
            }
        }
        Assert.Equal(4, adapter.StepCount);
        Assert.True(adapter.StateBytes < adapter.Engine.DenseAdamWStateBytes);
        // What torch sees is what the engine wrote (no hidden copy): a torch reduction over the parameter.
        using var sum = named[2].Item2.sum();
        Assert.Equal(arrays[2].Sum(), sum.item<float>(), 2);
    }

    private static void AssertRefusedNaming(CollinsOptimizer opt, (string, Parameter)[] named, float[][] values, string name, params string[] words)
    {
        var e = Assert.ThrowsAny<Exception>(() => opt.step());
        Assert.True(e is ArgumentException or NotSupportedException, e.GetType().Name);
        Assert.Contains($"'{name}'", e.Message);
        foreach (var w in words) Assert.Contains(w, e.Message);
        Assert.Equal(0, opt.StepCount);
        for (int i = 0; i < values.Length; i++) Assert.Equal(values[i], Values(named[i].Item2));   // nothing written
    }

    private static (string, Parameter)[] WithGradients((string, Parameter)[] named)
    {
        foreach (var (_, p) in named) p.grad = ones_like(p);
        return named;
    }

    [Fact]
    public void RefusesAMissingGradientNamingTheTensorBeforeWritingAnything()
    {
        var named = WithGradients(Model(out var values));
        named[2].Item2.grad = null;
        using var opt = new CollinsOptimizer(named, 1e-2, Sketched);
        AssertRefusedNaming(opt, named, values, "head.weight", "no gradient", "backward()");
    }

    [Fact]
    public void RefusesADtypeOtherThanFloat32()
    {
        var named = WithGradients(Model(out var values));
        var f64 = new Parameter(zeros(10, dtype: ScalarType.Float64), requires_grad: true);
        f64.grad = ones_like(f64);
        var all = named.Append(("scale", f64)).ToArray();
        using var opt = new CollinsOptimizer(all, 1e-2, Sketched);
        AssertRefusedNaming(opt, named, values, "scale", "Float64", "float32");
    }

    [Fact]
    public void RefusesANonContiguousTensor()
    {
        var named = WithGradients(Model(out var values));
        var transposed = new Parameter(zeros(20, 30).t(), requires_grad: true);
        Assert.False(transposed.is_contiguous());
        transposed.grad = ones(30, 20);
        using var opt = new CollinsOptimizer(named.Append(("proj.weight", transposed)).ToArray(), 1e-2, Sketched);
        AssertRefusedNaming(opt, named, values, "proj.weight", "not contiguous");
    }

    [Fact]
    public void RefusesAGradientOfAnotherShape()
    {
        var named = WithGradients(Model(out var values));
        named[1].Item2.grad = ones(32, 2);
        using var opt = new CollinsOptimizer(named, 1e-2, Sketched);
        AssertRefusedNaming(opt, named, values, "embed.bias", "[32, 2]", "[64]");
    }

    [Fact]
    public void RefusesATensorThatIsNotOnTheCpuSayingWhatToDo()
    {
        // No CUDA here: the meta device stands in for any device that is not the CPU (the same check).
        var named = WithGradients(Model(out var values));
        var elsewhere = new Parameter(zeros(16, device: torch.META), requires_grad: true);
        elsewhere.grad = ones(16, device: torch.META);
        using var opt = new CollinsOptimizer(named.Append(("gpu.weight", elsewhere)).ToArray(), 1e-2, Sketched);
        AssertRefusedNaming(opt, named, values, "gpu.weight", "CPU tensors only", "model.cpu()", "torch.optim.AdamW");
    }

    [Fact]
    public void ZeroGradClearsGradients()
    {
        var named = WithGradients(Model(out _));
        using var opt = new CollinsOptimizer(named, 1e-2, Sketched);
        opt.zero_grad();
        Assert.All(named, p => Assert.Null(p.Item2.grad));
    }

    [Fact]
    public void SaveAndLoadRoundTrip()
    {
        var a = Model(out var values);
        using var first = new CollinsOptimizer(a, 1e-2, Sketched);
        for (int step = 0; step < 3; step++)
        {
            for (int i = 0; i < a.Length; i++) a[i].Item2.grad = tensor(Random(values[i].Length, 7 * step + i), a[i].Item2.shape);
            first.step();
        }
        var saved = new MemoryStream();
        first.Save(saved);

        // A second model with the first's current weights, and an optimizer restored from the checkpoint.
        var b = a.Select(p => (p.Item1, Param(Values(p.Item2), p.Item2.shape))).ToArray();
        using var second = new CollinsOptimizer(b, 1e-2, Sketched);
        saved.Position = 0;
        second.Load(saved);
        Assert.Equal(first.StepCount, second.StepCount);
        for (int i = 0; i < a.Length; i++)
        {
            var g = Random(values[i].Length, 999 + i);
            a[i].Item2.grad = tensor(g, a[i].Item2.shape);
            b[i].Item2.grad = tensor(g, b[i].Item2.shape);
        }
        first.step();
        second.step();
        for (int i = 0; i < a.Length; i++) Assert.Equal(Values(a[i].Item2), Values(b[i].Item2));

        // And through TorchSharp's file-based names.
        string path = Path.Combine(Path.GetTempPath(), "collins-torch-" + Guid.NewGuid().ToString("N") + ".ckpt");
        try
        {
            first.save_state_dict(path);
            second.load_state_dict(path);
            Assert.Equal(first.StepCount, second.StepCount);
        }
        finally { File.Delete(path); }
    }

    [Fact]
    public void DenseAdamWIsRatioOneWithTorchDefaults()
    {
        using var opt = CollinsOptimizer.AdamW(Model(out _));
        Assert.Equal(1, opt.Settings.Ratio);
        Assert.Equal(0.01, opt.Settings.WeightDecay);
        Assert.Equal(opt.Engine.DenseAdamWStateBytes, opt.StateBytes);
    }
}
