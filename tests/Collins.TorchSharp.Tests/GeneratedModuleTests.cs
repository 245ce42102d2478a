using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Collins.TorchSharp.Tests;

/// <summary>
/// A TorchSharp module declared for the generator: its parameters are <c>[Tensor]</c> members of type <see cref="Parameter"/>,
/// and the generated optimizer steps them in place with <c>Step(lr, module)</c>, reading each one's <c>.grad</c>.
/// </summary>
[SketchedOptimizer(Ratio = 8, WeightDecay = 0.01)]
[SketchedOptimizer(Name = "Recommended", Ratio = 32, Beta1 = 0, SecondMoment = SecondMomentEstimate.Mean)]
public sealed partial class TinyNet : nn.Module<Tensor, Tensor>
{
    public const int In = 96, Hidden = 64, Out = 8;

    [Tensor(Hidden, In)] public Parameter W1;
    [Tensor(Hidden)] public Parameter B1;
    [Tensor(Out, Hidden)] public Parameter W2;

    public TinyNet(int seed) : base(nameof(TinyNet))
    {
        using var generator = new Generator((ulong)seed);
        W1 = new Parameter(torch.randn(Hidden, In, generator: generator) * 0.1f, requires_grad: true);
        B1 = new Parameter(torch.zeros(Hidden), requires_grad: true);
        W2 = new Parameter(torch.randn(Out, Hidden, generator: generator) * 0.1f, requires_grad: true);
        RegisterComponents();
    }

    public override Tensor forward(Tensor x) => torch.nn.functional.relu(x.matmul(W1.t()) + B1).matmul(W2.t());
}

public class GeneratedModuleTests
{
    private static float[] Values(Tensor t) => t.data<float>().ToArray();

    private static void Backward(TinyNet net, int seed)
    {
        using var generator = new Generator((ulong)seed);
        using var x = torch.randn(16, TinyNet.In, generator: generator);
        using var y = net.forward(x);
        using var loss = y.pow(2).mean();
        loss.backward();
    }

    [Fact]
    public void Generated_step_updates_the_module_in_place_bit_for_bit_as_the_span_step()
    {
        using var net = new TinyNet(7);
        using var opt = new TinyNet.Optimizer();
        using var twin = new TinyNet.Optimizer();
        var pointers = new[] { net.W1, net.B1, net.W2 }.Select(CollinsOptimizer.DataPointer).ToArray();
        var arrays = new[] { Values(net.W1), Values(net.B1), Values(net.W2) };
        for (int step = 0; step < 4; step++)
        {
            net.zero_grad();
            Backward(net, 100 + step);
            var grads = new[] { Values(net.W1.grad!), Values(net.B1.grad!), Values(net.W2.grad!) };
            Assert.Equal(StepOutcome.Applied, opt.Step(1e-2f, net));
            Assert.Equal(StepOutcome.Applied, twin.Step(1e-2f, arrays[0], grads[0], arrays[1], grads[1], arrays[2], grads[2]));
            Assert.Equal(arrays[0], Values(net.W1));
            Assert.Equal(arrays[1], Values(net.B1));
            Assert.Equal(arrays[2], Values(net.W2));
        }
        Assert.Equal(pointers, new[] { net.W1, net.B1, net.W2 }.Select(CollinsOptimizer.DataPointer).ToArray());   // no copy
        Assert.Equal(4, opt.StepCount);
    }

    [Fact]
    public void Refusals_name_the_tensor_and_change_nothing()
    {
        using var net = new TinyNet(3);
        using var opt = new TinyNet.Recommended();
        var before = new[] { Values(net.W1), Values(net.B1), Values(net.W2) };
        var originals = new[] { net.W1, net.B1, net.W2 };   // the float32 parameters, whatever the module holds meanwhile

        void Refused(string name, params string[] words)
        {
            var e = Assert.ThrowsAny<Exception>(() => opt.Step(1e-2f, net));
            Assert.True(e is ArgumentException or NotSupportedException, e.GetType().Name);
            Assert.Contains($"'{name}'", e.Message);
            foreach (var w in words) Assert.Contains(w, e.Message);
            Assert.Equal(0, opt.StepCount);
            for (int t = 0; t < 3; t++) Assert.Equal(before[t], Values(originals[t]));
        }

        // No backward pass yet: the first tensor has no gradient.
        Refused("W1", "no gradient");
        Backward(net, 1);
        // A gradient of another shape on the last tensor (the first two are fine: nothing may have been written).
        using (var wrong = torch.zeros(TinyNet.Out, TinyNet.Hidden + 1)) { net.W2.grad = wrong; }
        Refused("W2", "shape");
        net.zero_grad();
        Backward(net, 1);
        // A parameter of another dtype than float32.
        var w1 = net.W1;
        using (torch.no_grad()) net.W1 = new Parameter(w1.to(ScalarType.Float64), requires_grad: true);
        Refused("W1", "Float64");
        net.W1 = w1;
        Assert.Equal(StepOutcome.Applied, opt.Step(1e-2f, net));
        Assert.NotEqual(before[0], Values(net.W1));
    }
}
