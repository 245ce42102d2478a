using System.Globalization;

namespace TinyLm.Tests;

[Collection(TinyLmSerial.Name)]
public class SweepTests
{
    private static readonly Lazy<Corpus> Data = new(() => Corpus.Load());

    [Fact]
    public void Sweep_writes_every_run_resumes_without_rerunning_and_reports_each_configuration_at_its_best_rate()
    {
        string dir = Directory.CreateTempSubdirectory("tinylm-sweep").FullName;
        try
        {
            var o = new TrainOptions { Steps = 4, Batch = 2, WarmupSteps = 1, EvalEvery = 2, EvalWindows = 4, FinalEvalWindows = 8, TrainTokens = 20_000, Seed = 5 };
            float[] grid = [1e-3f, 1e-2f];
            // The first three configurations: AdamW, then Ratio 1 with β1 0.9 and 0.
            Assert.Equal(0, Sweep.Run(TinyLmModel.Config, Data.Value, o, dir, maxConfigurations: 3, learningRates: grid));

            var data = SweepData.Load(dir);
            Assert.Equal(6, data.Runs.Count);
            Assert.Equal(6, data.Curves.Count);
            Assert.All(data.Curves.Values, c => Assert.Equal([0, 2, 4], c.Select(p => p.Step)));
            // Ratio 1 with β1 0.9 keeps exact Adam state: it must track AdamW at every rate.
            foreach (float lr in grid)
            {
                var adam = data.Runs.Single(r => r.Name == "AdamW" && r.LearningRate == lr);
                var r1 = data.Runs.Single(r => r.Name == "R1 b1=0.9" && r.LearningRate == lr);
                Assert.Equal(adam.StateBytes, r1.StateBytes);
                Assert.True(Math.Abs(adam.FinalValidationLoss - r1.FinalValidationLoss) < 1e-3 * adam.FinalValidationLoss);
            }

            // --resume runs only what is missing: nothing here, so the files stay as they were.
            string before = File.ReadAllText(Path.Combine(dir, "sweep_all.csv"));
            Assert.Equal(0, Sweep.Run(TinyLmModel.Config, Data.Value, o, dir, maxConfigurations: 3, resume: true, learningRates: grid));
            Assert.Equal(before, File.ReadAllText(Path.Combine(dir, "sweep_all.csv")));

            // The report picks each configuration's best rate.
            string md = File.ReadAllText(Path.Combine(dir, "results.md"));
            var rows = md.Split('\n').Select(l => l.TrimEnd('\r')).ToArray();
            foreach (var g in data.Runs.GroupBy(r => r.Name))
            {
                var best = g.MinBy(r => r.FinalValidationLoss)!;
                var worst = g.MaxBy(r => r.FinalValidationLoss)!;
                Assert.NotEqual(best.FinalValidationLoss, worst.FinalValidationLoss);   // or picking "the best" is not tested
                // The configuration's own row of the results table (under its header: configuration | state | B/param |
                // final validation loss | diff | step | optimizer step | lr | implementation), not the loss anywhere in the file
                // (the "every run" table below it prints every rate's loss).
                int header = Array.FindIndex(rows, l => l.StartsWith("| configuration | optimizer state bytes |", StringComparison.Ordinal));
                Assert.True(header >= 0, "results.md has no results table");
                var table = rows.Skip(header + 2).TakeWhile(l => l.StartsWith('|')).ToArray();
                var row = Assert.Single(table, l => l.StartsWith($"| {g.Key} | ", StringComparison.Ordinal));
                var cells = row.Split('|').Select(c => c.Trim()).ToArray();
                Assert.Equal(best.FinalValidationLoss.ToString("F4", CultureInfo.InvariantCulture), cells[4]);
                Assert.Equal(best.LearningRate.ToString("G3", CultureInfo.InvariantCulture), cells[8]);
            }
            var csv = File.ReadAllLines(Path.Combine(dir, "results.csv"));
            Assert.Equal(4, csv.Length);   // header + 3 configurations
            foreach (var f in new[] { "loss.png", "ratio.png", "curves.csv" })
                Assert.True(new FileInfo(Path.Combine(dir, f)).Length > 0, f);
        }
        finally { Directory.Delete(dir, recursive: true); }
    }
}

/// <summary>The frontier of the sweep report: the configurations no other beats on both state and loss.</summary>
public class FrontierTests
{
    private static SweepRun Run(string name, long stateBytes, double loss)
        => new(name, 0, "-", "-", 0.9, 1e-2f, loss, loss, stateBytes, 1000, 1, 1, "test", 1);

    [Fact]
    public void A_configuration_is_on_the_frontier_when_nothing_with_less_or_equal_state_has_lower_loss()
    {
        var a = Run("8 B, best", 8000, 1.90);
        var b = Run("2 B, worse than a", 2000, 1.95);
        var c = Run("2 B, dominated by b", 2000, 1.99);
        var d = Run("0.1 B, worst", 100, 2.20);
        var e = Run("4 B, dominated by b", 4000, 1.97);
        var f = Run("0.5 B", 500, 2.00);
        var frontier = SweepReport.Frontier([a, b, c, d, e, f]);
        Assert.Equal(new[] { d, f, b, a }.ToHashSet(), frontier);
    }
}
