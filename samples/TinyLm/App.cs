using System.Diagnostics;
using Collins;

namespace TinyLm;

/// <summary>What TinyLm does with its options: the default run (each optimizer in turn), the sweep, or the sweep's report.</summary>
internal static class App
{
    /// <summary>
    /// The default set: the AdamW baseline, Collins at Ratio 32 as specified (Rotation, Sum, β1 0.9), and the two settings the
    /// project recommends (README "The frontier"): "FactoredClipAll" (β1 = 0, factored second moment, update clipping 1, every
    /// tensor factored: 0.135 B/param) for the smallest state, and "FactoredQ4" (β1 0.9 with a 4-bit block-quantised first moment, stochastic rounding, and the factored second
    /// moment, 0.708 B/param) where about 0.7 B/param can be spent.
    /// Each optimizer runs at the learning rate it did best with in the sweeps (OptimizerCatalog.SweepLearningRate).
    /// Each name is an optimizer of OptimizerCatalog: "AdamW" or a [SketchedOptimizer(Name = ...)] on TinyLmModel.
    /// </summary>
    public static IReadOnlyList<string> DefaultOptimizers { get; } = ["AdamW", "C32", .. OptimizerCatalog.RecommendedVariants];

    /// <summary>Runs <paramref name="opts"/>; returns the exit code (2 for a corpus that cannot be used, with the reason).</summary>
    public static int Run(CliOptions opts, TextWriter output, TextWriter error, bool live)
    {
        if (opts.Threads > 0) Kernels.MaxThreads = opts.Threads;

        Corpus corpus;
        try
        {
            corpus = opts.Data is null ? Corpus.Load() : Corpus.FromFile(opts.Data, TinyLmModel.Config.Context);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or InvalidDataException)
        {
            error.WriteLine((opts.Data is null ? "error: " : "error: --data: ") + e.Message);
            return Cli.UsageError;
        }
        // The model's vocabulary is the corpus's and its size the options': tiny Shakespeare's 65 characters and the default sizes
        // are TinyLmModel's declared shapes; any other vocabulary or size changes the tensors, and then the Collins variants run
        // on the run-time optimizer (below).
        var config = TinyLmModel.Config with
        {
            Vocab = corpus.Vocabulary.Length,
            DModel = opts.DModel,
            Layers = opts.Layers,
            Heads = opts.Heads,
            FeedForward = opts.FeedForward,
        };

        Directory.CreateDirectory(opts.Out);
        var train = new TrainOptions
        {
            Steps = opts.Steps ?? (opts.Quick ? 40 : 1500),
            Batch = opts.Batch,
            LearningRate = opts.LearningRate ?? 3e-3f,   // not used as is: the sweep sets each run's rate from its grid, the default run each optimizer's own (below)
            EvalEvery = opts.Quick ? 20 : 100,
            EvalWindows = opts.Quick ? 32 : 256,
            FinalEvalWindows = opts.Quick ? 64 : 0,
            WarmupSteps = opts.Quick ? 5 : 60,
            Seed = opts.Seed,
        };
        train = train with { WarmupSteps = Math.Min(train.WarmupSteps, Math.Max(1, train.Steps / 10)) };

        output.WriteLine($"TinyLm: {config.Layers}-layer causal transformer, vocab {config.Vocab}, context {config.Context}, d_model {config.DModel}, " +
                         $"{config.Heads} heads, feed-forward {config.FeedForward}; {config.ParameterCount:N0} parameters.");
        output.WriteLine($"{corpus.Source}: {corpus.Train.Length:N0} train / {corpus.Validation.Length:N0} validation characters. " +
                         $"{train.Steps} steps × {train.Batch}×{config.Context} tokens, seed {train.Seed}, {Kernels.MaxThreads} threads.");
        var wall = Stopwatch.StartNew();

        if (opts.SweepReport) return SweepReport.Write(opts.Out, config, corpus, train, output, error);
        if (opts.Sweep)
        {
            try
            {
                return Sweep.Run(config, corpus, train, opts.Out, opts.SweepMax, opts.Resume, opts.LearningRates?.ToArray(),
                                 opts.Configurations?.ToArray(), output);
            }
            catch (ArgumentException e) { error.WriteLine("error: " + e.Message); return Cli.UsageError; }
        }

        var names = opts.Optimizers ?? DefaultOptimizers;
        var fallback = names.Where(n => OptimizerCatalog.FallsBackToRuntime(n, config)).ToArray();
        if (fallback.Length > 0)
            output.WriteLine($"Run-time optimizers for {string.Join(", ", fallback)}: the shapes differ from the ones TinyLmModel declares " +
                             $"({ShapeDifferences(config)}), and its generated optimizers are specialised to the declared shapes, so these run " +
                             "on the run-time Collins.CountSketchAdam with the same settings.");

        var results = new List<RunResult>();
        RunDisplay.Run(live, output, display =>
        {
            foreach (var name in names)
            {
                var optimizer = OptimizerCatalog.Create(name, config);
                var run = train with { LearningRate = opts.LearningRate ?? OptimizerCatalog.SweepLearningRate(name) };
                display.Line($"== {name}: {optimizer.Implementation}, state {optimizer.StateBytes:N0} B, lr {run.LearningRate:G3}" +
                             (opts.LearningRate is null ? " (its best in the sweep)" : ""));
                var result = Trainer.Train(config, corpus, optimizer, run, display.Track(name, run.Steps));
                if (result.SkippedWarning(run.Steps) is { } warning) display.Line(warning);
                results.Add(result);
            }
            return 0;
        });
        Report.Write(opts.Out, config, corpus, train, results, wall.Elapsed, sweepNote: null);
        output.WriteLine($"Wall time {wall.Elapsed:m\\:ss}. Wrote {Path.Combine(opts.Out, "results.md")}, results.csv, loss.png.");
        return 0;
    }

    /// <summary>
    /// How <paramref name="config"/> differs from the declared <see cref="TinyLmModel.Config"/>: the vocabulary (the corpus's
    /// distinct characters) and/or the model size, each as "found instead of declared"; empty when they are the same.
    /// </summary>
    public static string ShapeDifferences(ModelConfig config)
    {
        ArgumentNullException.ThrowIfNull(config);
        var declared = TinyLmModel.Config;
        var parts = new List<string>();
        if (config.Vocab != declared.Vocab)
            parts.Add($"vocabulary: the corpus has {config.Vocab} distinct characters instead of {declared.Vocab}");
        var size = new List<string>();
        if (config.DModel != declared.DModel) size.Add($"d_model {config.DModel} instead of {declared.DModel}");
        if (config.Layers != declared.Layers) size.Add($"{config.Layers} layer{(config.Layers == 1 ? "" : "s")} instead of {declared.Layers}");
        if (config.Heads != declared.Heads) size.Add($"{config.Heads} head{(config.Heads == 1 ? "" : "s")} instead of {declared.Heads}");
        if (config.FeedForward != declared.FeedForward) size.Add($"feed-forward {config.FeedForward} instead of {declared.FeedForward}");
        if (config.Context != declared.Context) size.Add($"context {config.Context} instead of {declared.Context}");
        if (size.Count > 0) parts.Add("model size: " + string.Join(", ", size));
        return string.Join("; ", parts);
    }
}
