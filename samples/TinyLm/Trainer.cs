using System.Diagnostics;

namespace TinyLm;

/// <summary>Character-level corpus: vocabulary, token ids, 90/10 train/validation split.</summary>
public sealed class Corpus
{
    /// <summary>The share of the text, from its start, that is the training split; the rest is the validation split.</summary>
    public const double DefaultTrainFraction = 0.9;

    public Corpus(string text, double trainFraction = DefaultTrainFraction)
    {
        Vocabulary = text.Distinct().OrderBy(ch => ch).ToArray();
        var index = new Dictionary<char, int>();
        for (int i = 0; i < Vocabulary.Length; i++) index[Vocabulary[i]] = i;
        var tokens = text.Select(ch => index[ch]).ToArray();
        int split = (int)(tokens.Length * trainFraction);
        Train = tokens[..split];
        Validation = tokens[split..];
    }

    public char[] Vocabulary { get; }
    public int[] Train { get; }
    public int[] Validation { get; }
    /// <summary>What the text is, for the output and the reports: "tiny Shakespeare", or the file name of <see cref="FromFile"/>.</summary>
    public string Source { get; init; } = "tiny Shakespeare";

    /// <summary>Loads samples/TinyLm/data/input.txt (next to the executable, or from the source tree).</summary>
    public static Corpus Load(string? path = null) => new(File.ReadAllText(path ?? FindData()));

    /// <summary>
    /// Loads another plain-text corpus (UTF-8 unless it starts with a byte-order mark): its vocabulary is the distinct
    /// characters of the file, split 90/10 like the default corpus. Throws <see cref="FileNotFoundException"/> for a missing
    /// file and <see cref="InvalidDataException"/> for a folder, an empty file, one of a single distinct character, or one too
    /// short for a model of <paramref name="context"/> characters (see <see cref="MinimumLength"/>); every message names the file.
    /// </summary>
    public static Corpus FromFile(string path, int context)
    {
        if (Directory.Exists(path)) throw new InvalidDataException($"{path} is a folder, not a text file.");
        if (!File.Exists(path)) throw new FileNotFoundException($"{path} does not exist.", path);
        string text = File.ReadAllText(path);
        if (text.Length == 0) throw new InvalidDataException($"{path} is empty.");
        int minimum = MinimumLength(context);
        if (text.Length < minimum)
            throw new InvalidDataException($"{path} holds {text.Length:N0} characters, too few: the last 10 % is the validation split, which must hold " +
                                           $"one window of {context + 1} characters, so the file needs at least {minimum:N0}.");
        var corpus = new Corpus(text) { Source = Path.GetFileName(path) };
        if (corpus.Vocabulary.Length < 2) throw new InvalidDataException($"{path} holds a single distinct character: there is nothing to predict.");
        return corpus;
    }

    /// <summary>
    /// The fewest characters a corpus needs for a model of <paramref name="context"/> characters: its 10 % validation split
    /// holds one window of context + 1 characters (input and shifted target) and its training split one more.
    /// </summary>
    public static int MinimumLength(int context)
    {
        int n = context + 2;
        while (!Fits(n)) n++;
        return n;

        bool Fits(int length)
        {
            int split = (int)(length * DefaultTrainFraction);
            return length - split >= context + 1 && split >= context + 2;
        }
    }

    public static string FindData()
    {
        foreach (var root in new[] { AppContext.BaseDirectory, Directory.GetCurrentDirectory() })
        {
            for (var dir = new DirectoryInfo(root); dir is not null; dir = dir.Parent)
            {
                foreach (var rel in new[] { Path.Combine("data", "input.txt"), Path.Combine("samples", "TinyLm", "data", "input.txt") })
                {
                    var p = Path.Combine(dir.FullName, rel);
                    if (File.Exists(p)) return p;
                }
            }
        }
        throw new FileNotFoundException("samples/TinyLm/data/input.txt not found.");
    }
}

public sealed record TrainOptions
{
    public int Steps { get; init; } = 1200;
    public int Batch { get; init; } = 16;
    public float LearningRate { get; init; } = 3e-3f;
    /// <summary>Linear warm-up steps, then cosine decay to <see cref="FinalLrFraction"/>·lr.</summary>
    public int WarmupSteps { get; init; } = 60;
    public float FinalLrFraction { get; init; } = 0.1f;
    public int EvalEvery { get; init; } = 100;
    /// <summary>Validation windows (of Context tokens, evenly spaced) for interval evaluations.</summary>
    public int EvalWindows { get; init; } = 256;
    /// <summary>Validation windows for the final evaluation; 0 = every non-overlapping window of the split.</summary>
    public int FinalEvalWindows { get; init; }
    public ulong Seed { get; init; } = 1;
    /// <summary>Use only the first N training tokens (0 = all); for tests.</summary>
    public int TrainTokens { get; init; }

    public float LearningRateAt(int step)
    {
        if (step < WarmupSteps) return LearningRate * (step + 1) / WarmupSteps;
        double t = (double)(step - WarmupSteps) / Math.Max(1, Steps - WarmupSteps);
        return (float)(LearningRate * (FinalLrFraction + (1 - FinalLrFraction) * 0.5 * (1 + Math.Cos(Math.PI * t))));
    }
}

public sealed record RunResult(
    string Name, string Implementation, float LearningRate, long StateBytes, long Parameters,
    double FinalValidationLoss, double FinalTrainLoss, double StepMs, double OptimizerMs, double WallSeconds,
    IReadOnlyList<(int Step, double Loss)> ValidationCurve, IReadOnlyList<float> TrainLosses, long SkippedSteps = 0)
{
    /// <summary>A warning line when the optimizer refused steps (non-finite gradients), or null when it applied every one.</summary>
    public string? SkippedWarning(int steps) => SkippedSteps == 0 ? null
        : $"warning: {Name} skipped {SkippedSteps} of {steps} steps (non-finite gradients; those batches did not train)";

    public double BytesPerParameter => (double)StateBytes / Parameters;
}

/// <summary>Trains one model with one optimizer; deterministic given the options' seed.</summary>
public static class Trainer
{
    /// <summary>
    /// Trains <paramref name="optimizer"/> for <paramref name="o"/>.Steps steps and evaluates; <paramref name="progress"/>
    /// hears of every evaluation and every step (<see cref="PlainTrainingProgress"/> writes the console lines).
    /// </summary>
    public static RunResult Train(ModelConfig config, Corpus corpus, ITrainerOptimizer optimizer, TrainOptions o,
                                  ITrainingProgress? progress = null)
    {
        // The optimizer's own buffers: for a generated one, its TinyLmModel's members and its Gradients holder's arrays.
        var buffers = optimizer.BuffersFor(config);
        var parameters = Transformer.Initialize(config, o.Seed, into: buffers.Parameters);
        var model = new Transformer(config, parameters, buffers.Gradients);
        int T = config.Context, B = o.Batch;
        var train = o.TrainTokens > 0 ? corpus.Train[..Math.Min(o.TrainTokens, corpus.Train.Length)] : corpus.Train;
        if (train.Length < T + 2) throw new ArgumentException("Training slice is shorter than one window.");
        var rng = new SplitMix(o.Seed ^ 0xD1B54A32D192ED03UL);   // batch order: same for every optimizer
        var x = new int[B * T]; var y = new int[B * T];
        var curve = new List<(int, double)>();
        var trainLosses = new List<float>(o.Steps);
        var total = Stopwatch.StartNew();
        var stepWatch = new Stopwatch(); var optWatch = new Stopwatch();
        long tokens = 0;
        double ema = double.NaN;

        for (int step = 0; step < o.Steps; step++)
        {
            if (o.EvalEvery > 0 && step % o.EvalEvery == 0)
            {
                double v = Evaluate(model, corpus.Validation, o.EvalWindows, B);
                curve.Add((step, v));
                progress?.Evaluated(optimizer.Name, step, o.Steps, v);
            }
            for (int b = 0; b < B; b++)
            {
                int start = rng.NextInt(train.Length - T - 1);
                Array.Copy(train, start, x, b * T, T);
                Array.Copy(train, start + 1, y, b * T, T);
            }
            stepWatch.Start();
            float loss = model.ForwardBackward(x, y, B);
            optWatch.Start();
            optimizer.Step(o.LearningRateAt(step), parameters, model.Gradients);
            optWatch.Stop();
            stepWatch.Stop();
            if (!float.IsFinite(loss)) throw new InvalidOperationException($"[{optimizer.Name}] loss became {loss} at step {step}.");
            trainLosses.Add(loss);
            tokens += B * T;
            ema = double.IsNaN(ema) ? loss : 0.95 * ema + 0.05 * loss;
            if (progress is not null)
            {
                double tps = tokens / stepWatch.Elapsed.TotalSeconds;
                double eta = (o.Steps - step - 1) * stepWatch.Elapsed.TotalSeconds / (step + 1);
                progress.Stepped(new TrainingStep(optimizer.Name, step + 1, o.Steps, ema, o.LearningRateAt(step), tps, TimeSpan.FromSeconds(eta)));
            }
        }
        // The curve keeps one estimator (the interval windows); the final loss uses the final-evaluation windows.
        if (o.EvalEvery > 0) curve.Add((o.Steps, Evaluate(model, corpus.Validation, o.EvalWindows, B)));
        double final = Evaluate(model, corpus.Validation, o.FinalEvalWindows, B);
        if (o.EvalEvery <= 0) curve.Add((o.Steps, final));
        progress?.Finished(optimizer.Name, final, total.Elapsed);
        int tail = Math.Max(1, Math.Min(50, trainLosses.Count));
        return new RunResult(optimizer.Name, optimizer.Implementation, o.LearningRate, optimizer.StateBytes, config.ParameterCount,
            final, trainLosses.Count == 0 ? double.NaN : trainLosses.TakeLast(tail).Average(),
            o.Steps == 0 ? 0 : stepWatch.Elapsed.TotalMilliseconds / o.Steps, o.Steps == 0 ? 0 : optWatch.Elapsed.TotalMilliseconds / o.Steps,
            total.Elapsed.TotalSeconds, curve, trainLosses, optimizer.SkippedSteps);
    }

    /// <summary>Mean cross-entropy over <paramref name="windows"/> evenly spaced windows (0 = all non-overlapping ones).</summary>
    public static double Evaluate(Transformer model, int[] tokens, int windows, int batch)
    {
        int T = model.Config.Context;
        int max = (tokens.Length - 1) / T;
        int n = windows <= 0 ? max : Math.Min(windows, max);
        var starts = new int[n];
        for (int j = 0; j < n; j++) starts[j] = windows <= 0 || n == 1 ? j * T : (int)((long)j * (tokens.Length - T - 1) / (n - 1));
        var x = new int[batch * T]; var y = new int[batch * T];
        double sum = 0; long count = 0;
        for (int j0 = 0; j0 < n; j0 += batch)
        {
            int b = Math.Min(batch, n - j0);
            for (int k = 0; k < b; k++)
            {
                Array.Copy(tokens, starts[j0 + k], x, k * T, T);
                Array.Copy(tokens, starts[j0 + k] + 1, y, k * T, T);
            }
            sum += model.LossSum(x.AsSpan(0, b * T), y.AsSpan(0, b * T), b);
            count += b * T;
        }
        return sum / count;
    }
}
