using System.Globalization;

namespace Collins.Bench;

/// <summary>One measured floor kernel (a row of <see cref="LimitKernel"/> or the triad): its row name and the bytes it moves per parameter.</summary>
public sealed record FloorPass(string Row, double BytesPerParam);

/// <summary>
/// The floor of one kind of step: the bytes it must move per parameter, and how the least time for them is formed from floor kernels
/// measured in the same run. The streamed traffic (per parameter) is timed by measured floor kernels whose passes are those of the
/// kind's protocol (<see cref="Passes"/>, their medians added); the small traffic proportional to k (the sketch, or the factored
/// row and column statistics) is timed at the triad's bandwidth (12 B/param per triad time).
/// </summary>
public sealed class Floor
{
    public Floor(string kind, IReadOnlyList<FloorPass> passes, double stateBytesPerParam, string stateTerm, string what)
    {
        ArgumentException.ThrowIfNullOrEmpty(kind);
        ArgumentNullException.ThrowIfNull(passes);
        if (passes.Count == 0) throw new ArgumentException($"the floor of '{kind}' needs at least one measured pass", nameof(passes));
        if (!(stateBytesPerParam >= 0) || double.IsInfinity(stateBytesPerParam))
            throw new ArgumentOutOfRangeException(nameof(stateBytesPerParam), stateBytesPerParam, $"the state traffic of '{kind}' must be finite and ≥ 0");
        Kind = kind; Passes = passes; StateBytesPerParam = stateBytesPerParam; StateTerm = stateTerm; What = what;
    }

    /// <summary>The kind this floor bounds (e.g. "Rotation, β1 ≠ 0").</summary>
    public string Kind { get; }
    /// <summary>The measured floor kernels whose medians add up to the streamed part of the floor, in protocol order.</summary>
    public IReadOnlyList<FloorPass> Passes { get; }
    /// <summary>Bytes per parameter of the k-sized traffic, timed at the triad's bandwidth.</summary>
    public double StateBytesPerParam { get; }
    /// <summary>How <see cref="StateBytesPerParam"/> is counted (e.g. "32·k/d").</summary>
    public string StateTerm { get; }
    /// <summary>What the kind must read and write, in words.</summary>
    public string What { get; }

    /// <summary>Bytes the kind must move per parameter: the passes' streams plus the k-sized traffic.</summary>
    public double BytesPerParam => Passes.Sum(p => p.BytesPerParam) + StateBytesPerParam;

    /// <summary>The formula as printed by the bench and written in docs/benchmarks.md.</summary>
    public string Formula
    {
        get
        {
            string passes = string.Join(" + ", Passes.Select(p => $"t[{p.Row}]"));
            string state = StateBytesPerParam > 0 ? $" + ({StateTerm} = {Format(StateBytesPerParam)} B/param) at the triad's bandwidth" : "";
            return $"{Format(BytesPerParam)} B/param ({What}); floor = {passes}{state}";
        }
    }

    /// <summary>
    /// The floor in milliseconds: the medians of <see cref="Passes"/> added, plus the k-sized traffic at the triad's bandwidth
    /// (<paramref name="triadMs"/> per 12 B/param). Null when a pass was not measured in this run.
    /// </summary>
    public double? Milliseconds(Func<string, double?> medianMsOf, double triadMs)
    {
        ArgumentNullException.ThrowIfNull(medianMsOf);
        if (!(triadMs > 0) || double.IsInfinity(triadMs)) throw new ArgumentOutOfRangeException(nameof(triadMs), triadMs, "the triad's median must be a positive time");
        double sum = 0;
        foreach (var pass in Passes)
        {
            if (medianMsOf(pass.Row) is not double ms) return null;
            sum += ms;
        }
        return sum + StateBytesPerParam / Floors.Triad.BytesPerParam * triadMs;
    }

    private static string Format(double x) => x.ToString(x == Math.Floor(x) ? "F0" : "F3", CultureInfo.InvariantCulture);
}

/// <summary>
/// The floor kernels and, per kind of step the bench runs, what it must move (the formulas stated in docs/benchmarks.md,
/// "Per-kind floors"). Pure arithmetic: no kernel runs here, so the formulas are tested from first principles.
/// </summary>
public static class Floors
{
    /// <summary>p −= a·g in one pass: read g, read/write p.</summary>
    public static readonly FloorPass Triad = new("triad (limit)", 12);
    /// <summary>Σ g: read g.</summary>
    public static readonly FloorPass Read = new("read (limit)", 4);
    /// <summary>p ← a·p: read/write p.</summary>
    public static readonly FloorPass Scale = new("scale (limit)", 8);
    /// <summary>Read g, then read/write p in a second pass.</summary>
    public static readonly FloorPass ReadScale = new("read + scale (two-pass limit)", 12);
    /// <summary>Read g, then read g and read/write p (a triad) in a second pass.</summary>
    public static readonly FloorPass ReadTriad = new("read + triad (two-pass limit)", 16);
    /// <summary>Read g, read g again, then read g and read/write p (a triad): three passes.</summary>
    public static readonly FloorPass ReadReadTriad = new("2 reads + triad (three-pass limit)", 20);
    /// <summary>One pass reading g, p, m, v and writing p, m, v (dense AdamW's streams without its arithmetic).</summary>
    public static readonly FloorPass DenseStream = new("dense stream (limit)", 28);
    /// <summary>One pass reading g, p, v and writing p, v (dense AdamW β1 = 0's streams).</summary>
    public static readonly FloorPass DenseStreamNoFirstMoment = new("dense stream β1=0 (limit)", 20);
    /// <summary>The cheapest Universal memory pattern: 12 B/param streamed plus one random scatter and one random gather per parameter.</summary>
    public static readonly FloorPass RandomScatterGather = new("random scatter+gather (limit)", 12);

    /// <summary>Dense AdamW: one fused pass reading g, p, m, v and writing p, m, v (β1 = 0: g, p, v and p, v).</summary>
    public static Floor DenseAdamW(bool beta1Zero) => beta1Zero
        ? new Floor("dense AdamW, β1 = 0", [DenseStreamNoFirstMoment], 0, "", "one pass: read g, p, v; write p, v")
        : new Floor("dense AdamW", [DenseStream], 0, "", "one pass: read g, p, m, v; write p, m, v");

    /// <summary>
    /// A Rotation sketch of a tensor of <paramref name="length"/> entries at <paramref name="ratio"/> (k = ⌈d / Ratio⌉ buckets).
    /// β1 ≠ 0: phase 1 reads g, phase 2 reads and writes p; per bucket the two phase-1 sums are written and read back and m and v
    /// are read and written (32 B). β1 = 0: phase 2 reads g again (the update is g·w); per bucket one sum written and read, v read and
    /// written (16 B).
    /// </summary>
    public static Floor Rotation(long length, int ratio, bool beta1Zero)
    {
        long k = Buckets(length, ratio);
        return beta1Zero
            ? new Floor("Rotation, β1 = 0", [ReadTriad], 16.0 * k / length, "16·k/d",
                $"phase 1 read g; phase 2 read g, read/write p; per bucket Σg² written and read, v read and written; k = {k:N0}")
            : new Floor("Rotation", [ReadScale], 32.0 * k / length, "32·k/d",
                $"phase 1 read g; phase 2 read/write p; per bucket Σσg, Σg² written and read, m, v read and written; k = {k:N0}");
    }

    /// <summary>
    /// A Universal sketch: the random scatter+gather floor (the sums zeroed, g read and (g, g²) added at random; p read, one
    /// coefficient gathered at random, p written), plus the bucket update between the phases (β1 ≠ 0: the two sums read, m and v read
    /// and written, the coefficient written, 28 B; β1 = 0: Σg² read, v read and written, the coefficient written, 16 B), and with
    /// β1 = 0 a second read of g in phase 2 (the update is g·w), timed by the read floor.
    /// </summary>
    public static Floor Universal(long length, int ratio, bool beta1Zero)
    {
        long k = Buckets(length, ratio);
        return beta1Zero
            ? new Floor("Universal, β1 = 0", [RandomScatterGather, Read], 16.0 * k / length, "16·k/d",
                $"random scatter+gather as for β1 ≠ 0, plus g read again in phase 2; per bucket Σg² read, v read and written, coefficient written; k = {k:N0}")
            : new Floor("Universal", [RandomScatterGather], 28.0 * k / length, "28·k/d",
                $"phase 1 read g, one random (Σσg, Σg²) add; phase 2 read/write p, one random coefficient gather; per bucket the sums read, m, v read and written, coefficient written; k = {k:N0}");
    }

    /// <summary>
    /// The factored second moment (β1 = 0) of <paramref name="rows"/> × <paramref name="columns"/>: phase 1 reads g (row and column
    /// sums of g²), phase 2 reads g and reads and writes p; with update clipping one more pass reads g to form RMS(u). The R + C
    /// statistics are written and read back (the sums) and read and written (the EMAs): 16·(R + C) bytes.
    /// </summary>
    public static Floor Factored(long rows, long columns, bool clip)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(rows, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(columns, 1);
        double d = (double)rows * columns;
        double state = 16.0 * (rows + columns) / d;
        return clip
            ? new Floor("Factored, update clipping", [ReadReadTriad], state, "16·(R+C)/d",
                $"phase 1 read g; RMS(u) pass read g; phase 2 read g, read/write p; R = {rows:N0}, C = {columns:N0}")
            : new Floor("Factored", [ReadTriad], state, "16·(R+C)/d",
                $"phase 1 read g; phase 2 read g, read/write p; R = {rows:N0}, C = {columns:N0}");
    }

    /// <summary>
    /// The factored second moment with a block-quantised first moment: the factored floor's passes (phase 1 read g; phase 2 read g,
    /// read/write p), plus per parameter the codes read and written (2 B at 8 bits, 1 B at 4) and per block its scale read and
    /// written (8 / block B), timed with the R + C statistics at the triad's bandwidth.
    /// </summary>
    public static Floor FactoredQuantized(long rows, long columns, bool fourBit, int block)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(rows, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(columns, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(block, 1);
        double d = (double)rows * columns;
        double state = 16.0 * (rows + columns) / d + (fourBit ? 1.0 : 2.0) + 8.0 / block;
        return new Floor(fourBit ? "Factored + 4-bit m" : "Factored + 8-bit m", [ReadTriad], state, $"16·(R+C)/d + {(fourBit ? 1 : 2)} + 8/B",
            $"phase 1 read g; phase 2 read g, read/write p, read/write the codes and the block scales; R = {rows:N0}, C = {columns:N0}, B = {block}");
    }

    /// <summary>
    /// The run-time engine's dense step (Ratio 1): phase 1 reads g (the finiteness check, and Σg² when clipping), then the fused
    /// dense AdamW pass.
    /// </summary>
    public static Floor DenseEngine() => new("dense AdamW through the engine", [Read, DenseStream], 0, "",
        "phase 1 read g; phase 2 one pass: read g, p, m, v; write p, m, v");

    /// <summary>
    /// The floor of one tensor of an optimizer, chosen by the kind its plan runs: a dense tensor is dense AdamW's one pass (β1 = 0
    /// without m), a factored one <see cref="Factored"/> (with update clipping when the settings clip) or
    /// <see cref="FactoredQuantized"/>, a sketched one <see cref="Rotation"/> or <see cref="Universal"/> at its effective ratio.
    /// </summary>
    /// <remarks>
    /// A dense tensor is bounded by the fused pass alone, not by <see cref="DenseEngine"/>'s extra read of g: in a whole model the
    /// dense tensors are the vectors below the dense threshold, whose phase-1 read leaves g in the cache for phase 2.
    /// </remarks>
    public static Floor Of(TensorPlan plan, OptimizerSettings settings)
    {
        ArgumentNullException.ThrowIfNull(plan);
        ArgumentNullException.ThrowIfNull(settings);
        bool beta1Zero = !plan.HasFirstMoment;
        if (plan.IsDense) return DenseAdamW(beta1Zero);
        if (plan.IsFactored)
            return plan.IsQuantized
                ? FactoredQuantized(plan.FactorRows, plan.FactorColumns, plan.FirstMoment == FirstMomentStorage.Quantized4, plan.QuantizationBlock)
                : Factored(plan.FactorRows, plan.FactorColumns, clip: settings.UpdateClipping > 0);
        return plan.Layout == SketchLayout.Rotation ? Rotation(plan.Length, plan.Ratio, beta1Zero) : Universal(plan.Length, plan.Ratio, beta1Zero);
    }

    /// <summary>
    /// The bytes one step over every tensor of <paramref name="plans"/> must move: each tensor's floor (<see cref="Of"/>) in bytes per
    /// parameter times its entries, summed over the tensors (the whole-model bench's floor, at the triad's bandwidth).
    /// </summary>
    public static double ModelBytes(IEnumerable<TensorPlan> plans, OptimizerSettings settings)
    {
        ArgumentNullException.ThrowIfNull(plans);
        double sum = 0;
        foreach (var plan in plans) sum += Of(plan, settings).BytesPerParam * plan.Length;
        return sum;
    }

    /// <summary>
    /// The whole model's pass floor in milliseconds: Σ over the tensors of (d / <paramref name="parameterCount"/>) times the
    /// tensor's floor (<see cref="Floor.Milliseconds"/>) from floor kernels run over all <paramref name="parameterCount"/>
    /// parameters (medians <paramref name="medianMsOf"/>, the triad's <paramref name="triadMs"/>). Null when a pass was not measured
    /// or there are no tensors.
    /// </summary>
    public static double? ModelPassMilliseconds(IReadOnlyList<(long Length, Floor Floor)> tensors, Func<string, double?> medianMsOf,
                                                double triadMs, long parameterCount)
    {
        ArgumentNullException.ThrowIfNull(tensors);
        ArgumentOutOfRangeException.ThrowIfLessThan(parameterCount, 1);
        if (tensors.Count == 0) return null;
        double sum = 0;
        foreach (var (length, floor) in tensors)
        {
            if (floor.Milliseconds(medianMsOf, triadMs) is not double ms) return null;
            sum += ms * length / parameterCount;
        }
        return sum;
    }

    private static long Buckets(long length, int ratio)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(length, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(ratio, 1);
        return (length + ratio - 1) / ratio;
    }
}
