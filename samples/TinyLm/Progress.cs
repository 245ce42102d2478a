using System.Diagnostics;
using Spectre.Console;
using Spectre.Console.Rendering;

namespace TinyLm;

/// <summary>One training step as the trainer reports it: <see cref="Step"/> of <see cref="Steps"/> steps done.</summary>
/// <param name="Name">The optimizer's configuration name.</param>
/// <param name="Step">Steps done, 1 after the first.</param>
/// <param name="Steps">Steps of the run.</param>
/// <param name="TrainLoss">Exponential moving average (0.95) of the training loss.</param>
/// <param name="LearningRate">The rate of the step just taken.</param>
/// <param name="TokensPerSecond">Tokens per second of forward, backward and optimizer step (evaluations excluded).</param>
/// <param name="Eta">The remaining steps at the rate so far (evaluations excluded).</param>
public sealed record TrainingStep(string Name, int Step, int Steps, double TrainLoss, float LearningRate, double TokensPerSecond, TimeSpan Eta);

/// <summary>What <see cref="Trainer.Train"/> reports while it runs.</summary>
public interface ITrainingProgress
{
    /// <summary>The validation loss before step <paramref name="step"/> (interval evaluations).</summary>
    void Evaluated(string name, int step, int steps, double validationLoss);

    /// <summary>After every step.</summary>
    void Stepped(TrainingStep step);

    /// <summary>The final validation loss, after the last step.</summary>
    void Finished(string name, double finalValidationLoss, TimeSpan elapsed);
}

/// <summary>
/// The plain progress lines (for redirected output, logs and tests): every evaluation, a training line every
/// <c>interval</c> (5 s unless given) and after the last step, and the final loss.
/// </summary>
public sealed class PlainTrainingProgress(Action<string> writeLine, TimeSpan? interval = null) : ITrainingProgress
{
    private readonly Stopwatch _sinceLine = Stopwatch.StartNew();
    private readonly TimeSpan _interval = interval ?? TimeSpan.FromSeconds(5);

    public void Evaluated(string name, int step, int steps, double validationLoss) =>
        writeLine($"  [{name}] step {step,5}/{steps}  val {validationLoss:F4}");

    public void Stepped(TrainingStep step)
    {
        ArgumentNullException.ThrowIfNull(step);
        if (_sinceLine.Elapsed < _interval && step.Step != step.Steps) return;
        _sinceLine.Restart();
        writeLine($"  [{step.Name}] step {step.Step,5}/{step.Steps}  train {step.TrainLoss:F4}  lr {step.LearningRate:G3}  " +
                  $"{step.TokensPerSecond / 1000:F1}k tok/s  ETA {step.Eta:m\\:ss}");
    }

    public void Finished(string name, double finalValidationLoss, TimeSpan elapsed) =>
        writeLine($"  [{name}] done: final val {finalValidationLoss:F4} in {elapsed.TotalSeconds:F1} s");
}

/// <summary>Where a run writes: lines of text, and the progress of each training run.</summary>
internal interface IRunDisplay
{
    void Line(string text);

    /// <summary>The progress of one training run of <paramref name="steps"/> steps, starting now.</summary>
    ITrainingProgress Track(string name, int steps);
}

internal static class RunDisplay
{
    /// <summary>Whether standard output is a terminal that can redraw a live display (not redirected, ANSI, interactive).</summary>
    public static bool ConsoleIsInteractive =>
        !Console.IsOutputRedirected && AnsiConsole.Profile.Capabilities is { Interactive: true, Ansi: true };

    /// <summary>
    /// Runs <paramref name="body"/> with a Spectre.Console progress display on the console when <paramref name="live"/>,
    /// else with the plain lines written to <paramref name="output"/>.
    /// </summary>
    public static int Run(bool live, TextWriter output, Func<IRunDisplay, int> body) => live
        ? AnsiConsole.Progress()
            .AutoClear(false)
            .HideCompleted(false)
            .Columns(new TaskDescriptionColumn(), new ProgressBarColumn { Width = 20 }, new TrainingStatsColumn())
            .Start(context => body(new LiveDisplay(context)))
        : body(new PlainDisplay(output));

    private sealed class PlainDisplay(TextWriter output) : IRunDisplay
    {
        public void Line(string text) => output.WriteLine(text);
        public ITrainingProgress Track(string name, int steps) => new PlainTrainingProgress(output.WriteLine);
    }

    private sealed class LiveDisplay(ProgressContext context) : IRunDisplay
    {
        // Plain text (AnsiConsole.WriteLine does not parse markup): printed above the live rows.
        public void Line(string text) => AnsiConsole.WriteLine(text);

        public ITrainingProgress Track(string name, int steps) =>
            new LiveProgress(context.AddTask(Markup.Escape(name), autoStart: true, maxValue: Math.Max(1, steps)));
    }

    /// <summary>What the stats column shows of a run: its last step and its last validation loss.</summary>
    private sealed record Row(TrainingStep? Last, double? Validation, double? Final);

    /// <summary>One progress row per run; evaluations and the final loss are also printed as lines, as in the plain output.</summary>
    private sealed class LiveProgress(ProgressTask task) : ITrainingProgress
    {
        private Row _row = new(null, null, null);

        public void Evaluated(string name, int step, int steps, double validationLoss)
        {
            _row = _row with { Validation = validationLoss };
            task.Tag = _row;
            AnsiConsole.WriteLine($"  [{name}] step {step,5}/{steps}  val {validationLoss:F4}");
        }

        public void Stepped(TrainingStep step)
        {
            _row = _row with { Last = step };
            task.Tag = _row;
            task.Value = step.Step;
        }

        public void Finished(string name, double finalValidationLoss, TimeSpan elapsed)
        {
            _row = _row with { Final = finalValidationLoss };
            task.Tag = _row;
            task.Value = task.MaxValue;
            task.StopTask();
            AnsiConsole.WriteLine($"  [{name}] done: final val {finalValidationLoss:F4} in {elapsed.TotalSeconds:F1} s");
        }
    }

    /// <summary>Step, smoothed training loss, last validation loss, tokens per second and ETA of a row.</summary>
    private sealed class TrainingStatsColumn : ProgressColumn
    {
        public override IRenderable Render(RenderOptions options, ProgressTask task, TimeSpan deltaTime)
        {
            if (task.Tag is not Row row || row.Last is not { } s) return new Text("starting", new Style(Color.Grey));
            string validation = row.Final is { } f ? $"  final val {f:F4}" : row.Validation is { } v ? $"  val {v:F4}" : "";
            string eta = row.Final is null ? $"  ETA {s.Eta:m\\:ss}" : "";
            return new Text($"step {s.Step}/{s.Steps}  loss {s.TrainLoss:F4}{validation}  {s.TokensPerSecond / 1000:F1}k tok/s{eta}");
        }
    }
}
