using System.Globalization;
using System.Runtime.CompilerServices;

namespace Collins.Kernels;

/// <summary>
/// Which x86 CPU this is, from CPUID: the vendor string and the displayed family and model (the extended fields folded in the way
/// the vendors' manuals do, so AMD Zen 5 reads family 26 and Intel Emerald Rapids family 6 model 207, as /proc/cpuinfo shows them).
/// On other architectures the vendor is the architecture's name and family and model are 0.
/// </summary>
internal readonly record struct CpuIdentity(string Vendor, int Family, int Model)
{
    /// <summary>The CPU this process runs on.</summary>
    public static CpuIdentity Current { get; } = Read();

    private static CpuIdentity Read()
    {
        if (!System.Runtime.Intrinsics.X86.X86Base.IsSupported)
            return new(System.Runtime.InteropServices.RuntimeInformation.ProcessArchitecture.ToString(), 0, 0);
        var (_, ebx, ecx, edx) = System.Runtime.Intrinsics.X86.X86Base.CpuId(0, 0);
        Span<byte> name = stackalloc byte[12];
        BitConverter.TryWriteBytes(name, ebx);
        BitConverter.TryWriteBytes(name[4..], edx);
        BitConverter.TryWriteBytes(name[8..], ecx);
        var (eax, _, _, _) = System.Runtime.Intrinsics.X86.X86Base.CpuId(1, 0);
        return FromSignature(System.Text.Encoding.ASCII.GetString(name), eax);
    }

    /// <summary>The identity a CPUID leaf-1 signature (EAX) gives for <paramref name="vendor"/>.</summary>
    public static CpuIdentity FromSignature(string vendor, int eax)
    {
        int baseFamily = (eax >> 8) & 0xF, baseModel = (eax >> 4) & 0xF;
        int family = baseFamily == 0xF ? baseFamily + ((eax >> 20) & 0xFF) : baseFamily;
        int model = baseFamily is 0x6 or 0xF ? baseModel | (((eax >> 16) & 0xF) << 4) : baseModel;
        return new(vendor, family, model);
    }

    public override string ToString() => $"{Vendor} family {Family} model {Model}";
}

/// <summary>
/// The CPU engine's choices that change how fast a step runs and never what it computes: software-prefetch distances of the
/// Rotation kernels and of the factored kernel's AVX-512 row bodies, the store kind of the Rotation phase-1 sums, and their tile size. Every Rotation bucket is summed over its rows in
/// row order whatever the tile, a prefetch is only a hint and a non-temporal store writes the same value, so a step is
/// bit-identical under every tuning (CpuTuningTests steps each candidate against the default). Choices that would change a
/// result (the factored kernels' row tiles, every tile that a partial sum is formed over) are fixed in <see cref="KernelTiles"/>
/// and are not here.
/// </summary>
/// <remarks>
/// One tuning is chosen per process (<see cref="Current"/>): the environment variable <c>COLLINS_CPU_TUNING</c> when set (a
/// name from <see cref="Known"/>, or <c>key=value</c> pairs over the CPU's own tuning, for example
/// <c>phase1=512,tile=4096</c>), otherwise the entry of <see cref="Known"/> for the running CPU (<see cref="For"/>), otherwise
/// <see cref="Default"/>. The values of each entry, and how to measure a new CPU's, are in docs/benchmarks.md ("Per-CPU tuning").
/// The kernels see the distances as struct type arguments (<see cref="Ahead0"/>, <see cref="Ahead64"/>, …), so each distance is a constant the JIT folds
/// into its own copy of the loop, as the constants before it were.
/// </remarks>
/// <param name="Name">The entry's name (a CPU's, "default", or "custom" for an environment override).</param>
/// <param name="Phase1Prefetch">Floats ahead that Rotation phase 1 prefetches in each row stream (0: none).</param>
/// <param name="Phase2Prefetch">Floats ahead that Rotation phase 2 prefetches in each row stream of p (and of g when β1 = 0; 0: none).</param>
/// <param name="SketchPrefetch">Buckets ahead that Rotation phase 2 prefetches in the moment and workspace arrays (0: none).</param>
/// <param name="NonTemporalMinLength">Rotation tensors of at least this many entries write their phase-1 sums non-temporally.</param>
/// <param name="TileBuckets">Buckets per tile of both Rotation phases (a multiple of 16, so that every tile starts on a cache line).</param>
/// <param name="Phase1RowsPerPass">Rows that Rotation phase 1 reads per pass over a tile (0: all rows in one pass).</param>
/// <param name="Phase2RowsPerPass">Rows that Rotation phase 2 updates per pass over a tile (0: all rows in one pass).</param>
/// <param name="FactoredPrefetch">Floats ahead that the factored kernel's AVX-512 row bodies (phase 1, the update, update clipping's
/// Σu²) prefetch g and p, across row ends (0: none).</param>
internal sealed record CpuTuning(string Name, int Phase1Prefetch, int Phase2Prefetch, int SketchPrefetch, int NonTemporalMinLength, int TileBuckets,
                                 int Phase1RowsPerPass = 0, int Phase2RowsPerPass = 0, int FactoredPrefetch = 256)
{
    /// <summary>The prefetch distances the kernels are compiled for.</summary>
    public static IReadOnlyList<int> Distances { get; } = [0, 64, 128, 256, 512, 1024];

    /// <summary>The smallest and largest tile sizes accepted, in buckets.</summary>
    public const int MinTileBuckets = 256, MaxTileBuckets = 1 << 16;

    /// <summary>The name of the environment variable that overrides the CPU's tuning.</summary>
    public const string EnvironmentVariable = "COLLINS_CPU_TUNING";

    /// <summary>
    /// The tuning of CPUs without an entry: the values measured on the Intel Xeon the kernels were first tuned on (family 6
    /// model 207). The factored distance was not measured there (the factored kernel came later): 256, the distance the dense
    /// streams were tuned to on that machine.
    /// </summary>
    public static CpuTuning Default { get; } = new("default", 128, 256, 64, 1 << 20, 2048);

    /// <summary>The measured entries: a CPU's vendor and family (and model, where it matters) and its tuning.</summary>
    public static IReadOnlyList<(string Vendor, int Family, int? Model, CpuTuning Tuning)> Known { get; } =
    [
        ("GenuineIntel", 6, 207, Default with { Name = "intel-6-207" }),
        ("AuthenticAMD", 26, null, Default with { Name = "amd-26", Phase1Prefetch = 256, Phase2Prefetch = 512, TileBuckets = 4096,
                                                  Phase1RowsPerPass = 8, Phase2RowsPerPass = 8, FactoredPrefetch = 1024 }),
    ];

    private static readonly Lazy<CpuTuning> s_current = new(() => FromEnvironment(Environment.GetEnvironmentVariable(EnvironmentVariable), CpuIdentity.Current));

    /// <summary>
    /// This process's tuning, chosen once. Throws <see cref="InvalidOperationException"/> naming the variable and the bad part
    /// when <c>COLLINS_CPU_TUNING</c> cannot be read: from the constructor of an optimizer with a Rotation or factored tensor (whose kernel
    /// reads it when it is built, so no optimizer is built with it), and from every later read in the process (the failure is
    /// cached; the variable is read once).
    /// </summary>
    public static CpuTuning Current => s_current.Value;

    /// <summary>The entry of <see cref="Known"/> for <paramref name="cpu"/>, or <see cref="Default"/>.</summary>
    public static CpuTuning For(CpuIdentity cpu)
    {
        foreach (var (vendor, family, model, tuning) in Known)
            if (vendor == cpu.Vendor && family == cpu.Family && (model is null || model == cpu.Model)) return tuning;
        return Default;
    }

    /// <summary>The tuning for <paramref name="cpu"/> under the environment value <paramref name="value"/> (null or blank: none).</summary>
    public static CpuTuning FromEnvironment(string? value, CpuIdentity cpu)
    {
        if (string.IsNullOrWhiteSpace(value)) return For(cpu);
        try { return Parse(value, For(cpu)); }
        catch (FormatException e) { throw new InvalidOperationException($"{EnvironmentVariable}='{value}': {e.Message}", e); }
    }

    /// <summary>
    /// A tuning from text: a name of <see cref="Known"/> or "default", or comma-separated <c>key=value</c> pairs over
    /// <paramref name="basis"/> with the keys <c>phase1</c>, <c>phase2</c>, <c>sketch</c> (distances of <see cref="Distances"/>),
    /// <c>nt</c> (the non-temporal threshold in entries), <c>tile</c> (buckets), <c>rows</c> and <c>rows2</c> (rows per pass of
    /// phase 1 and phase 2; 0, or at least the tensor's row count, reads every row in one pass), <c>factored</c> (the factored
    /// kernel's distance, one of <see cref="Distances"/>). Throws <see cref="FormatException"/>
    /// naming the bad part.
    /// </summary>
    public static CpuTuning Parse(string text, CpuTuning basis)
    {
        string t = text.Trim();
        if (t == Default.Name) return Default;
        foreach (var entry in Known) if (entry.Tuning.Name == t) return entry.Tuning;
        if (!t.Contains('='))
            throw new FormatException($"'{t}' is neither a tuning name ({string.Join(", ", Known.Select(e => e.Tuning.Name).Prepend(Default.Name))}) nor key=value pairs.");
        var result = basis with { Name = "custom" };
        foreach (string part in t.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            int eq = part.IndexOf('=');
            string key = eq < 0 ? part : part[..eq].Trim();
            if (eq < 0 || !int.TryParse(part[(eq + 1)..].Trim(), NumberStyles.Integer, CultureInfo.InvariantCulture, out int n))
                throw new FormatException($"'{part}' is not key=integer.");
            if (Problem(key, n) is string problem) throw new FormatException(problem);
            result = result.With(key, n);
        }
        return result;
    }

    /// <summary>The keys of <see cref="Parse"/> with this tuning's values, in the order <see cref="Key"/> writes them.</summary>
    private (string Key, int Value)[] Values =>
    [
        ("phase1", Phase1Prefetch), ("phase2", Phase2Prefetch), ("sketch", SketchPrefetch), ("nt", NonTemporalMinLength),
        ("tile", TileBuckets), ("rows", Phase1RowsPerPass), ("rows2", Phase2RowsPerPass), ("factored", FactoredPrefetch),
    ];

    /// <summary>This tuning with <paramref name="key"/> set to <paramref name="n"/> (a key of <see cref="Values"/>, already checked).</summary>
    private CpuTuning With(string key, int n) => key switch
    {
        "phase1" => this with { Phase1Prefetch = n },
        "phase2" => this with { Phase2Prefetch = n },
        "sketch" => this with { SketchPrefetch = n },
        "nt" => this with { NonTemporalMinLength = n },
        "tile" => this with { TileBuckets = n },
        "rows" => this with { Phase1RowsPerPass = n },
        "rows2" => this with { Phase2RowsPerPass = n },
        "factored" => this with { FactoredPrefetch = n },
        _ => throw new ArgumentOutOfRangeException(nameof(key), key, "not a tuning key"),
    };

    /// <summary>Whether the kernels have a copy for the prefetch distance <paramref name="n"/> (one of <see cref="Distances"/>).</summary>
    public static bool IsDistance(int n) => Distances.Contains(n);

    /// <summary>The one rule per key, shared by <see cref="Parse"/> and <see cref="Validate"/>: why <paramref name="n"/> cannot be its value, or null.</summary>
    private static string? Problem(string key, int n) => key switch
    {
        "phase1" or "phase2" or "sketch" or "factored" => IsDistance(n) ? null : $"{key}={n}: a prefetch distance is one of {string.Join(", ", Distances)}.",
        "nt" => n >= 0 ? null : $"nt={n}: the threshold is a length, at least 0.",
        "tile" => n is >= MinTileBuckets and <= MaxTileBuckets && n % 16 == 0 ? null
                  : $"tile={n}: a tile holds {MinTileBuckets}..{MaxTileBuckets} buckets, a multiple of 16.",
        "rows" or "rows2" => n >= 0 ? null : $"{key}={n}: rows per pass, at least 0 (0: all).",
        _ => $"unknown key '{key}' (phase1, phase2, sketch, nt, tile, rows, rows2, factored).",
    };

    /// <summary>
    /// Throws <see cref="ArgumentException"/> naming the first value the kernels cannot run with (the rules <see cref="Parse"/>
    /// applies to text, for a tuning built in code); every Rotation and factored kernel checks its tuning when it is built, before any step.
    /// </summary>
    public void Validate()
    {
        foreach (var (key, n) in Values)
            if (Problem(key, n) is string problem) throw new ArgumentException($"CPU tuning '{Name}': {problem}");
    }

    /// <summary>Whether a Rotation tensor of <paramref name="length"/> entries writes its phase-1 sums non-temporally.</summary>
    public bool NonTemporalSums(int length) => length >= NonTemporalMinLength;

    /// <summary>The values as <see cref="Parse"/> reads them (for example <c>phase1=128,phase2=256,sketch=64,nt=1048576,tile=2048,rows=0,rows2=0,factored=256</c>).</summary>
    public string Key => string.Join(",", Values.Select(v => v.Key + "=" + v.Value.ToString(CultureInfo.InvariantCulture)));

    public override string ToString() => $"{Name} ({Key})";
}

/// <summary>A software-prefetch distance as a type: the kernels take it as a struct type argument, so it is a JIT-time constant.</summary>
internal interface IPrefetchDistance
{
    /// <summary>Elements ahead (0: no prefetch; the branch then folds away).</summary>
    static abstract int Ahead { get; }
}

internal readonly struct Ahead0 : IPrefetchDistance { public static int Ahead => 0; }
internal readonly struct Ahead64 : IPrefetchDistance { public static int Ahead => 64; }
internal readonly struct Ahead128 : IPrefetchDistance { public static int Ahead => 128; }
internal readonly struct Ahead256 : IPrefetchDistance { public static int Ahead => 256; }
internal readonly struct Ahead512 : IPrefetchDistance { public static int Ahead => 512; }
internal readonly struct Ahead1024 : IPrefetchDistance { public static int Ahead => 1024; }
