using System.Diagnostics;
using Collins;
using Collins.TorchSharp;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace TorchSharpLm;

/// <summary>Tiny Shakespeare as character indices, 90 % train / 10 % validation.</summary>
public sealed class Corpus
{
    public Corpus(string text)
    {
        Alphabet = text.Distinct().OrderBy(c => c).ToArray();
        var index = Alphabet.Select((c, i) => (c, i)).ToDictionary(p => p.c, p => (long)p.i);
        var all = text.Select(c => index[c]).ToArray();
        int split = (int)(all.Length * 0.9);
        Train = all[..split];
        Validation = all[split..];
    }

    public char[] Alphabet { get; }
    public long[] Train { get; }
    public long[] Validation { get; }

    /// <summary>The text next to the executable (data/input.txt, copied there from samples/TinyLm/data at build time).</summary>
    public static Corpus Load() => new(File.ReadAllText(Path.Combine(AppContext.BaseDirectory, "data", "input.txt")));
}

/// <summary>Training options; the same for every optimizer of a run.</summary>
public sealed record TrainOptions
{
    public int Steps { get; init; } = 600;
    public int Batch { get; init; } = 32;
    public int Seed { get; init; } = 1;
    public int WarmupSteps { get; init; } = 30;
    public int EvalEvery { get; init; } = 50;
    public int EvalWindows { get; init; } = 256;
}

/// <summary>One optimizer of the comparison: how to build it, and its learning rate.</summary>
public sealed record OptimizerChoice(string Name, double LearningRate, string Description, Func<CharTransformer, double, IStepper> Create);

/// <summary>What the training loop needs of an optimizer.</summary>
public interface IStepper : IDisposable
{
    void SetLearningRate(double lr);
    void Step();
    void ZeroGrad();
    /// <summary>Bytes of optimizer state (after at least one step).</summary>
    long StateBytes { get; }
}

/// <summary>libtorch's AdamW (TorchSharp's <c>torch.optim.AdamW</c>).</summary>
public sealed class TorchAdamW(CharTransformer model, double lr) : IStepper
{
    private readonly AdamW _opt = optim.AdamW(model.parameters(), lr, beta1: 0.9, beta2: 0.999, eps: 1e-8, weight_decay: 0);

    public void SetLearningRate(double lr) { foreach (var g in _opt.ParamGroups) g.LearningRate = lr; }
    public void Step() => _opt.step();
    public void ZeroGrad() => _opt.zero_grad();

    /// <summary>Counted from the state tensors (exp_avg, exp_avg_sq, and max_exp_avg_sq where amsgrad keeps one).</summary>
    public long StateBytes
    {
        get
        {
            long bytes = 0;
            foreach (var s in _opt.state_dict().State)
                if (s is AdamW.State a)
                    foreach (var t in new[] { a.exp_avg, a.exp_avg_sq, a.max_exp_avg_sq })
                        if (t is not null && !t.IsInvalid) bytes += t.numel() * t.ElementSize;
            return bytes;
        }
    }

    public void Dispose() => _opt.Dispose();
}

/// <summary>This project's engine through the adapter.</summary>
public sealed class CollinsStepper(CollinsOptimizer opt) : IStepper
{
    public CollinsOptimizer Optimizer { get; } = opt;
    public void SetLearningRate(double lr) => Optimizer.LearningRate = lr;
    public void Step() => Optimizer.step();
    public void ZeroGrad() => Optimizer.zero_grad();
    public long StateBytes => Optimizer.StateBytes;
    public void Dispose() => Optimizer.Dispose();
}

/// <summary>A generated optimizer of <see cref="CharTransformer"/>: <c>Step(lr, model)</c> over the module's declared parameters.</summary>
public sealed class GeneratedStepper(CharTransformer model, SketchedOptimizerBase optimizer, Func<float, StepOutcome> step) : IStepper
{
    private float _lr;
    public SketchedOptimizerBase Optimizer { get; } = optimizer;
    public void SetLearningRate(double lr) => _lr = (float)lr;
    public void Step() => step(_lr);
    public void ZeroGrad() => model.zero_grad();
    public long StateBytes => Optimizer.StateBytes;
    public void Dispose() => Optimizer.Dispose();

    /// <summary>The generated optimizer for the declared configuration, or the run-time adapter with the same settings for any other.</summary>
    public static IStepper For(CharTransformer m, double lr, Func<SketchedOptimizerBase> generated, OptimizerSettings settings, Func<SketchedOptimizerBase, CharTransformer, float, StepOutcome> step)
    {
        if (m.Config != CharTransformer.DeclaredConfig)
            return new CollinsStepper(new CollinsOptimizer(m.named_parameters(), lr, settings));
        var opt = generated();
        var stepper = new GeneratedStepper(m, opt, l => step(opt, m, l));
        stepper.SetLearningRate(lr);
        return stepper;
    }
}

/// <summary>The result of one optimizer's run.</summary>
public sealed record RunResult(string Name, string Description, double LearningRate, long ParameterCount, long StateBytes,
    double FinalValidationLoss, double OptimizerMs, double StepMs, IReadOnlyList<double> TrainLosses, IReadOnlyList<(int Step, double Loss)> ValidationCurve)
{
    public double BytesPerParameter => (double)StateBytes / ParameterCount;
}

public static class Trainer
{
    /// <summary>The four optimizers of the comparison, with the learning rates TinyLm's sweep found best for each family.</summary>
    public static IReadOnlyList<OptimizerChoice> Choices { get; } =
    [
        new("torch AdamW", 1e-2, "libtorch's torch.optim.AdamW",
            (m, lr) => new TorchAdamW(m, lr)),
        new("Collins dense AdamW", 1e-2, "CollinsOptimizer.AdamW: this project's engine at Ratio 1 (exact AdamW)",
            (m, lr) => new CollinsStepper(CollinsOptimizer.AdamW(m.named_parameters(), lr, weight_decay: 0))),
        new("Collins C32", 1e-2, "Ratio 32, Rotation, Sum, β1 0.9 (the algorithm as specified): the generated CharTransformer.C32",
            (m, lr) => GeneratedStepper.For(m, lr, () => new CharTransformer.C32(), CharTransformer.C32.DefaultSettings,
                (o, model, l) => ((CharTransformer.C32)o).Step(l, model))),
        new("Collins C32 Mean β1=0", 3e-3, "Ratio 32, Rotation, Mean, β1 0 (the best Count-Sketch setting of TinyLm's sweep): the generated CharTransformer.C32MeanNoMomentum",
            (m, lr) => GeneratedStepper.For(m, lr, () => new CharTransformer.C32MeanNoMomentum(), CharTransformer.C32MeanNoMomentum.DefaultSettings,
                (o, model, l) => ((CharTransformer.C32MeanNoMomentum)o).Step(l, model))),
    ];

    /// <summary>Warm-up then cosine decay to 10 % of the peak.</summary>
    public static double LearningRate(double peak, int step, TrainOptions o)
    {
        if (step < o.WarmupSteps) return peak * (step + 1) / o.WarmupSteps;
        double progress = (double)(step - o.WarmupSteps) / Math.Max(1, o.Steps - o.WarmupSteps);
        return peak * (0.1 + 0.9 * 0.5 * (1 + Math.Cos(Math.PI * progress)));
    }

    /// <summary>
    /// Trains a fresh model (initialised from <see cref="TrainOptions.Seed"/>, so every optimizer starts from the same
    /// weights and sees the same batches in the same order) and returns the curves and timings.
    /// </summary>
    public static RunResult Train(OptimizerChoice choice, ModelConfig config, Corpus corpus, TrainOptions o, Action<int>? progress = null)
    {
        random.manual_seed(o.Seed);
        using var model = new CharTransformer(config);
        using var opt = choice.Create(model, choice.LearningRate);
        var rng = new Random(o.Seed);
        var trainLosses = new List<double>();
        var curve = new List<(int, double)>();
        double optTicks = 0, stepTicks = 0;
        for (int step = 0; step < o.Steps; step++)
        {
            if (step % o.EvalEvery == 0) curve.Add((step, Evaluate(model, corpus, o)));
            var (x, y) = Batch(corpus.Train, config.Context, o.Batch, rng);
            long start = Stopwatch.GetTimestamp();
            double loss;
            using (var scope = NewDisposeScope())
            {
                opt.SetLearningRate(LearningRate(choice.LearningRate, step, o));
                opt.ZeroGrad();
                var logits = model.call(x);
                var l = nn.functional.cross_entropy(logits.view(-1, config.Vocab), y.view(-1));
                l.backward();
                loss = l.item<float>();
                long optStart = Stopwatch.GetTimestamp();
                opt.Step();
                optTicks += Stopwatch.GetTimestamp() - optStart;
            }
            stepTicks += Stopwatch.GetTimestamp() - start;
            x.Dispose(); y.Dispose();
            trainLosses.Add(loss);
            progress?.Invoke(step + 1);
        }
        double final = Evaluate(model, corpus, o);
        curve.Add((o.Steps, final));
        double ms(double ticks) => ticks * 1000.0 / Stopwatch.Frequency / o.Steps;
        return new RunResult(choice.Name, choice.Description, choice.LearningRate, model.ParameterCount, opt.StateBytes, final,
            ms(optTicks), ms(stepTicks), trainLosses, curve);
    }

    /// <summary>Mean cross-entropy (nats/char) over the first <see cref="TrainOptions.EvalWindows"/> non-overlapping validation windows.</summary>
    public static double Evaluate(CharTransformer model, Corpus corpus, TrainOptions o)
    {
        int ctx = model.Config.Context;
        int windows = Math.Min(o.EvalWindows, (corpus.Validation.Length - 1) / ctx);
        using var noGrad = no_grad();
        using var scope = NewDisposeScope();
        double sum = 0; int count = 0;
        for (int start = 0; start < windows; start += o.Batch)
        {
            int n = Math.Min(o.Batch, windows - start);
            var xs = new long[n * ctx]; var ys = new long[n * ctx];
            for (int b = 0; b < n; b++)
            {
                Array.Copy(corpus.Validation, (start + b) * ctx, xs, b * ctx, ctx);
                Array.Copy(corpus.Validation, (start + b) * ctx + 1, ys, b * ctx, ctx);
            }
            var logits = model.call(tensor(xs, new long[] { n, ctx }));
            sum += nn.functional.cross_entropy(logits.view(-1, model.Config.Vocab), tensor(ys, new long[] { n * ctx })).item<float>() * n;
            count += n;
        }
        return sum / count;
    }

    private static (Tensor X, Tensor Y) Batch(long[] data, int ctx, int batch, Random rng)
    {
        var xs = new long[batch * ctx]; var ys = new long[batch * ctx];
        for (int b = 0; b < batch; b++)
        {
            int start = rng.Next(data.Length - ctx - 1);
            Array.Copy(data, start, xs, b * ctx, ctx);
            Array.Copy(data, start + 1, ys, b * ctx, ctx);
        }
        return (tensor(xs, new long[] { batch, ctx }), tensor(ys, new long[] { batch, ctx }));
    }
}
