using System.Diagnostics;
using System.Globalization;
using System.Text;
using Collins;

namespace TinyLm;

/// <summary>
/// The full grid: AdamW and Collins at Ratio × Layout × SecondMoment × Beta1, each at every learning
/// rate of <see cref="LearningRates"/>, reported at its best rate. The generator emits one type per
/// attribute, so the sweep builds its configurations at run time (run-time CountSketchAdam when
/// available: identical math and hash derivation).
/// </summary>
public static class Sweep
{
    public static readonly float[] LearningRates = [3e-4f, 1e-3f, 3e-3f];
    public static readonly int[] Ratios = [1, 4, 8, 16, 32, 40, 64, 128];

    public static IEnumerable<(string Name, OptimizerSettings? Settings)> Configurations()
    {
        yield return ("AdamW", null);
        foreach (int ratio in Ratios)
            foreach (var layout in new[] { SketchLayout.Rotation, SketchLayout.Universal })
                foreach (var sm in new[] { SecondMomentEstimate.Sum, SecondMomentEstimate.Mean })
                    foreach (double beta1 in new[] { 0.9, 0.0 })
                    {
                        // Ratio 1 is dense exact Adam: layout and second-moment estimate do not apply.
                        if (ratio == 1 && (layout != SketchLayout.Rotation || sm != SecondMomentEstimate.Sum)) continue;
                        string name = ratio == 1 ? $"R1 b1={beta1:0.0#}" : $"R{ratio} {layout} {sm} b1={beta1:0.0#}";
                        yield return (name, new OptimizerSettings { Ratio = ratio, Layout = layout, SecondMoment = sm, Beta1 = beta1 });
                    }
    }

    public static int Run(ModelConfig config, Corpus corpus, TrainOptions o, string dir, int maxConfigurations = 0)
    {
        var wall = Stopwatch.StartNew();
        var specs = config.Specs();
        var configs = Configurations().ToArray();
        if (maxConfigurations > 0) configs = configs[..Math.Min(maxConfigurations, configs.Length)];
        Console.WriteLine($"Sweep: {configs.Length} configurations × {LearningRates.Length} learning rates.");
        var best = new List<RunResult>();
        var all = new StringBuilder("configuration,lr,final_val_loss,state_bytes,step_ms,implementation\n");
        Directory.CreateDirectory(dir);
        int done = 0, total = configs.Length * LearningRates.Length;
        foreach (var (name, settings) in configs)
        {
            RunResult? bestRun = null;
            foreach (float lr in LearningRates)
            {
                var opt = settings is null ? new DenseAdamW(specs) : OptimizerCatalog.CreateRuntime(name, settings, specs);
                var r = Trainer.Train(config, corpus, opt, o with { LearningRate = lr });
                done++;
                Console.WriteLine($"[{done}/{total}] {name} lr {lr:G3}: val {r.FinalValidationLoss:F4}  ({r.StepMs:F1} ms/step, {opt.Implementation})  elapsed {wall.Elapsed:h\\:mm\\:ss}");
                all.AppendLine(string.Create(CultureInfo.InvariantCulture, $"\"{name}\",{lr:G3},{r.FinalValidationLoss:F5},{r.StateBytes},{r.StepMs:F3},\"{r.Implementation}\""));
                File.WriteAllText(Path.Combine(dir, "sweep_all.csv"), all.ToString());
                if (bestRun is null || r.FinalValidationLoss < bestRun.FinalValidationLoss) bestRun = r;
            }
            best.Add(bestRun!);
        }
        string note = "Sweep: every configuration is reported at its best learning rate of {3e-4, 1e-3, 3e-3}. " +
                      "Collins configurations are built at run time (the generator emits one type per attribute) with the run-time " +
                      "Collins.CountSketchAdam where available (same math and hash derivation as the generated optimizers); " +
                      "the implementation column says which code ran.";
        Report.Write(dir, config, corpus, o, best, wall.Elapsed, note, "TinyLm sweep: validation loss at the best learning rate");
        Console.WriteLine($"Sweep done in {wall.Elapsed:h\\:mm\\:ss}; wrote {Path.Combine(dir, "results.md")}.");
        return 0;
    }
}
