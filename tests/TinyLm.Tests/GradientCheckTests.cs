using Xunit.Abstractions;

namespace TinyLm.Tests;

[Collection(TinyLmSerial.Name)]
public class GradientCheckTests(ITestOutputHelper output)
{
    // Small but complete: two layers, two heads, every tensor kind of the real model.
    private static readonly ModelConfig Small = new(Vocab: 65, Context: 8, DModel: 16, Heads: 2, FeedForward: 32, Layers: 2);

    private static (Transformer Model, int[] X, int[] Y) Setup(ulong seed)
    {
        var p = Transformer.Initialize(Small, seed);
        // Move away from the initial point (unit gains, zero biases, tiny weights) so every tensor has a sizeable gradient.
        var rng = new SplitMix(seed + 100);
        foreach (var t in p)
            for (int i = 0; i < t.Length; i++) t[i] += 0.3f * rng.NextGaussian();
        var model = new Transformer(Small, p);
        int b = 2, n = b * Small.Context;
        var x = new int[n]; var y = new int[n];
        for (int i = 0; i < n; i++) { x[i] = rng.NextInt(Small.Vocab); y[i] = rng.NextInt(Small.Vocab); }
        return (model, x, y);
    }

    // Float32 forward passes with h = 1e-2: observed errors are below 2e-4 absolute, mostly below 1e-5.
    private static bool Within(double numeric, double analytic) => Math.Abs(numeric - analytic) <= 5e-5 + 2e-3 * Math.Abs(numeric);

    private static double Loss(Transformer m, int[] x, int[] y) => m.LossSum(x, y, 2) / x.Length;

    [Fact]
    public void Backward_matches_central_differences_for_every_tensor()
    {
        var (model, x, y) = Setup(7);
        model.ForwardBackward(x, y, 2);
        var grads = model.Gradients.Select(g => (float[])g.Clone()).ToArray();
        var specs = Small.Specs();
        var rng = new SplitMix(3);
        const float h = 1e-2f;
        int checkedCount = 0;
        for (int t = 0; t < specs.Count; t++)
        {
            var p = model.Parameters[t];
            // The largest-gradient coordinate plus three random ones.
            int argmax = 0;
            for (int i = 1; i < p.Length; i++) if (Math.Abs(grads[t][i]) > Math.Abs(grads[t][argmax])) argmax = i;
            var coords = new[] { argmax, Draw(), Draw(), Draw() };
            int Draw()
            {
                // A random coordinate, preferring one the batch touches (most Embed rows have no gradient).
                int i = rng.NextInt(p.Length);
                for (int k = 0; k < 50 && grads[t][i] == 0; k++) i = rng.NextInt(p.Length);
                return i;
            }
            foreach (int i in coords)
            {
                float saved = p[i];
                p[i] = saved + h; double lp = Loss(model, x, y);
                p[i] = saved - h; double lm = Loss(model, x, y);
                p[i] = saved;
                double numeric = (lp - lm) / (2 * h);
                double analytic = grads[t][i];
                double err = Math.Abs(numeric - analytic);
                output.WriteLine($"{specs[t].Name}[{i}]: analytic {analytic:E4} numeric {numeric:E4} err {err:E2}");
                Assert.True(Within(numeric, analytic),
                    $"{specs[t].Name}[{i}]: analytic {analytic:E5} vs numeric {numeric:E5}");
                checkedCount++;
            }
            Assert.True(Math.Abs(grads[t][argmax]) > 1e-4, $"{specs[t].Name} has a vanishing gradient: the check would prove nothing.");
        }
        Assert.Equal(4 * specs.Count, checkedCount);
    }

    [Fact]
    public void Gradient_check_detects_a_wrong_gradient()
    {
        // The comparison above must be able to fail: a gradient off by 1% of its own size is rejected.
        var (model, x, y) = Setup(11);
        model.ForwardBackward(x, y, 2);
        var w = model.Parameters[Small.HeadIndex];
        int i = 0;
        for (int j = 1; j < w.Length; j++) if (Math.Abs(model.Gradients[Small.HeadIndex][j]) > Math.Abs(model.Gradients[Small.HeadIndex][i])) i = j;
        const float h = 1e-2f;
        float saved = w[i];
        w[i] = saved + h; double lp = Loss(model, x, y);
        w[i] = saved - h; double lm = Loss(model, x, y);
        w[i] = saved;
        double numeric = (lp - lm) / (2 * h);
        double wrong = model.Gradients[Small.HeadIndex][i] * 1.01;
        Assert.True(Within(numeric, model.Gradients[Small.HeadIndex][i]));
        Assert.False(Within(numeric, wrong));
    }

    [Fact]
    public void Forward_and_backward_are_bit_identical_for_any_thread_count()
    {
        var results = new List<(float Loss, float[][] Grads)>();
        int saved = Kernels.MaxThreads;
        try
        {
            foreach (int threads in new[] { 1, 2, 3 })
            {
                Kernels.MaxThreads = threads;
                var (model, x, y) = Setup(5);
                float loss = model.ForwardBackward(x, y, 2);
                results.Add((loss, model.Gradients.Select(g => (float[])g.Clone()).ToArray()));
            }
        }
        finally { Kernels.MaxThreads = saved; }
        for (int r = 1; r < results.Count; r++)
        {
            Assert.Equal(results[0].Loss, results[r].Loss);
            for (int t = 0; t < results[0].Grads.Length; t++) Assert.Equal(results[0].Grads[t], results[r].Grads[t]);
        }
    }
}
