using System.Globalization;
using System.Text;
using Collins;

namespace TinyLm;

/// <summary>One sweep run as stored in sweep_all.csv.</summary>
public sealed record SweepRun(
    string Name, int Ratio, string Layout, string SecondMoment, double Beta1, float LearningRate,
    double FinalValidationLoss, double FinalTrainLoss, long StateBytes, long Parameters, double StepMs, double OptimizerMs,
    string Implementation, double WallSeconds)
{
    /// <summary>The family a Collins run belongs to (layout, estimate, β1); its name for AdamW and the anchors (Ratio 0).</summary>
    public string Family => Ratio == 0 ? Name : $"{Layout} {SecondMoment} b1={Beta1:0.0#}";
}

/// <summary>The sweep's raw data: every run (sweep_all.csv) and its validation curve (sweep_curves.csv).</summary>
public sealed class SweepData
{
    public const string AllHeader = "configuration,ratio,layout,second_moment,beta1,lr,final_val_loss,final_train_loss,state_bytes,parameters,step_ms,optimizer_ms,implementation,wall_s";
    public const string CurvesHeader = "configuration,lr,step,val_loss";

    public List<SweepRun> Runs { get; } = [];
    public Dictionary<(string, float), List<(int Step, double Loss)>> Curves { get; } = [];

    public bool Has(string name, float lr) => Runs.Any(r => r.Name == name && r.LearningRate == lr);

    public static string AllLine(string name, OptimizerSettings? s, RunResult r) => string.Create(CultureInfo.InvariantCulture,
        $"\"{name}\",{s?.Ratio ?? 0},{(s is null ? "-" : s.Layout.ToString())},{(s is null ? "-" : s.SecondMoment.ToString())},{s?.Beta1 ?? 0.9}," +
        $"{r.LearningRate:G3},{r.FinalValidationLoss:F5},{r.FinalTrainLoss:F5},{r.StateBytes},{r.Parameters},{r.StepMs:F3},{r.OptimizerMs:F3},\"{r.Implementation}\",{r.WallSeconds:F1}");

    public static string CurveLine(string name, float lr, int step, double loss) =>
        string.Create(CultureInfo.InvariantCulture, $"\"{name}\",{lr:G3},{step},{loss:F5}");

    public static SweepData Load(string dir)
    {
        var data = new SweepData();
        string all = Path.Combine(dir, "sweep_all.csv"), curves = Path.Combine(dir, "sweep_curves.csv");
        if (!File.Exists(all)) return data;
        foreach (var line in File.ReadLines(all).Skip(1))
        {
            var f = SplitCsv(line);
            if (f.Length != 14) continue;   // a line cut short by an interrupted run
            var c = CultureInfo.InvariantCulture;
            data.Runs.Add(new SweepRun(f[0], int.Parse(f[1], c), f[2], f[3], double.Parse(f[4], c), float.Parse(f[5], c),
                double.Parse(f[6], c), double.Parse(f[7], c), long.Parse(f[8], c), long.Parse(f[9], c), double.Parse(f[10], c),
                double.Parse(f[11], c), f[12], double.Parse(f[13], c)));
        }
        if (File.Exists(curves))
            foreach (var line in File.ReadLines(curves).Skip(1))
            {
                var f = SplitCsv(line);
                if (f.Length != 4) continue;
                var key = (f[0], float.Parse(f[1], CultureInfo.InvariantCulture));
                if (!data.Curves.TryGetValue(key, out var list)) data.Curves[key] = list = [];
                list.Add((int.Parse(f[2], CultureInfo.InvariantCulture), double.Parse(f[3], CultureInfo.InvariantCulture)));
            }
        return data;
    }

    private static string[] SplitCsv(string line)
    {
        var fields = new List<string>();
        var sb = new StringBuilder();
        bool quoted = false;
        foreach (char ch in line)
        {
            if (ch == '"') quoted = !quoted;
            else if (ch == ',' && !quoted) { fields.Add(sb.ToString()); sb.Clear(); }
            else sb.Append(ch);
        }
        fields.Add(sb.ToString());
        return fields.ToArray();
    }
}

/// <summary>
/// Renders the sweep from its CSV files: results.md/results.csv (every configuration at its best learning rate),
/// a ratio × family table of the difference from AdamW, loss.png (AdamW and the best Collins run at each ratio)
/// and ratio.png (final validation loss against Ratio, one line per family).
/// </summary>
public static class SweepReport
{
    public static int Write(string dir, ModelConfig config, Corpus corpus, TrainOptions o, TextWriter? output = null, TextWriter? error = null)
    {
        var data = SweepData.Load(dir);
        if (data.Runs.Count == 0) { (error ?? Console.Error).WriteLine($"No sweep runs in {Path.Combine(dir, "sweep_all.csv")}."); return 1; }
        var best = data.Runs.GroupBy(r => r.Name).Select(g => g.MinBy(r => r.FinalValidationLoss)!).ToList();
        var adam = best.FirstOrDefault(r => r.Name == "AdamW");
        double Diff(SweepRun r) => adam is null ? double.NaN : 100 * (r.FinalValidationLoss - adam.FinalValidationLoss) / adam.FinalValidationLoss;
        RunResult ToResult(SweepRun r) => new(r.Name, r.Implementation, r.LearningRate, r.StateBytes, r.Parameters, r.FinalValidationLoss,
            r.FinalTrainLoss, r.StepMs, r.OptimizerMs, r.WallSeconds, data.Curves.GetValueOrDefault((r.Name, r.LearningRate)) ?? [], []);

        // Curves: AdamW and, at each ratio, the best Collins configuration.
        var plotted = new List<RunResult>();
        if (adam is not null) plotted.Add(ToResult(adam));
        foreach (var g in best.Where(r => r.Ratio > 0).GroupBy(r => r.Ratio).OrderBy(g => g.Key))
            plotted.Add(ToResult(g.MinBy(r => r.FinalValidationLoss)!));

        var lrList = data.Runs.Select(r => r.LearningRate).Distinct().Order().ToArray();
        string grid = string.Join(", ", lrList.Select(l => l.ToString("G3", CultureInfo.InvariantCulture)));
        string note = $"Sweep: {best.Count} configurations × {lrList.Length} learning rates ({data.Runs.Count} runs); every configuration, AdamW included, " +
                      $"is reported at its best learning rate of {{{grid}}}. Collins configurations are built at run time with " +
                      "Collins.CountSketchAdam (same math and hash derivation as the generated optimizers; the implementation column says which code ran). " +
                      "loss.png shows AdamW and the best Collins configuration at each ratio; ratio.png shows every family.";
        Report.Write(dir, config, corpus, o, best.Select(ToResult).ToList(), TimeSpan.FromSeconds(data.Runs.Sum(r => r.WallSeconds)), note,
                     "TinyLm sweep: AdamW and the best Collins setting at each ratio (best learning rate each)", plotted);

        // Ratio × family table (difference from AdamW in %, at each cell's best learning rate).
        var families = best.Where(r => r.Ratio > 1).Select(r => r.Family).Distinct().Order().ToArray();
        var ratios = best.Where(r => r.Ratio > 0).Select(r => r.Ratio).Distinct().Order().ToArray();
        var md = new StringBuilder();
        md.AppendLine();
        md.AppendLine("## Difference from AdamW (%) by ratio and family");
        md.AppendLine();
        md.AppendLine(adam is null ? "No AdamW run." : string.Create(CultureInfo.InvariantCulture,
            $"AdamW: final validation loss {adam.FinalValidationLoss:F4} at lr {adam.LearningRate:G3}. Each cell: difference in % (best lr). Ratio 1 is exact Adam state (one row, no collisions), the same for every layout and estimate."));
        md.AppendLine();
        md.AppendLine("| ratio | state B/param | " + string.Join(" | ", families) + " |");
        md.AppendLine("|---:|---:|" + string.Concat(families.Select(_ => "---:|")));
        foreach (int ratio in ratios)
        {
            var cells = families.Select(fam =>
            {
                var r = ratio == 1
                    ? best.FirstOrDefault(x => x.Ratio == 1 && x.Beta1 == best.First(y => y.Family == fam).Beta1)
                    : best.FirstOrDefault(x => x.Ratio == ratio && x.Family == fam);
                return r is null ? "–" : string.Create(CultureInfo.InvariantCulture, $"{Diff(r):+0.0;-0.0;0.0} ({r.LearningRate:G1})");
            });
            var any = best.Where(x => x.Ratio == ratio).ToArray();
            md.AppendLine(string.Create(CultureInfo.InvariantCulture,
                $"| {ratio} | {any.Min(x => (double)x.StateBytes / x.Parameters):F3}–{any.Max(x => (double)x.StateBytes / x.Parameters):F3} | ") +
                string.Join(" | ", cells) + " |");
        }
        md.AppendLine();
        md.AppendLine("## Every run");
        md.AppendLine();
        md.AppendLine("| configuration | " + string.Join(" | ", lrList.Select(l => $"lr {l.ToString("G3", CultureInfo.InvariantCulture)}")) + " |");
        md.AppendLine("|---|" + string.Concat(lrList.Select(_ => "---:|")));
        foreach (var g in data.Runs.GroupBy(r => r.Name))
            md.AppendLine($"| {g.Key} | " + string.Join(" | ", lrList.Select(l => g.FirstOrDefault(r => r.LearningRate == l)?.FinalValidationLoss.ToString("F4", CultureInfo.InvariantCulture) ?? "–")) + " |");
        File.AppendAllText(Path.Combine(dir, "results.md"), md.ToString());

        var frontier = Frontier(best);
        var fm = new StringBuilder();
        fm.AppendLine();
        fm.AppendLine("## Frontier: state against loss");
        fm.AppendLine();
        fm.AppendLine("Every configuration at its best learning rate, by state bytes per parameter; a configuration is on the frontier when no other has lower loss at equal or less state (frontier.png).");
        fm.AppendLine();
        fm.AppendLine("| configuration | state B/param | final val loss | vs AdamW | lr | on the frontier |");
        fm.AppendLine("|---|---:|---:|---:|---:|:---:|");
        foreach (var r in best.OrderBy(BytesPerParameter).ThenBy(r => r.FinalValidationLoss))
            fm.AppendLine(string.Create(CultureInfo.InvariantCulture,
                $"| {r.Name} | {BytesPerParameter(r):F3} | {r.FinalValidationLoss:F4} | {Diff(r):+0.0;-0.0;0.0} % | {r.LearningRate:G3} | {(frontier.Contains(r) ? "yes" : "")} |"));
        File.AppendAllText(Path.Combine(dir, "results.md"), fm.ToString());

        PlotRatios(Path.Combine(dir, "ratio.png"), best, adam, families);
        PlotFrontier(Path.Combine(dir, "frontier.png"), best, frontier);
        (output ?? Console.Out).WriteLine($"Wrote {Path.Combine(dir, "results.md")}, results.csv, curves.csv, loss.png, ratio.png, frontier.png.");
        return 0;
    }

    private static double BytesPerParameter(SweepRun r) => (double)r.StateBytes / r.Parameters;

    /// <summary>
    /// The configurations no other dominates: sorted by state, a configuration is kept when its loss is below that of every
    /// configuration with less or equal state (ties in state: the lower loss).
    /// </summary>
    public static HashSet<SweepRun> Frontier(IEnumerable<SweepRun> best)
    {
        var frontier = new HashSet<SweepRun>();
        double lowest = double.PositiveInfinity;
        foreach (var r in best.OrderBy(BytesPerParameter).ThenBy(r => r.FinalValidationLoss))
            if (r.FinalValidationLoss < lowest) { frontier.Add(r); lowest = r.FinalValidationLoss; }
        return frontier;
    }

    /// <summary>
    /// The order in which <see cref="PlotFrontier"/> labels points: the recommended settings (<see cref="Sweep.RecommendedConfigurations"/>)
    /// first, then the frontier, then plain AdamW (the other AdamW rows share its state size, so its label would otherwise go to
    /// whichever has the lowest loss), then the other baselines and the anchors (Ratio 0), then the rest; by loss within each.
    /// </summary>
    public static IEnumerable<SweepRun> LabelOrder(IEnumerable<SweepRun> best, HashSet<SweepRun> frontier, IReadOnlyDictionary<string, string> recommended) =>
        best.OrderBy(r => recommended.ContainsKey(r.Name) ? 0 : frontier.Contains(r) ? 1 : r.Name == "AdamW" ? 2 : r.Ratio == 0 ? 3 : 4)
            .ThenBy(r => r.FinalValidationLoss);

    /// <summary>
    /// frontier.png: state bytes per parameter (log scale) against final validation loss, one point per configuration, the frontier as
    /// a step line. Labels are placed in <see cref="LabelOrder"/> (a recommended setting's label adds its TinyLm variant's name),
    /// each only where it does not overlap one already placed (many configurations share a state size); results.md's table names
    /// every point.
    /// </summary>
    private static void PlotFrontier(string path, List<SweepRun> best, HashSet<SweepRun> frontier)
    {
        var plt = new ScottPlot.Plot();
        double span = Math.Max(1e-9, best.Max(r => r.FinalValidationLoss) - best.Min(r => r.FinalValidationLoss));
        var placed = new List<(double X, double Y)>();
        var recommended = Sweep.RecommendedConfigurations();
        int unlabelled = 0;
        foreach (var r in LabelOrder(best, frontier, recommended))
        {
            double x = Math.Log10(BytesPerParameter(r)), y = r.FinalValidationLoss;
            var point = plt.Add.Marker(x, y);
            point.Size = 8;
            point.Color = frontier.Contains(r) ? ScottPlot.Colors.Red : r.Ratio == 0 ? ScottPlot.Colors.Black : ScottPlot.Colors.Blue;
            // A label runs about 0.4 decades to the right of its point and is about 2.2 % of the loss range tall.
            if (placed.Any(q => Math.Abs(q.X - x) < 0.4 && Math.Abs(q.Y - y) < 0.022 * span)) { unlabelled++; continue; }
            placed.Add((x, y));
            var label = plt.Add.Text(recommended.TryGetValue(r.Name, out var variant) ? $"{r.Name} ({variant})" : r.Name, x, y);
            label.LabelFontSize = 11;
            label.OffsetX = 6;
        }
        var steps = frontier.OrderBy(BytesPerParameter).ToArray();
        if (steps.Length > 1)
        {
            var xs = new List<double>(); var ys = new List<double>();
            for (int i = 0; i < steps.Length; i++)
            {
                if (i > 0) { xs.Add(Math.Log10(BytesPerParameter(steps[i]))); ys.Add(steps[i - 1].FinalValidationLoss); }
                xs.Add(Math.Log10(BytesPerParameter(steps[i]))); ys.Add(steps[i].FinalValidationLoss);
            }
            var line = plt.Add.Scatter(xs.ToArray(), ys.ToArray());
            line.MarkerSize = 0;
            line.Color = ScottPlot.Colors.Red;
            line.LegendText = "frontier (no configuration has lower loss at equal or less state)";
        }
        double[] ticks = [0.01, 0.03, 0.1, 0.3, 1, 2, 4, 8];
        // Room on the right for the labels of the 8 B/param baselines.
        plt.Axes.SetLimitsX(Math.Log10(best.Min(BytesPerParameter)) - 0.1, Math.Log10(best.Max(BytesPerParameter)) + 0.35);
        plt.Axes.Bottom.TickGenerator = new ScottPlot.TickGenerators.NumericManual(
            ticks.Select(Math.Log10).ToArray(), ticks.Select(t => t.ToString("G3", CultureInfo.InvariantCulture)).ToArray());
        plt.Title("TinyLm: optimizer state against final validation loss (best learning rate each)"
                  + (unlabelled > 0 ? $"; {unlabelled} unlabelled points: see results.md" : ""));
        plt.XLabel("state bytes per parameter (log scale)");
        plt.YLabel("final validation loss (nats/char)");
        plt.ShowLegend(ScottPlot.Alignment.UpperRight);
        plt.SavePng(path, 1100, 650);
    }

    private static void PlotRatios(string path, List<SweepRun> best, SweepRun? adam, string[] families)
    {
        var plt = new ScottPlot.Plot();
        foreach (var fam in families)
        {
            double b1 = best.First(r => r.Family == fam).Beta1;
            var pts = best.Where(r => r.Family == fam || (r.Ratio == 1 && r.Beta1 == b1)).OrderBy(r => r.Ratio).ToArray();
            var sc = plt.Add.Scatter(pts.Select(r => Math.Log2(r.Ratio)).ToArray(), pts.Select(r => r.FinalValidationLoss).ToArray());
            sc.LegendText = fam;
            sc.LineWidth = 2;
            sc.MarkerSize = 6;
            if (fam.StartsWith("Universal", StringComparison.Ordinal)) sc.LinePattern = ScottPlot.LinePattern.Dashed;
        }
        if (adam is not null)
        {
            var line = plt.Add.HorizontalLine(adam.FinalValidationLoss);
            line.LegendText = $"AdamW {adam.FinalValidationLoss:F3}";
            line.LineWidth = 2;
            line.Color = ScottPlot.Colors.Black;
        }
        var ratios = best.Where(r => r.Ratio > 0).Select(r => r.Ratio).Distinct().Order().ToArray();
        plt.Axes.Bottom.TickGenerator = new ScottPlot.TickGenerators.NumericManual(
            ratios.Select(r => Math.Log2(r)).ToArray(), ratios.Select(r => r.ToString(CultureInfo.InvariantCulture)).ToArray());
        plt.Title("TinyLm sweep: final validation loss against Ratio (best learning rate each)");
        plt.XLabel("Ratio (parameters per sketch bucket; log scale)");
        plt.YLabel("final validation loss (nats/char)");
        plt.ShowLegend(ScottPlot.Alignment.UpperLeft);
        plt.SavePng(path, 1000, 600);
    }
}
