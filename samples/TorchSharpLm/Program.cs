using System.Globalization;
using System.Text;
using Spectre.Console;
using TorchSharpLm;

// dotnet run -c Release --project samples/TorchSharpLm [-- --quick] [--steps N] [--seed S] [--out DIR]
// Trains the same TorchSharp transformer, from the same initial weights on the same batches, with libtorch's AdamW,
// this project's dense AdamW, Collins as specified and the best Count-Sketch setting of TinyLm's sweep (Ratio 32, Mean,
// β1 0); writes artifacts/torchsharplm/.
bool quick = args.Contains("--quick");
string Arg(string name, string fallback) { int i = Array.IndexOf(args, name); return i >= 0 && i + 1 < args.Length ? args[i + 1] : fallback; }

var corpus = Corpus.Load();
var config = quick ? new ModelConfig(corpus.Alphabet.Length, Context: 32, DModel: 64, Heads: 4, Layers: 2, FeedForward: 256)
                   : new ModelConfig(corpus.Alphabet.Length);
var options = quick ? new TrainOptions { Steps = 40, Batch = 8, EvalEvery = 10, EvalWindows = 32, WarmupSteps = 5 } : new TrainOptions();
options = options with
{
    Steps = int.Parse(Arg("--steps", options.Steps.ToString(CultureInfo.InvariantCulture)), CultureInfo.InvariantCulture),
    Seed = int.Parse(Arg("--seed", options.Seed.ToString(CultureInfo.InvariantCulture)), CultureInfo.InvariantCulture),
};
string outDir = Arg("--out", Path.Combine("artifacts", "torchsharplm"));

AnsiConsole.MarkupLine($"[bold]TorchSharpLm[/]: {config.Layers}-layer causal transformer, d_model {config.DModel}, context {config.Context}, " +
                       $"{options.Steps} steps of {options.Batch}×{config.Context} characters, {TorchSharp.torch.get_num_threads()} libtorch threads");
var results = new List<RunResult>();
var wall = System.Diagnostics.Stopwatch.StartNew();
AnsiConsole.Progress()
    .Columns(new TaskDescriptionColumn(), new ProgressBarColumn(), new PercentageColumn(), new ElapsedTimeColumn())
    .Start(ctx =>
    {
        var tasks = Trainer.Choices.Select(c => ctx.AddTask(Markup.Escape(c.Name), autoStart: false, maxValue: options.Steps)).ToArray();
        for (int i = 0; i < tasks.Length; i++)
        {
            tasks[i].StartTask();
            var task = tasks[i];
            results.Add(Trainer.Train(Trainer.Choices[i], config, corpus, options, step => task.Value = step));
            task.Description = Markup.Escape($"{Trainer.Choices[i].Name}: {results[^1].FinalValidationLoss:F4}");
            task.StopTask();
        }
    });
wall.Stop();

var table = new Table().AddColumns("optimizer", "final val loss", "vs torch AdamW", "state bytes", "B/param", "optimizer step (ms)", "whole step (ms)", "lr");
var baseline = results[0].FinalValidationLoss;
foreach (var r in results)
    table.AddRow(Markup.Escape(r.Name), r.FinalValidationLoss.ToString("F4", CultureInfo.InvariantCulture),
        (100 * (r.FinalValidationLoss - baseline) / baseline).ToString("+0.00;-0.00;0.00", CultureInfo.InvariantCulture) + " %",
        r.StateBytes.ToString("N0", CultureInfo.InvariantCulture), r.BytesPerParameter.ToString("F3", CultureInfo.InvariantCulture),
        r.OptimizerMs.ToString("F2", CultureInfo.InvariantCulture), r.StepMs.ToString("F1", CultureInfo.InvariantCulture),
        r.LearningRate.ToString("G3", CultureInfo.InvariantCulture));
AnsiConsole.Write(table);

Directory.CreateDirectory(outDir);
var md = new StringBuilder();
md.AppendLine("# TorchSharpLm results").AppendLine();
md.AppendLine(CultureInfo.InvariantCulture, $"Model: {config.Layers}-layer pre-LayerNorm causal transformer (TorchSharp layers and autograd), vocabulary {config.Vocab}, context {config.Context}, " +
              $"d_model {config.DModel}, {config.Heads} heads, feed-forward {config.FeedForward}, {results[0].ParameterCount:N0} parameters.");
md.AppendLine(CultureInfo.InvariantCulture, $"Training: {options.Steps} steps of {options.Batch}×{config.Context} characters, warm-up {options.WarmupSteps} then cosine to 0.1·lr, seed {options.Seed}, " +
              $"weight decay 0; every optimizer from the same initial weights on the same batches. {TorchSharp.torch.get_num_threads()} libtorch threads, " +
              $"{Environment.ProcessorCount} cores, wall time {wall.Elapsed.TotalSeconds:F0} s.").AppendLine();
md.AppendLine("| optimizer | final val loss | vs torch AdamW | state bytes | bytes / param | optimizer step (ms) | whole step (ms) | lr | what |");
md.AppendLine("|---|---:|---:|---:|---:|---:|---:|---:|---|");
foreach (var r in results)
    md.AppendLine(string.Create(CultureInfo.InvariantCulture,
        $"| {r.Name} | {r.FinalValidationLoss:F4} | {100 * (r.FinalValidationLoss - baseline) / baseline:+0.00;-0.00;0.00} % | {r.StateBytes:N0} | {r.BytesPerParameter:F3} | {r.OptimizerMs:F2} | {r.StepMs:F1} | {r.LearningRate:G3} | {r.Description} |"));
File.WriteAllText(Path.Combine(outDir, "results.md"), md.ToString());

var csv = new StringBuilder("optimizer,final_val_loss,state_bytes,bytes_per_parameter,optimizer_ms,step_ms,lr\n");
foreach (var r in results)
    csv.AppendLine(string.Create(CultureInfo.InvariantCulture, $"\"{r.Name}\",{r.FinalValidationLoss:F5},{r.StateBytes},{r.BytesPerParameter:F4},{r.OptimizerMs:F3},{r.StepMs:F3},{r.LearningRate:G3}"));
File.WriteAllText(Path.Combine(outDir, "results.csv"), csv.ToString());

var curves = new StringBuilder("optimizer,step,val_loss\n");
foreach (var r in results)
    foreach (var (step, loss) in r.ValidationCurve)
        curves.AppendLine(string.Create(CultureInfo.InvariantCulture, $"\"{r.Name}\",{step},{loss:F5}"));
File.WriteAllText(Path.Combine(outDir, "curves.csv"), curves.ToString());

var plt = new ScottPlot.Plot();
foreach (var r in results)
{
    var pts = r.ValidationCurve.ToArray();
    var sc = plt.Add.Scatter(pts.Select(p => (double)p.Step).ToArray(), pts.Select(p => p.Loss).ToArray());
    sc.LegendText = $"{r.Name} ({r.BytesPerParameter:F2} B/param): {r.FinalValidationLoss:F3}";
    sc.LineWidth = 2;
    sc.MarkerSize = 4;
}
plt.Title("TorchSharpLm: validation loss");
plt.XLabel("training step");
plt.YLabel("validation loss (nats/char)");
plt.ShowLegend(ScottPlot.Alignment.UpperRight);
plt.SavePng(Path.Combine(outDir, "loss.png"), 1000, 600);
AnsiConsole.MarkupLine($"Wrote [bold]{Markup.Escape(outDir)}[/]: results.md, results.csv, curves.csv, loss.png ({wall.Elapsed.TotalSeconds:F0} s).");
