using System.Globalization;
using System.Text;

namespace TinyLm;

/// <summary>Writes results.md, results.csv, curves.csv and loss.png.</summary>
public static class Report
{
    public static void Write(string dir, ModelConfig config, Corpus corpus, TrainOptions o, IReadOnlyList<RunResult> results,
                             TimeSpan wall, string? sweepNote, string title = "TinyLm: validation loss",
                             IReadOnlyList<RunResult>? plotted = null)
    {
        Directory.CreateDirectory(dir);
        var adam = results.FirstOrDefault(r => r.Name == "AdamW");
        var md = new StringBuilder();
        md.AppendLine("# TinyLm results");
        md.AppendLine();
        md.AppendLine(CultureInfo.InvariantCulture, $"Model: {config.Layers}-layer pre-LayerNorm causal transformer, vocabulary {config.Vocab}, context {config.Context}, " +
                      $"d_model {config.DModel}, {config.Heads} heads, feed-forward {config.FeedForward} (GELU), {config.ParameterCount:N0} parameters.");
        md.AppendLine(CultureInfo.InvariantCulture, $"Data: {corpus.Source}, {corpus.Train.Length:N0} train / {corpus.Validation.Length:N0} validation characters (90/10 split).");
        md.AppendLine($"Training: {o.Steps} steps of {o.Batch}×{config.Context} tokens, warm-up {o.WarmupSteps} then cosine decay to {o.FinalLrFraction:G2}·lr, " +
                      $"seed {o.Seed}, weight decay 0, β2 0.999, ε 1e-8, {Kernels.MaxThreads} threads. Final validation loss over " +
                      (o.FinalEvalWindows == 0 ? "every non-overlapping validation window" : $"{o.FinalEvalWindows} validation windows") + " (nats/char).");
        if (sweepNote is not null) md.AppendLine(sweepNote);
        md.AppendLine($"Wall time {wall.TotalSeconds:F0} s{(sweepNote is null ? "" : " (sum over the runs)")} on {Environment.ProcessorCount} cores; load average at the end {LoadAverage()} " +
                      "(timings are wall-clock and include whatever else the machine was running).");
        md.AppendLine();
        md.AppendLine("| configuration | optimizer state bytes | bytes per parameter | final validation loss | difference from AdamW (%) | step time (ms) | optimizer step (ms) | lr | implementation |");
        md.AppendLine("|---|---:|---:|---:|---:|---:|---:|---:|---|");
        foreach (var r in results)
        {
            string diff = adam is null ? "n/a" : (100 * (r.FinalValidationLoss - adam.FinalValidationLoss) / adam.FinalValidationLoss).ToString("+0.00;-0.00;0.00", CultureInfo.InvariantCulture);
            md.AppendLine(CultureInfo.InvariantCulture, $"| {r.Name} | {r.StateBytes:N0} | {r.BytesPerParameter:F3} | {r.FinalValidationLoss:F4} | {diff} | {r.StepMs:F1} | {r.OptimizerMs:F2} | {r.LearningRate:G3} | {r.Implementation} |");
        }
        foreach (var r in results)
            if (r.SkippedWarning(o.Steps) is { } warning) md.AppendLine().AppendLine(warning + ".");
        File.WriteAllText(Path.Combine(dir, "results.md"), md.ToString());

        var csv = new StringBuilder("configuration,state_bytes,bytes_per_parameter,final_val_loss,diff_from_adamw_percent,step_ms,optimizer_ms,lr,implementation\n");
        foreach (var r in results)
        {
            double diff = adam is null ? double.NaN : 100 * (r.FinalValidationLoss - adam.FinalValidationLoss) / adam.FinalValidationLoss;
            csv.AppendLine(string.Create(CultureInfo.InvariantCulture,
                $"{r.Name},{r.StateBytes},{r.BytesPerParameter:F4},{r.FinalValidationLoss:F5},{diff:F3},{r.StepMs:F3},{r.OptimizerMs:F3},{r.LearningRate:G3},\"{r.Implementation}\""));
        }
        File.WriteAllText(Path.Combine(dir, "results.csv"), csv.ToString());

        var curves = new StringBuilder("configuration,step,val_loss\n");
        foreach (var r in results)
            foreach (var (step, loss) in r.ValidationCurve)
                curves.AppendLine(string.Create(CultureInfo.InvariantCulture, $"{r.Name},{step},{loss:F5}"));
        File.WriteAllText(Path.Combine(dir, "curves.csv"), curves.ToString());

        Plot(Path.Combine(dir, "loss.png"), plotted ?? results, title);
    }

    private static string LoadAverage()
    {
        try { return string.Join(' ', File.ReadAllText("/proc/loadavg").Split(' ').Take(3)); }
        catch (IOException) { return "n/a"; }
        catch (UnauthorizedAccessException) { return "n/a"; }
    }

    public static void Plot(string path, IReadOnlyList<RunResult> results, string title)
    {
        var plt = new ScottPlot.Plot();
        double ymax = double.MinValue, ymin = double.MaxValue;
        foreach (var r in results)
        {
            // Skip the step-0 point (the untrained model) so the interesting range is visible.
            var pts = r.ValidationCurve.Where(c => c.Step > 0).ToArray();
            if (pts.Length == 0) pts = r.ValidationCurve.ToArray();
            var sc = plt.Add.Scatter(pts.Select(p => (double)p.Step).ToArray(), pts.Select(p => p.Loss).ToArray());
            sc.LegendText = $"{r.Name} ({r.BytesPerParameter:F2} B/param): {r.FinalValidationLoss:F3}";
            sc.LineWidth = 2;
            sc.MarkerSize = 4;
            ymax = Math.Max(ymax, pts.Max(p => p.Loss));
            ymin = Math.Min(ymin, pts.Min(p => p.Loss));
        }
        plt.Title(title);
        plt.XLabel("training step");
        plt.YLabel("validation loss (nats/char)");
        plt.ShowLegend(ScottPlot.Alignment.UpperRight);
        if (ymax > ymin) plt.Axes.SetLimitsY(ymin - 0.05 * (ymax - ymin), ymax + 0.05 * (ymax - ymin));
        plt.SavePng(path, 1000, 600);
    }
}
