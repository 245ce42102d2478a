using System.Diagnostics;
using System.Globalization;
using System.Text;
using Collins;

namespace TinyLm;

/// <summary>
/// The full grid: AdamW, Collins at Ratio × Layout × SecondMoment × Beta1, and the anchors, each at every learning
/// rate of the grid (<see cref="DefaultLearningRates"/> unless given), reported at its best rate. The generator emits one type per
/// attribute, so the sweep builds its configurations at run time with the run-time CountSketchAdam
/// (the generated optimizers' kernels and hash derivation: bit-identical to them).
/// </summary>
public static class Sweep
{
    /// <summary>The default grid (the issue asks for at least 3e-4, 1e-3, 3e-3); <c>--lrs</c> replaces it.</summary>
    public static readonly float[] DefaultLearningRates = [3e-4f, 1e-3f, 3e-3f, 1e-2f];
    public static readonly int[] Ratios = [1, 4, 8, 16, 32, 40, 64, 128];
    /// <summary>The Count-Sketch grid's other axes (with <see cref="Ratios"/>): <see cref="CountSketchGrid"/>.</summary>
    private static readonly SketchLayout[] GridLayouts = [SketchLayout.Rotation, SketchLayout.Universal];
    private static readonly SecondMomentEstimate[] GridEstimates = [SecondMomentEstimate.Sum, SecondMomentEstimate.Mean];
    private static readonly double[] GridBeta1 = [0.9, 0.0];

    private static string Beta1Text(double beta1) => beta1.ToString("0.0#", CultureInfo.InvariantCulture);

    public static IEnumerable<(string Name, OptimizerSettings? Settings)> Configurations()
    {
        yield return ("AdamW", null);
        foreach (var c in CountSketchGrid()) yield return c;
        // The factored second moment (β1 = 0): its state does not depend on the ratio for TinyLm's sketched tensors, which are
        // all matrices, so one configuration.
        yield return ("Factored b1=0.0", new OptimizerSettings { SecondMoment = SecondMomentEstimate.Factored, Beta1 = 0 });
        yield return ("Factored clip=1 b1=0.0", new OptimizerSettings { SecondMoment = SecondMomentEstimate.Factored, Beta1 = 0, UpdateClipping = 1 });
        yield return ("Factored clip=1 sched=0.8 b1=0.0", new OptimizerSettings { SecondMoment = SecondMomentEstimate.Factored, Beta1 = 0, UpdateClipping = 1, Beta2Schedule = 0.8 });
        // Every tensor factored (DenseThreshold 0): a vector is an n × 1 matrix, whose factored v̂ is its exact v, so update
        // clipping and the β2 schedule reach the small tensors too, as in Adafactor.
        yield return ("Factored dense=0 b1=0.0", new OptimizerSettings { SecondMoment = SecondMomentEstimate.Factored, Beta1 = 0, DenseThreshold = 0 });
        yield return ("Factored clip=1 dense=0 b1=0.0", new OptimizerSettings { SecondMoment = SecondMomentEstimate.Factored, Beta1 = 0, UpdateClipping = 1, DenseThreshold = 0 });
        yield return ("Factored clip=1 sched=0.8 dense=0 b1=0.0", new OptimizerSettings { SecondMoment = SecondMomentEstimate.Factored, Beta1 = 0, UpdateClipping = 1, Beta2Schedule = 0.8, DenseThreshold = 0 });
        yield return ("Factored clip=1 sched=0.8 dense=0 eps=1e-30 b1=0.0", new OptimizerSettings { SecondMoment = SecondMomentEstimate.Factored, Beta1 = 0, UpdateClipping = 1, Beta2Schedule = 0.8, DenseThreshold = 0, Epsilon = 1e-30 });
        // The factored second moment with a block-quantised first moment (β1 = 0.9, block 128): 8 and 4 bits, to nearest and
        // stochastically rounded, and 4 bits with update clipping.
        foreach (var (bits, storage) in new[] { ("q8", FirstMomentStorage.Quantized8), ("q4", FirstMomentStorage.Quantized4) })
            foreach (bool stochastic in new[] { false, true })
                yield return ($"Factored {bits}{(stochastic ? " sr" : "")} b1=0.9",
                              new OptimizerSettings { SecondMoment = SecondMomentEstimate.Factored, Beta1 = 0.9, FirstMoment = storage, StochasticRounding = stochastic });
        yield return ("Factored q4 sr clip=1 b1=0.9", new OptimizerSettings { SecondMoment = SecondMomentEstimate.Factored, Beta1 = 0.9, FirstMoment = FirstMomentStorage.Quantized4, StochasticRounding = true, UpdateClipping = 1 });
        // The quantisation block (the default is 128).
        foreach (int block in new[] { 32, 512, 2048 })
            yield return ($"Factored q4 sr block={block} b1=0.9", new OptimizerSettings { SecondMoment = SecondMomentEstimate.Factored, Beta1 = 0.9, FirstMoment = FirstMomentStorage.Quantized4, StochasticRounding = true, QuantizationBlock = block });
        // Global gradient-norm clipping inside the step (MaxGradientNorm, as clip_grad_norm_(1.0): what AdamWClip does).
        yield return ("Factored gclip=1 b1=0.0", new OptimizerSettings { SecondMoment = SecondMomentEstimate.Factored, Beta1 = 0, MaxGradientNorm = 1 });
        yield return ("Factored clip=1 gclip=1 b1=0.0", new OptimizerSettings { SecondMoment = SecondMomentEstimate.Factored, Beta1 = 0, UpdateClipping = 1, MaxGradientNorm = 1 });
        yield return ("Factored q4 sr gclip=1 b1=0.9", new OptimizerSettings { SecondMoment = SecondMomentEstimate.Factored, Beta1 = 0.9, FirstMoment = FirstMomentStorage.Quantized4, StochasticRounding = true, MaxGradientNorm = 1 });
        // AdamW with global gradient-norm clipping (the bar's second baseline), AdamW with update clipping (the comparison for the
        // settings with UpdateClipping) and the anchors (Anchors.cs), like AdamW without Collins settings.
        yield return ("AdamWClip", null);
        yield return ("AdamWUpdateClip", null);
        foreach (string anchor in OptimizerCatalog.AnchorNames) yield return (anchor, null);
    }

    /// <summary>
    /// The sweep configurations with the settings of a recommended variant (<see cref="OptimizerCatalog.RecommendedVariants"/>):
    /// sweep name → variant name ("Factored q4 sr b1=0.9" → "FactoredQ4", …).
    /// </summary>
    public static IReadOnlyDictionary<string, string> RecommendedConfigurations() =>
        OptimizerCatalog.RecommendedVariants
            .Select(v => (Variant: v, Settings: OptimizerCatalog.Variant(v).Settings))
            .SelectMany(v => Configurations().Where(c => c.Settings == v.Settings).Select(c => (c.Name, v.Variant)))
            .ToDictionary(x => x.Name, x => x.Variant, StringComparer.Ordinal);

    /// <summary>The Count-Sketch grid: Ratio × layout × second-moment estimate × β1 (Ratio 1 once per β1: dense exact Adam).</summary>
    public static IEnumerable<(string Name, OptimizerSettings? Settings)> CountSketchGrid()
    {
        foreach (int ratio in Ratios)
            foreach (var layout in GridLayouts)
                foreach (var sm in GridEstimates)
                    foreach (double beta1 in GridBeta1)
                    {
                        // Ratio 1 is dense exact Adam: layout and second-moment estimate do not apply.
                        if (ratio == 1 && (layout != GridLayouts[0] || sm != GridEstimates[0])) continue;
                        string name = ratio == 1 ? $"R1 b1={Beta1Text(beta1)}" : $"R{ratio} {layout} {sm} b1={Beta1Text(beta1)}";
                        yield return (name, new OptimizerSettings { Ratio = ratio, Layout = layout, SecondMoment = sm, Beta1 = beta1 });
                    }
    }

    /// <summary>
    /// Every name of <see cref="Configurations"/>, compactly, for messages: the Count-Sketch grid as a pattern built from its
    /// axes, then every other configuration by name, separated by "; " as <c>--configs</c> takes them.
    /// </summary>
    public static string DescribeConfigurations()
    {
        string Set<T>(IEnumerable<T> values, Func<T, string> text) => "{" + string.Join(",", values.Select(text)) + "}";
        string beta1 = Set(GridBeta1, Beta1Text);
        string grid = $"R1 b1={beta1}; R{Set(Ratios.Where(r => r > 1), r => r.ToString(CultureInfo.InvariantCulture))} " +
                      $"{Set(GridLayouts, l => l.ToString())} {Set(GridEstimates, e => e.ToString())} b1={beta1}";
        var inGrid = CountSketchGrid().Select(c => c.Name).ToHashSet(StringComparer.Ordinal);
        return string.Join("; ", Configurations().Select(c => c.Name).Where(n => !inGrid.Contains(n)).Prepend(grid));
    }

    public static int Run(ModelConfig config, Corpus corpus, TrainOptions o, string dir, int maxConfigurations = 0, bool resume = false,
                          float[]? learningRates = null, string[]? only = null, TextWriter? output = null)
    {
        output ??= Console.Out;
        var grid = learningRates ?? DefaultLearningRates;
        var wall = Stopwatch.StartNew();
        var specs = config.Specs();
        var configs = Configurations().ToArray();
        if (only is not null)
        {
            var unknown = only.Where(n => !configs.Any(c => c.Name == n)).ToArray();
            if (unknown.Length > 0) throw new ArgumentException($"Unknown sweep configuration(s): {string.Join("; ", unknown)}.");
            configs = configs.Where(c => only.Contains(c.Name)).ToArray();
        }
        if (maxConfigurations > 0) configs = configs[..Math.Min(maxConfigurations, configs.Length)];
        Directory.CreateDirectory(dir);
        string allPath = Path.Combine(dir, "sweep_all.csv"), curvesPath = Path.Combine(dir, "sweep_curves.csv");
        // --resume keeps the runs already in sweep_all.csv / sweep_curves.csv (same options assumed) and runs the rest.
        var previous = resume ? SweepData.Load(dir) : new SweepData();
        if (!resume || !File.Exists(allPath))
        {
            File.WriteAllText(allPath, SweepData.AllHeader + "\n");
            File.WriteAllText(curvesPath, SweepData.CurvesHeader + "\n");
        }
        int total = configs.Length * grid.Length, done = 0, ran = 0;
        int pending = configs.Sum(c => grid.Count(lr => !previous.Has(c.Name, lr)));
        output.WriteLine($"Sweep: {configs.Length} configurations × {grid.Length} learning rates = {total} runs of {o.Steps} steps" +
                          (previous.Runs.Count > 0 ? $" ({previous.Runs.Count} already in {allPath})." : "."));
        foreach (var (name, settings) in configs)
        {
            foreach (float lr in grid)
            {
                done++;
                if (previous.Has(name, lr)) continue;
                var opt = settings is null ? OptimizerCatalog.CreateBaseline(name, config)! : OptimizerCatalog.CreateRuntime(name, settings, specs);
                var r = Trainer.Train(config, corpus, opt, o with { LearningRate = lr });
                ran++;
                double perRun = wall.Elapsed.TotalSeconds / ran;
                var eta = TimeSpan.FromSeconds(perRun * (pending - ran));
                output.WriteLine($"[{done}/{total}] {name} lr {lr:G3}: val {r.FinalValidationLoss:F4}  ({r.StepMs:F1} ms/step, {opt.Implementation})  " +
                                  $"elapsed {wall.Elapsed:h\\:mm\\:ss}  ETA {eta:h\\:mm\\:ss}");
                if (r.SkippedWarning(o.Steps) is { } warning) output.WriteLine("  " + warning);
                File.AppendAllText(allPath, SweepData.AllLine(name, settings, r) + "\n");
                File.AppendAllText(curvesPath, string.Concat(r.ValidationCurve.Select(c => SweepData.CurveLine(name, lr, c.Step, c.Loss) + "\n")));
            }
        }
        output.WriteLine($"Sweep runs done in {wall.Elapsed:h\\:mm\\:ss}.");
        return SweepReport.Write(dir, config, corpus, o, output);
    }
}
