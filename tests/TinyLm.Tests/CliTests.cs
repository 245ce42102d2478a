using System.Globalization;
using System.Text;

namespace TinyLm.Tests;

/// <summary>The command line: defaults, every option, the errors (exit code 2, naming the option) and --help.</summary>
public class CliParserTests
{
    private static CliOptions Parsed(params string[] args)
    {
        var cli = new Cli();
        var result = cli.Parse(args);
        Assert.True(result.Errors.Count == 0, string.Join(" | ", result.Errors.Select(e => e.Message)));
        return cli.Bind(result);
    }

    [Fact]
    public void No_arguments_give_the_defaults_of_the_main_command()
    {
        var o = Parsed();
        Assert.Null(o.Steps);   // 1500, or 40 with --quick (App.Run)
        Assert.Equal(1UL, o.Seed);
        Assert.Equal(Path.Combine("artifacts", "tinylm"), o.Out);
        Assert.False(o.Quick);
        Assert.Equal(16, o.Batch);
        Assert.Null(o.LearningRate);
        Assert.Equal(0, o.Threads);
        Assert.Null(o.Optimizers);
        Assert.Null(o.Data);
        Assert.False(o.Sweep);
        Assert.Equal(0, o.SweepMax);
        Assert.False(o.Resume);
        Assert.Null(o.LearningRates);
        Assert.Null(o.Configurations);
        Assert.False(o.SweepReport);
        Assert.Equal(TinyLmModel.Config, TinyLmModel.Config with { DModel = o.DModel, Layers = o.Layers, Heads = o.Heads, FeedForward = o.FeedForward });
        Assert.Equal(["AdamW", "C32", "FactoredClipAll", "FactoredQ4"], App.DefaultOptimizers);
    }

    [Fact]
    public void Every_option_of_the_default_run_is_parsed()
    {
        var o = Parsed("--steps", "7", "--seed", "18446744073709551615", "--out", "some dir", "--quick", "--batch", "3", "--lr", "2.5e-3",
                       "--threads", "2", "--optimizers", "AdamW, C32Mean,,C4", "--data", "corpus.txt");
        Assert.Equal(7, o.Steps);
        Assert.Equal(ulong.MaxValue, o.Seed);
        Assert.Equal("some dir", o.Out);
        Assert.True(o.Quick);
        Assert.Equal(3, o.Batch);
        Assert.Equal(2.5e-3f, o.LearningRate);
        Assert.Equal(2, o.Threads);
        Assert.Equal(["AdamW", "C32Mean", "C4"], o.Optimizers);
        Assert.Equal("corpus.txt", o.Data);
        Assert.False(o.Sweep);
    }

    [Fact]
    public void Every_option_of_the_sweep_is_parsed()
    {
        var o = Parsed("--sweep", "--sweep-max", "5", "--resume", "--lrs", "1e-3,0.03", "--configs", "AdamW; R32 Rotation Mean b1=0.0", "--steps", "500");
        Assert.True(o.Sweep);
        Assert.Equal(5, o.SweepMax);
        Assert.True(o.Resume);
        Assert.Equal([1e-3f, 0.03f], o.LearningRates);
        Assert.Equal(["AdamW", "R32 Rotation Mean b1=0.0"], o.Configurations);
        Assert.Equal(500, o.Steps);
        Assert.True(Parsed("--sweep-report", "--out", "docs/tinylm/sweep").SweepReport);
    }

    [Fact]
    public void Every_model_size_option_is_parsed_in_either_mode()
    {
        var o = Parsed("--d-model", "128", "--layers", "4", "--heads", "8", "--feed-forward", "512");
        Assert.Equal((128, 4, 8, 512), (o.DModel, o.Layers, o.Heads, o.FeedForward));
        // One option alone keeps the declared values of the others.
        var layers = Parsed("--layers", "1");
        Assert.Equal((TinyLmModel.DModel, 1, TinyLmModel.Heads, TinyLmModel.FeedForward), (layers.DModel, layers.Layers, layers.Heads, layers.FeedForward));
        // The bounds themselves are accepted, and the options apply to the sweep and its report too.
        var largest = Parsed("--sweep", "--d-model", "1024", "--layers", "16", "--heads", "64", "--feed-forward", "8192");
        Assert.Equal((Cli.MaxDModel, Cli.MaxLayers, Cli.MaxHeads, Cli.MaxFeedForward), (largest.DModel, largest.Layers, largest.Heads, largest.FeedForward));
        Assert.True(largest.Sweep);
        var smallest = Parsed("--sweep-report", "--d-model", "1", "--heads", "1", "--layers", "1", "--feed-forward", "1");
        Assert.Equal((1, 1, 1, 1), (smallest.DModel, smallest.Layers, smallest.Heads, smallest.FeedForward));
    }

    [Fact]
    public void A_list_option_given_twice_keeps_both()
    {
        Assert.Equal(["AdamW", "C32", "C64"], Parsed("--optimizers", "AdamW", "--optimizers", "C32,C64").Optimizers);
    }

    [Theory]
    [InlineData("--steps", "--steps -3")]
    [InlineData("--steps", "--steps 0")]
    [InlineData("--steps", "--steps many")]
    [InlineData("--steps", "--steps")]
    [InlineData("--seed", "--seed -1")]
    [InlineData("--batch", "--batch 0")]
    [InlineData("--batch", "--batch 1.5")]
    [InlineData("--lr", "--lr 0")]
    [InlineData("--lr", "--lr -1e-3")]
    [InlineData("--lr", "--lr fast")]
    [InlineData("--threads", "--threads -2")]
    [InlineData("--optimizers", "--optimizers AdamW,NoSuchVariant")]
    [InlineData("--optimizers", "--optimizers ,")]
    [InlineData("--data", "--data")]
    [InlineData("--sweep-max", "--sweep --sweep-max -1")]
    [InlineData("--lrs", "--sweep --lrs 1e-3,nan")]
    [InlineData("--configs", "--sweep --configs AdamW;R33_Rotation")]
    [InlineData("--resume", "--resume")]
    [InlineData("--sweep-max", "--sweep-max 3")]
    [InlineData("--lrs", "--lrs 1e-3")]
    [InlineData("--configs", "--configs AdamW")]
    [InlineData("--lr", "--sweep --lr 1e-3")]
    [InlineData("--optimizers", "--sweep --optimizers AdamW")]
    [InlineData("--sweep-report", "--sweep --sweep-report")]
    [InlineData("--no-such-option", "--no-such-option")]
    [InlineData("--d-model", "--d-model 0")]
    [InlineData("--d-model", "--d-model -64")]
    [InlineData("--d-model", "--d-model 1025")]
    [InlineData("--d-model", "--d-model wide")]
    [InlineData("--d-model", "--d-model")]
    [InlineData("--layers", "--layers 0")]
    [InlineData("--layers", "--layers 17")]
    [InlineData("--layers", "--layers 2.5")]
    [InlineData("--heads", "--heads 0")]
    [InlineData("--heads", "--heads 65")]
    [InlineData("--heads", "--heads 3")]                        // 64 (the declared d_model) is not a multiple of 3
    [InlineData("--d-model", "--d-model 100 --heads 8")]
    [InlineData("--heads", "--sweep --d-model 128 --heads 6")]
    [InlineData("--feed-forward", "--feed-forward 0")]
    [InlineData("--feed-forward", "--feed-forward 8193")]
    [InlineData("--feed-forward", "--sweep-report --feed-forward x")]
    public void A_bad_command_line_names_the_option_and_exits_with_2(string option, string commandLine)
    {
        string[] args = commandLine.Split(' ');
        // Refused by the parser itself, so Run below cannot start a training run.
        Assert.NotEmpty(new Cli().Parse(args).Errors);
        var (output, error) = (new StringWriter(), new StringWriter());
        Assert.Equal(2, Cli.Run(args, output, error));
        string message = error.ToString();
        Assert.Contains(option, message, StringComparison.Ordinal);
        Assert.StartsWith("error: ", message, StringComparison.Ordinal);
        Assert.DoesNotContain("   at ", message, StringComparison.Ordinal);   // no stack trace
        Assert.Equal("", output.ToString());
    }

    [Fact]
    public void Bind_refuses_a_parse_with_errors()
    {
        var cli = new Cli();
        Assert.Throws<ArgumentException>(() => cli.Bind(cli.Parse(["--steps", "-3"])));
    }

    [Theory]
    [InlineData("--help")]
    [InlineData("-h")]
    public void Help_lists_every_option_and_exits_with_0(string flag)
    {
        var (output, error) = (new StringWriter(), new StringWriter());
        Assert.Equal(0, Cli.Run([flag], output, error));
        string help = output.ToString();
        var options = new Cli().Command.Options.Select(o => o.Name).ToArray();
        Assert.Contains("--data", options);
        Assert.Contains("--sweep-report", options);
        foreach (var name in options) Assert.Contains(name, help, StringComparison.Ordinal);
        foreach (var name in OptimizerCatalog.Names) Assert.Contains(name, help, StringComparison.Ordinal);
        Assert.Equal("", error.ToString());
    }
}

/// <summary><c>--data FILE</c>: another corpus, its vocabulary, the fallback to the run-time optimizers, and the file errors.</summary>
[Collection(TinyLmSerial.Name)]
public sealed class CliDataTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("tinylm-cli").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    /// <summary>
    /// <paramref name="length"/> characters: the alphabet on the first line (so that every letter occurs), then lines of eight
    /// words of 40 made of its letters; the vocabulary is the alphabet, space and newline.
    /// </summary>
    private string WriteText(string name, string alphabet, int length)
    {
        var rng = new Random(7);
        var words = Enumerable.Range(0, 40).Select(_ => new string(Enumerable.Range(0, rng.Next(2, 8)).Select(_ => alphabet[rng.Next(alphabet.Length)]).ToArray())).ToArray();
        var text = new StringBuilder(alphabet).Append('\n');
        while (text.Length < length)
            text.AppendJoin(' ', Enumerable.Range(0, 8).Select(_ => words[rng.Next(words.Length)])).Append('\n');
        string path = Path.Combine(_dir, name);
        File.WriteAllText(path, text.ToString(0, length), Encoding.UTF8);
        return path;
    }

    internal static (int Code, string Output, string Error) Run(params string[] args)
    {
        var (output, error) = (new StringWriter(), new StringWriter());
        int code = Cli.Run(args, output, error);
        return (code, output.ToString(), error.ToString());
    }

    internal static string[] CsvFields(string line) => line.Split(',').Select(f => f.Trim('"')).ToArray();

    [Fact]
    public void Another_alphabet_trains_with_the_run_time_optimizers_and_finite_losses()
    {
        string file = WriteText("greek.txt", "αβγδεζηθικλμ", 20_000);
        int vocab = File.ReadAllText(file).Distinct().Count();
        Assert.Equal(14, vocab);   // twelve letters, space and newline: not the 65 TinyLmModel declares
        string outDir = Path.Combine(_dir, "out");

        var (code, output, error) = Run("--data", file, "--quick", "--optimizers", "AdamW,C32MeanNoMomentum", "--out", outDir);

        Assert.True(code == 0, error);
        Assert.Contains($"vocab {vocab},", output, StringComparison.Ordinal);
        Assert.Contains("greek.txt: ", output, StringComparison.Ordinal);
        // One line says which optimizers fall back and why; AdamW (not generated) is not among them.
        var fallback = Assert.Single(output.Split('\n'), l => l.StartsWith("Run-time optimizers", StringComparison.Ordinal));
        Assert.StartsWith("Run-time optimizers for C32MeanNoMomentum:", fallback, StringComparison.Ordinal);
        Assert.Contains($"{vocab} distinct characters", fallback, StringComparison.Ordinal);
        Assert.Contains("== C32MeanNoMomentum: runtime Collins.CountSketchAdam", output, StringComparison.Ordinal);
        Assert.Contains("  [C32MeanNoMomentum] done: final val ", output, StringComparison.Ordinal);

        var rows = File.ReadAllLines(Path.Combine(outDir, "results.csv")).Skip(1).Select(CsvFields).ToDictionary(f => f[0]);
        Assert.Equal(["AdamW", "C32MeanNoMomentum"], rows.Keys.Order());
        Assert.Equal("runtime Collins.CountSketchAdam", rows["C32MeanNoMomentum"][8]);
        Assert.Equal("dense AdamW (Collins.Kernels.DenseAdamWCpu)", rows["AdamW"][8]);
        foreach (var (name, f) in rows)
        {
            double loss = double.Parse(f[3], CultureInfo.InvariantCulture);
            // Finite, and below ln(vocab), the loss of a uniform guess: the model learned from this text.
            Assert.True(double.IsFinite(loss) && loss < Math.Log(vocab), $"{name}: final validation loss {loss}, ln {vocab} = {Math.Log(vocab):F3}");
        }
        var curve = File.ReadAllLines(Path.Combine(outDir, "curves.csv")).Skip(1).Select(CsvFields).ToArray();
        Assert.Equal(2 * 3, curve.Length);   // steps 0, 20, 40 of each
        Assert.All(curve, f => Assert.True(double.IsFinite(double.Parse(f[2], CultureInfo.InvariantCulture)), string.Join(",", f)));
        Assert.Contains("Data: greek.txt, ", File.ReadAllText(Path.Combine(outDir, "results.md")), StringComparison.Ordinal);
    }

    [Fact]
    public void A_file_with_the_declared_vocabulary_size_keeps_the_generated_optimizers()
    {
        // 65 distinct characters, none of them tiny Shakespeare's order: the shapes are the declared ones, so nothing falls back.
        string alphabet = new(Enumerable.Range(0, 63).Select(i => (char)('Ѐ' + i)).ToArray());
        string file = WriteText("cyrillic.txt", alphabet, 20_000);
        Assert.Equal(65, File.ReadAllText(file).Distinct().Count());

        var (code, output, error) = Run("--data", file, "--steps", "3", "--optimizers", "C32", "--out", Path.Combine(_dir, "out65"));

        Assert.True(code == 0, error);
        Assert.DoesNotContain("Run-time optimizers", output, StringComparison.Ordinal);
        Assert.Contains("== C32: generated TinyLmModel.C32", output, StringComparison.Ordinal);
    }

    [Fact]
    public void A_missing_empty_short_or_folder_data_file_is_refused_by_name_with_2()
    {
        int minimum = Corpus.MinimumLength(TinyLmModel.Config.Context);
        string empty = Path.Combine(_dir, "empty.txt");
        File.WriteAllText(empty, "");
        string oneLetter = Path.Combine(_dir, "one-letter.txt");
        File.WriteAllText(oneLetter, new string('a', minimum + 100));
        string[] refused = [Path.Combine(_dir, "missing.txt"), empty, WriteText("short.txt", "abc", minimum - 1), oneLetter, _dir];
        foreach (var file in refused)
        {
            var (code, output, error) = Run("--data", file, "--steps", "1", "--optimizers", "AdamW", "--out", Path.Combine(_dir, "never"));
            Assert.True(code == 2, $"{file}: exit code {code}; {error}");
            Assert.StartsWith("error: --data: " + file + " ", error, StringComparison.Ordinal);
            Assert.DoesNotContain("   at ", error, StringComparison.Ordinal);
            Assert.DoesNotContain("==", output, StringComparison.Ordinal);
        }
        Assert.False(Directory.Exists(Path.Combine(_dir, "never")));

        // The shortest file that loads: one window of context + 1 characters in the validation split, more in training.
        var corpus = Corpus.FromFile(WriteText("shortest.txt", "abc", minimum), TinyLmModel.Config.Context);
        Assert.Equal(TinyLmModel.Config.Context + 1, corpus.Validation.Length);
        Assert.True(corpus.Train.Length >= TinyLmModel.Config.Context + 2);
        Assert.Equal("shortest.txt", corpus.Source);
    }
}

/// <summary>The plain progress lines that redirected output (logs, CI) shows, in the format they always had.</summary>
[Collection(TinyLmSerial.Name)]
public class PlainProgressTests
{
    [Fact]
    public void Plain_progress_writes_the_evaluation_training_and_final_lines()
    {
        var lines = new List<string>();
        var o = new TrainOptions { Steps = 4, Batch = 2, WarmupSteps = 1, EvalEvery = 2, EvalWindows = 4, FinalEvalWindows = 8, TrainTokens = 20_000, Seed = 5 };
        // An interval no run reaches: the training line comes only after the last step.
        var r = Trainer.Train(TinyLmModel.Config, Corpus.Load(), OptimizerCatalog.Create("AdamW", TinyLmModel.Config), o,
                              new PlainTrainingProgress(lines.Add, TimeSpan.MaxValue));
        Assert.Equal(4, lines.Count);
        Assert.Matches(@"^  \[AdamW\] step     0/4  val \d+\.\d{4}$", lines[0]);
        Assert.Matches(@"^  \[AdamW\] step     2/4  val \d+\.\d{4}$", lines[1]);
        Assert.Matches(@"^  \[AdamW\] step     4/4  train \d+\.\d{4}  lr [0-9.e-]+  \d+\.\dk tok/s  ETA \d+:\d\d$", lines[2]);
        Assert.Matches(@"^  \[AdamW\] done: final val \d+\.\d{4} in \d+\.\d s$", lines[3]);
        Assert.StartsWith($"  [AdamW] done: final val {r.FinalValidationLoss.ToString("F4", CultureInfo.CurrentCulture)} in ", lines[3], StringComparison.Ordinal);

        // A zero interval writes a training line after every step.
        lines.Clear();
        Trainer.Train(TinyLmModel.Config, Corpus.Load(), OptimizerCatalog.Create("AdamW", TinyLmModel.Config), o, new PlainTrainingProgress(lines.Add, TimeSpan.Zero));
        Assert.Equal(4, lines.Count(l => l.Contains(" train ", StringComparison.Ordinal)));
    }
}

/// <summary>The model-size options: other shapes than the declared ones, the fallback to the run-time optimizers, the sweep.</summary>
[Collection(TinyLmSerial.Name)]
public sealed class CliModelSizeTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("tinylm-size").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private static (int Code, string Output, string Error) Run(params string[] args) => CliDataTests.Run(args);

    private static string[] CsvFields(string line) => CliDataTests.CsvFields(line);

    [Fact]
    public void A_smaller_model_trains_with_the_run_time_optimizers_and_finite_losses()
    {
        var config = TinyLmModel.Config with { DModel = 32, Layers = 1 };
        string outDir = Path.Combine(_dir, "small");

        var (code, output, error) = Run("--quick", "--d-model", "32", "--layers", "1", "--optimizers", "AdamW,C32,C32MeanNoMomentum", "--out", outDir);

        Assert.True(code == 0, error);
        Assert.Contains($"TinyLm: 1-layer causal transformer, vocab 65, context 64, d_model 32, 4 heads, feed-forward 256; {config.ParameterCount:N0} parameters.",
                        output, StringComparison.Ordinal);
        // One line names the Collins variants that fall back and says why: the model size, not the vocabulary (tiny Shakespeare's 65).
        var fallback = Assert.Single(output.Split('\n'), l => l.StartsWith("Run-time optimizers", StringComparison.Ordinal));
        Assert.StartsWith("Run-time optimizers for C32, C32MeanNoMomentum: the shapes differ from the ones TinyLmModel declares " +
                          "(model size: d_model 32 instead of 64, 1 layer instead of 2)", fallback, StringComparison.Ordinal);
        Assert.DoesNotContain("vocabulary", fallback, StringComparison.Ordinal);

        var rows = File.ReadAllLines(Path.Combine(outDir, "results.csv")).Skip(1).Select(CsvFields).ToDictionary(f => f[0]);
        Assert.Equal(["AdamW", "C32", "C32MeanNoMomentum"], rows.Keys.Order());
        Assert.Equal("runtime Collins.CountSketchAdam", rows["C32"][8]);
        Assert.Equal("runtime Collins.CountSketchAdam", rows["C32MeanNoMomentum"][8]);
        // AdamW keeps 8 bytes for every parameter of this model, so the state counts the smaller model's tensors.
        Assert.Equal(8 * config.ParameterCount, long.Parse(rows["AdamW"][1], CultureInfo.InvariantCulture));
        foreach (var (name, f) in rows)
        {
            double loss = double.Parse(f[3], CultureInfo.InvariantCulture);
            // Finite, and below ln 65, the loss of a uniform guess: the model learned.
            Assert.True(double.IsFinite(loss) && loss < Math.Log(65), $"{name}: final validation loss {loss}");
        }
        var curve = File.ReadAllLines(Path.Combine(outDir, "curves.csv")).Skip(1).Select(CsvFields).ToArray();
        Assert.Equal(3 * 3, curve.Length);   // steps 0, 20, 40 of each
        Assert.All(curve, f => Assert.True(double.IsFinite(double.Parse(f[2], CultureInfo.InvariantCulture)), string.Join(",", f)));
        Assert.Contains($"d_model 32, 4 heads, feed-forward 256 (GELU), {config.ParameterCount:N0} parameters.",
                        File.ReadAllText(Path.Combine(outDir, "results.md")), StringComparison.Ordinal);
    }

    [Fact]
    public void The_sweep_runs_on_another_model_size()
    {
        var config = TinyLmModel.Config with { DModel = 16, Layers = 1, Heads = 2, FeedForward = 32 };
        string outDir = Path.Combine(_dir, "sweep");

        var (code, output, error) = Run("--sweep", "--steps", "3", "--d-model", "16", "--layers", "1", "--heads", "2", "--feed-forward", "32",
                                        "--configs", "AdamW;R32 Rotation Mean b1=0.0;Adafactor", "--lrs", "1e-3", "--out", outDir);

        Assert.True(code == 0, error);
        Assert.Contains($"d_model 16, 2 heads, feed-forward 32; {config.ParameterCount:N0} parameters.", output, StringComparison.Ordinal);
        var runs = File.ReadAllLines(Path.Combine(outDir, "sweep_all.csv")).Skip(1).Select(CsvFields).ToArray();
        Assert.Equal(["AdamW", "R32 Rotation Mean b1=0.0", "Adafactor"], runs.Select(f => f[0]));
        Assert.All(runs, f => Assert.Equal(config.ParameterCount, long.Parse(f[9], CultureInfo.InvariantCulture)));
        Assert.All(runs, f => Assert.True(double.IsFinite(double.Parse(f[6], CultureInfo.InvariantCulture)), string.Join(",", f)));
        Assert.Equal(8 * config.ParameterCount, long.Parse(runs[0][8], CultureInfo.InvariantCulture));
        Assert.True(File.Exists(Path.Combine(outDir, "results.md")));
    }

    [Fact]
    public void The_shape_differences_name_the_vocabulary_and_the_model_size()
    {
        var declared = TinyLmModel.Config;
        Assert.Equal("", App.ShapeDifferences(declared));
        Assert.Equal("vocabulary: the corpus has 14 distinct characters instead of 65", App.ShapeDifferences(declared with { Vocab = 14 }));
        Assert.Equal("model size: d_model 128 instead of 64, 4 layers instead of 2, 8 heads instead of 4, feed-forward 512 instead of 256",
                     App.ShapeDifferences(declared with { DModel = 128, Layers = 4, Heads = 8, FeedForward = 512 }));
        Assert.Equal("vocabulary: the corpus has 14 distinct characters instead of 65; model size: 1 head instead of 4",
                     App.ShapeDifferences(declared with { Vocab = 14, Heads = 1 }));
        // Every difference falls back, and only a difference does.
        Assert.False(OptimizerCatalog.FallsBackToRuntime("C32", declared));
        Assert.True(OptimizerCatalog.FallsBackToRuntime("C32", declared with { FeedForward = 512 }));
        Assert.False(OptimizerCatalog.FallsBackToRuntime("Adafactor", declared with { FeedForward = 512 }));
    }
}
