using System.CommandLine;
using System.CommandLine.Invocation;
using System.CommandLine.Parsing;
using System.Globalization;

namespace TinyLm;

/// <summary>The options of one TinyLm run, as <see cref="Cli.Bind"/> reads them from the command line.</summary>
internal sealed record CliOptions
{
    /// <summary>Training steps; null: 1500, or 40 with <see cref="Quick"/>.</summary>
    public int? Steps { get; init; }
    public ulong Seed { get; init; }
    public required string Out { get; init; }
    public bool Quick { get; init; }
    public bool Sweep { get; init; }
    public int Batch { get; init; }
    /// <summary>One learning rate for every optimizer of the default run; null: each its best rate of the sweep.</summary>
    public float? LearningRate { get; init; }
    /// <summary>Kernel threads; 0: every core.</summary>
    public int Threads { get; init; }
    /// <summary>The default run's optimizers; null: <see cref="App.DefaultOptimizers"/>.</summary>
    public IReadOnlyList<string>? Optimizers { get; init; }
    /// <summary>Run only the first N sweep configurations; 0: all.</summary>
    public int SweepMax { get; init; }
    public bool Resume { get; init; }
    /// <summary>The sweep's learning-rate grid; null: <see cref="TinyLm.Sweep.DefaultLearningRates"/>.</summary>
    public IReadOnlyList<float>? LearningRates { get; init; }
    /// <summary>The sweep configurations to run; null: all of <see cref="TinyLm.Sweep.Configurations"/>.</summary>
    public IReadOnlyList<string>? Configurations { get; init; }
    public bool SweepReport { get; init; }
    /// <summary>A plain-text corpus to train on instead of tiny Shakespeare; null: the shipped corpus.</summary>
    public string? Data { get; init; }
    /// <summary>The model's width; the declared <see cref="TinyLmModel.DModel"/> unless given.</summary>
    public int DModel { get; init; } = TinyLmModel.DModel;
    /// <summary>Transformer layers; the declared <see cref="TinyLmModel.Layers"/> unless given.</summary>
    public int Layers { get; init; } = TinyLmModel.Layers;
    /// <summary>Attention heads (they divide <see cref="DModel"/>); the declared <see cref="TinyLmModel.Heads"/> unless given.</summary>
    public int Heads { get; init; } = TinyLmModel.Heads;
    /// <summary>Width of the feed-forward layer; the declared <see cref="TinyLmModel.FeedForward"/> unless given.</summary>
    public int FeedForward { get; init; } = TinyLmModel.FeedForward;
}

/// <summary>
/// TinyLm's command line (System.CommandLine): the options, their validation and the binding to <see cref="CliOptions"/>.
/// <see cref="Run"/> is the program: parse, then help (exit 0), a usage error naming the option (exit 2), or the run.
/// </summary>
internal sealed class Cli
{
    /// <summary>The exit code of a command line or an input file that cannot be used.</summary>
    public const int UsageError = 2;

    /// <summary>The largest model sizes the options accept (sane bounds for a CPU sample, not limits of the model code).</summary>
    public const int MaxDModel = 1024, MaxLayers = 16, MaxHeads = 64, MaxFeedForward = 8192;

    public Option<int?> Steps { get; } = new("--steps")
    {
        HelpName = "N",
        Description = "Training steps of each run [default: 1500, or 40 with --quick]",
    };

    public Option<ulong> Seed { get; } = new("--seed")
    {
        HelpName = "S",
        Description = "Seed of the initial weights and the batch order",
        DefaultValueFactory = _ => 1,
    };

    public Option<string> Out { get; } = new("--out")
    {
        HelpName = "DIR",
        Description = "Folder of results.md, results.csv, curves.csv and loss.png (and the sweep's files)",
        DefaultValueFactory = _ => Path.Combine("artifacts", "tinylm"),
    };

    public Option<bool> Quick { get; } = new("--quick")
    {
        Description = "A short run: 40 steps, evaluation every 20 steps on 32 windows, final evaluation on 64 windows",
    };

    public Option<int> Batch { get; } = new("--batch")
    {
        HelpName = "B",
        Description = "Sequences per step (each of 64 characters)",
        DefaultValueFactory = _ => 16,
    };

    public Option<float?> LearningRate { get; } = new("--lr")
    {
        HelpName = "LR",
        Description = "One peak learning rate for every optimizer of the default run [default: each optimizer's best rate of the sweep]",
    };

    public Option<int> Threads { get; } = new("--threads")
    {
        HelpName = "N",
        Description = "Threads of the CPU kernels; 0: every core",
        DefaultValueFactory = _ => 0,
    };

    public Option<IReadOnlyList<string>?> Optimizers { get; } = new("--optimizers")
    {
        HelpName = "NAMES",
        Description = $"Comma-separated optimizers of the default run [default: {string.Join(",", App.DefaultOptimizers)}]; " +
                      $"known: {string.Join(", ", OptimizerCatalog.Names)} (the AdamW baselines, one per [SketchedOptimizer] on TinyLmModel, and the memory-light anchors of Anchors.cs)",
    };

    public Option<string?> Data { get; } = new("--data")
    {
        HelpName = "FILE",
        Description = "Train on this plain-text file instead of tiny Shakespeare: vocabulary from its characters, the same 90/10 split; " +
                      "a vocabulary other than the declared 65 runs the Collins optimizers on the run-time CountSketchAdam",
    };

    public Option<int> DModel { get; } = new("--d-model")
    {
        HelpName = "N",
        Description = $"Model width d_model (a multiple of --heads, at most {MaxDModel}); " + ModelSizeNote,
        DefaultValueFactory = _ => TinyLmModel.DModel,
    };

    public Option<int> Layers { get; } = new("--layers")
    {
        HelpName = "N",
        Description = $"Transformer layers (at most {MaxLayers}); " + ModelSizeNote,
        DefaultValueFactory = _ => TinyLmModel.Layers,
    };

    public Option<int> Heads { get; } = new("--heads")
    {
        HelpName = "N",
        Description = $"Attention heads (they divide --d-model, at most {MaxHeads}); " + ModelSizeNote,
        DefaultValueFactory = _ => TinyLmModel.Heads,
    };

    public Option<int> FeedForward { get; } = new("--feed-forward")
    {
        HelpName = "N",
        Description = $"Width of the feed-forward layer (at most {MaxFeedForward}); " + ModelSizeNote,
        DefaultValueFactory = _ => TinyLmModel.FeedForward,
    };

    private const string ModelSizeNote =
        "a size other than TinyLmModel's declared one runs the Collins optimizers on the run-time CountSketchAdam";

    public Option<bool> Sweep { get; } = new("--sweep")
    {
        Description = "Run the sweep instead: the AdamW baselines, Collins at every ratio, layout, second-moment estimate and β1, the factored and quantised settings, and the anchors, each at every rate of --lrs",
    };

    public Option<int> SweepMax { get; } = new("--sweep-max")
    {
        HelpName = "N",
        Description = "With --sweep: run only the first N configurations; 0: all",
        DefaultValueFactory = _ => 0,
    };

    public Option<bool> Resume { get; } = new("--resume")
    {
        Description = "With --sweep: keep the runs already in the output folder's sweep_all.csv and run only the rest",
    };

    public Option<IReadOnlyList<float>?> LearningRates { get; } = new("--lrs")
    {
        HelpName = "RATES",
        Description = $"With --sweep: comma-separated learning-rate grid [default: {string.Join(",", TinyLm.Sweep.DefaultLearningRates.Select(r => r.ToString("G3", CultureInfo.InvariantCulture)))}]",
    };

    public Option<IReadOnlyList<string>?> Configurations { get; } = new("--configs")
    {
        HelpName = "NAMES",
        Description = "With --sweep: semicolon-separated configurations to run [default: all], e.g. \"AdamW;R32 Rotation Mean b1=0.0\"",
    };

    public Option<bool> SweepReport { get; } = new("--sweep-report")
    {
        Description = "Re-render a sweep's results.md, results.csv and plots from the CSV files in --out, without training",
    };

    /// <summary>The root command with every option (and System.CommandLine's --help and --version).</summary>
    public RootCommand Command { get; }

    public Cli()
    {
        Steps.CustomParser = r => ParseInteger(r, minimum: 1);
        Batch.CustomParser = r => ParseInteger(r, minimum: 1) ?? 0;
        Threads.CustomParser = r => ParseInteger(r, minimum: 0) ?? 0;
        SweepMax.CustomParser = r => ParseInteger(r, minimum: 0) ?? 0;
        DModel.CustomParser = r => ParseInteger(r, minimum: 1, maximum: MaxDModel) ?? 0;
        Layers.CustomParser = r => ParseInteger(r, minimum: 1, maximum: MaxLayers) ?? 0;
        Heads.CustomParser = r => ParseInteger(r, minimum: 1, maximum: MaxHeads) ?? 0;
        FeedForward.CustomParser = r => ParseInteger(r, minimum: 1, maximum: MaxFeedForward) ?? 0;
        Out.Validators.Add(r =>
        {
            if (string.IsNullOrWhiteSpace(r.GetValueOrDefault<string>())) r.AddError("--out needs a folder name.");
        });
        Data.Validators.Add(r =>
        {
            if (string.IsNullOrWhiteSpace(r.GetValueOrDefault<string?>())) r.AddError("--data needs a file name.");
        });
        LearningRate.CustomParser = r => ParseRate(r, SingleToken(r));
        LearningRates.CustomParser = r => List(r, ',').Select(token => ParseRate(r, token) ?? 0f).ToArray();
        Optimizers.CustomParser = r => List(r, ',');
        Optimizers.Validators.Add(r => Known(r, "--optimizers", "optimizer", OptimizerCatalog.Names.ToArray()));
        Configurations.CustomParser = r => List(r, ';');
        Configurations.Validators.Add(r => Known(r, "--configs", "sweep configuration", TinyLm.Sweep.Configurations().Select(c => c.Name).ToArray(),
            TinyLm.Sweep.DescribeConfigurations()));

        Command = new RootCommand(
            "TinyLm: trains a character-level transformer on tiny Shakespeare (or --data FILE) with dense AdamW and Collins " +
            "optimizers (the Count-Sketch settings as specified, and the factored second moment with no or a 4-bit first moment that " +
            "the README recommends), and writes results.md, results.csv, curves.csv and loss.png to --out; --sweep compares them " +
            "with the memory-light anchors (8-bit Adam, 4-bit AdamW, Adafactor, Adam-mini).")
        {
            Steps, Seed, Out, Quick, Batch, LearningRate, Threads, Optimizers, Data, DModel, Layers, Heads, FeedForward,
            Sweep, SweepMax, Resume, LearningRates, Configurations, SweepReport,
        };
        Command.Validators.Add(CheckModes);
        Command.Validators.Add(CheckHeads);
    }

    /// <summary>Parses <paramref name="args"/>; <see cref="ParseResult.Errors"/> holds what is wrong with them.</summary>
    public ParseResult Parse(IReadOnlyList<string> args) => Command.Parse(args);

    /// <summary>The options of a parse without errors.</summary>
    public CliOptions Bind(ParseResult result)
    {
        ArgumentNullException.ThrowIfNull(result);
        if (result.Errors.Count > 0) throw new ArgumentException("The command line has errors: " + result.Errors[0].Message, nameof(result));
        return new CliOptions
        {
            Steps = result.GetValue(Steps),
            Seed = result.GetValue(Seed),
            Out = result.GetRequiredValue(Out),
            Quick = result.GetValue(Quick),
            Batch = result.GetValue(Batch),
            LearningRate = result.GetValue(LearningRate),
            Threads = result.GetValue(Threads),
            Optimizers = Given(result, Optimizers),
            Data = result.GetValue(Data),
            DModel = result.GetValue(DModel),
            Layers = result.GetValue(Layers),
            Heads = result.GetValue(Heads),
            FeedForward = result.GetValue(FeedForward),
            Sweep = result.GetValue(Sweep),
            SweepMax = result.GetValue(SweepMax),
            Resume = result.GetValue(Resume),
            LearningRates = Given(result, LearningRates),
            Configurations = Given(result, Configurations),
            SweepReport = result.GetValue(SweepReport),
        };
    }

    /// <summary>
    /// The program: <c>--help</c> (and <c>--version</c>) write to <paramref name="output"/> and return 0; a command line
    /// with errors writes them to <paramref name="error"/>, each naming its option, and returns <see cref="UsageError"/>;
    /// anything else runs (<see cref="App.Run"/>), with the live progress display only when writing to an interactive console.
    /// </summary>
    public static int Run(IReadOnlyList<string> args, TextWriter? output = null, TextWriter? error = null)
    {
        output ??= Console.Out;
        error ??= Console.Error;
        var cli = new Cli();
        var result = cli.Parse(args);
        if (result.Action is ParseErrorAction || (result.Action is null && result.Errors.Count > 0))
        {
            foreach (var e in result.Errors) error.WriteLine("error: " + e.Message);
            error.WriteLine("Run with --help to see the options.");
            return UsageError;
        }
        if (result.Action is not null)
            return result.Invoke(new InvocationConfiguration { Output = output, Error = error, EnableDefaultExceptionHandler = false, ProcessTerminationTimeout = null });
        bool live = ReferenceEquals(output, Console.Out) && RunDisplay.ConsoleIsInteractive;
        return App.Run(cli.Bind(result), output, error, live);
    }

    /// <summary>Options that apply only to one mode are refused in another, so that none is silently ignored.</summary>
    private void CheckModes(CommandResult r)
    {
        bool sweep = r.GetValue(Sweep), report = r.GetValue(SweepReport);
        bool Explicit(Option option) => r.GetResult(option) is { Implicit: false };
        if (sweep && report) r.AddError("--sweep and --sweep-report are two modes: give one (the sweep writes its report when it ends).");
        foreach (var option in new Option[] { SweepMax, Resume, LearningRates, Configurations })
            if (!sweep && Explicit(option)) r.AddError($"{option.Name} applies only with --sweep.");
        if (sweep || report)
        {
            string mode = sweep ? "--sweep" : "--sweep-report";
            if (Explicit(LearningRate)) r.AddError($"--lr sets the rate of the default run; {mode} does not use it" + (sweep ? " (the sweep's grid is --lrs)." : "."));
            if (Explicit(Optimizers)) r.AddError($"--optimizers chooses the default run's optimizers; {mode} does not use it" + (sweep ? " (the sweep's are --configs)." : "."));
        }
    }

    /// <summary>The heads split d_model evenly (each head has d_model / heads dimensions).</summary>
    private void CheckHeads(CommandResult r)
    {
        if (SizeOrDeclared(r, DModel, TinyLmModel.DModel, MaxDModel) is not int dModel || SizeOrDeclared(r, Heads, TinyLmModel.Heads, MaxHeads) is not int heads) return;
        if (dModel % heads != 0)
            r.AddError($"--d-model {dModel} is not a multiple of --heads {heads}: each head needs d_model / heads whole dimensions.");
    }

    /// <summary>
    /// A model size in a command validator: <paramref name="declared"/> when the command line does not give it (the default is
    /// not bound yet there), null when its own parser refuses the value (that error is reported already). The tokens are read
    /// again because System.CommandLine throws when a refused value is asked for.
    /// </summary>
    private static int? SizeOrDeclared(CommandResult r, Option<int> option, int declared, int maximum) => r.GetResult(option) switch
    {
        null or { Implicit: true } => declared,
        { Tokens: [var token] } => Integer(token.Value, minimum: 1, maximum, out _),
        _ => null,
    };

    /// <summary>The option's name, for the messages.</summary>
    private static string OptionName(ArgumentResult r) => r.Parent is OptionResult o ? o.Option.Name : r.Argument.Name;

    private static string SingleToken(ArgumentResult r) => r.Tokens.Count == 1 ? r.Tokens[0].Value : "";

    /// <summary>
    /// A whole number of at least <paramref name="minimum"/> and at most <paramref name="maximum"/>; null (and an error naming
    /// the option) otherwise.
    /// </summary>
    private static int? ParseInteger(ArgumentResult r, int minimum, int maximum = int.MaxValue)
    {
        int? value = Integer(SingleToken(r), minimum, maximum, out string? problem);
        if (problem is not null) r.AddError(OptionName(r) + problem);
        return value;
    }

    /// <summary><paramref name="token"/> as a whole number within the bounds, or null and what is wrong with it (after the option's name).</summary>
    private static int? Integer(string token, int minimum, int maximum, out string? problem)
    {
        problem = null;
        if (!int.TryParse(token, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out int value))
            problem = $": '{token}' is not a whole number.";
        else if (value < minimum)
            problem = $" must be at least {minimum}, got {value}.";
        else if (value > maximum)
            problem = $" must be at most {maximum}, got {value}.";
        else
            return value;
        return null;
    }

    /// <summary>A learning rate: a finite number above 0, written with a point (3e-3, 0.003); null (and an error) otherwise.</summary>
    private static float? ParseRate(ArgumentResult r, string token)
    {
        if (!float.TryParse(token, NumberStyles.Float, CultureInfo.InvariantCulture, out float rate))
            r.AddError($"{OptionName(r)}: '{token}' is not a number.");
        else if (!float.IsFinite(rate) || rate <= 0)
            r.AddError($"{OptionName(r)}: a learning rate must be a finite number above 0, got {token}.");
        else
            return rate;
        return null;
    }

    /// <summary>The values of every token of the option, each split at <paramref name="separator"/>.</summary>
    private static string[] List(ArgumentResult r, char separator) => r.Tokens
        .SelectMany(t => t.Value.Split(separator, StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        .ToArray();

    private static void Known(OptionResult r, string option, string what, string[] known, string? knownText = null)
    {
        var values = r.GetValueOrDefault<IReadOnlyList<string>?>();
        if (values is null) return;
        if (values.Count == 0) { r.AddError($"{option} needs at least one {what}."); return; }
        var unknown = values.Where(v => !known.Contains(v, StringComparer.Ordinal)).ToArray();
        if (unknown.Length > 0)
            r.AddError($"{option}: unknown {what}{(unknown.Length > 1 ? "s" : "")} {string.Join(", ", unknown.Select(u => $"'{u}'"))}. " +
                       $"Known: {knownText ?? string.Join(", ", known)}.");
    }

    /// <summary>The option's value when the command line gives it, else null.</summary>
    private static T? Given<T>(ParseResult result, Option<T> option) where T : class? =>
        result.GetResult(option) is { Implicit: false } ? result.GetValue(option) : null;
}
