namespace Collins.Bench;

/// <summary>
/// One run-time row of <c>--gpu</c>: a <see cref="CountSketchAdam"/> with <see cref="Settings"/> over one tensor
/// <see cref="Spec"/> of the bench's length, constructed on the accelerator and stepped through its <c>ArrayView</c> Step.
/// </summary>
public sealed record GpuRuntimeRow(string Name, OptimizerSettings Settings, TensorSpec Spec)
{
    /// <summary>The plan the optimizer builds for <see cref="Spec"/> (its kind, sizes and state).</summary>
    public TensorPlan Plan { get; } = new(Spec, Settings);

    /// <summary>What the row's kind must move per parameter (the CPU bench's formula, <see cref="Floors.Of"/>).</summary>
    public Floor Floor => Floors.Of(Plan, Settings);
}

/// <summary>
/// The rows of <c>--gpu</c> that are not generated (pure: no accelerator here, so the list and the sizing are unit-tested) and the
/// device memory one run needs, from which the default length is chosen.
/// </summary>
public static class GpuRows
{
    /// <summary>The benchmark sizes, largest first (one generated model each, samples/Collins.Bench/Models.cs).</summary>
    public static readonly IReadOnlyList<int> Sizes = [1 << 28, 1 << 26, 1 << 24, 1 << 20];

    /// <summary>Columns of the factored view: the tensor is d / 1024 rows × 1024 columns (as the CPU bench, RuntimeKernel.FactoredColumns).</summary>
    public const int FactoredColumns = 1024;

    /// <summary>Floats per parameter shared by every row: p, g, the copy target, and dense AdamW's m and v.</summary>
    public const int SharedFloatsPerParameter = 5;

    /// <summary>The sizing leaves a quarter of what a run needs free (allocator granularity, ILGPU's and CUDA's own use).</summary>
    public const double Headroom = 1.25;

    /// <summary>
    /// The run-time rows for a tensor of <paramref name="length"/> entries at <paramref name="ratio"/>, in the order the bench prints
    /// them: Rotation β1 0.9 (the control for the generated Rotation row), the factored second moment with β1 = 0, with update
    /// clipping 1, with an 8-bit and a 4-bit block-quantised first moment (β1 0.9, block 128; round to nearest and stochastic
    /// rounding), and Rotation with global gradient-norm clipping at 1. The factored rows view the tensor as d / 1024 × 1024 and are
    /// left out, with the reason in <paramref name="missing"/>, when d is not a multiple of 1024.
    /// </summary>
    public static IReadOnlyList<GpuRuntimeRow> RunTime(int length, int ratio, List<string>? missing = null)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(length, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(ratio, 1);
        var vector = new TensorSpec("W", length);
        var rows = new List<GpuRuntimeRow>
        {
            new("runtime CountSketchAdam Rotation", new OptimizerSettings { Ratio = ratio, Layout = SketchLayout.Rotation }, vector),
        };
        if (length % FactoredColumns == 0)
        {
            var matrix = new TensorSpec("W", [length / FactoredColumns, FactoredColumns]);
            rows.Add(new("runtime Factored", new OptimizerSettings { Beta1 = 0, SecondMoment = SecondMomentEstimate.Factored }, matrix));
            rows.Add(new("runtime Factored clip=1", new OptimizerSettings { Beta1 = 0, SecondMoment = SecondMomentEstimate.Factored, UpdateClipping = 1 }, matrix));
            foreach (bool fourBit in new[] { false, true })
                foreach (bool stochastic in new[] { false, true })
                    rows.Add(new($"runtime Factored q{(fourBit ? 4 : 8)}{(stochastic ? " sr" : "")}", new OptimizerSettings
                    {
                        SecondMoment = SecondMomentEstimate.Factored,
                        FirstMoment = fourBit ? FirstMomentStorage.Quantized4 : FirstMomentStorage.Quantized8,
                        StochasticRounding = stochastic,
                    }, matrix));
        }
        else missing?.Add($"runtime Factored (β1=0, clip=1, q8, q8 sr, q4, q4 sr): d = {length} is not a multiple of {FactoredColumns}");
        rows.Add(new("runtime CountSketchAdam Rotation clipnorm=1",
                     new OptimizerSettings { Ratio = ratio, Layout = SketchLayout.Rotation, MaxGradientNorm = 1 }, vector));
        return rows;
    }

    /// <summary>The settings of the generated single-tensor rows: Rotation and Universal, β1 0.9 and 0, at <paramref name="ratio"/>.</summary>
    public static IEnumerable<OptimizerSettings> GeneratedSettings(int ratio)
    {
        foreach (var layout in new[] { SketchLayout.Rotation, SketchLayout.Universal })
            foreach (bool beta1Zero in new[] { false, true })
                yield return new OptimizerSettings { Ratio = ratio, Layout = layout, Beta1 = beta1Zero ? 0 : 0.9 };
    }

    /// <summary>
    /// An upper bound on the device bytes an optimizer allocates for one tensor: its state (<see cref="TensorPlan.StateBytes"/>: the
    /// moments and quantised codes), its phase-1 workspace (a sketch's bucket sums, one or two floats per bucket; a factored tensor's
    /// row and column sums and, with update clipping, its partial sums of the update's squares, one double per row or per quantisation
    /// block) and, with gradient-norm clipping, the reduction's partials (fewer than one double per 128 values).
    /// </summary>
    public static long DeviceBytes(TensorPlan plan, OptimizerSettings settings)
    {
        ArgumentNullException.ThrowIfNull(plan);
        ArgumentNullException.ThrowIfNull(settings);
        long bytes = plan.StateBytes;
        if (plan.IsFactored)
            bytes += 4L * (plan.FactorRows + plan.FactorColumns + 2)
                     + 8L * (settings.UpdateClipping > 0 ? (plan.IsQuantized ? plan.QuantizedBlocks : plan.FactorRows) : 1);
        else if (!plan.IsDense)
            bytes += 4L * (plan.HasFirstMoment ? 2 : 1) * plan.Buckets;
        if (settings.MaxGradientNorm > 0) bytes += 8L * (plan.Length / 128 + 8);
        return bytes;
    }

    /// <summary>
    /// The device bytes one <c>--gpu</c> run at <paramref name="length"/> needs with every row built at once: the shared buffers
    /// (<see cref="SharedFloatsPerParameter"/> floats per parameter), the four generated optimizers and every run-time row.
    /// </summary>
    public static long RequiredBytes(int length, int ratio)
    {
        long bytes = 4L * SharedFloatsPerParameter * length;
        var vector = new TensorSpec("W", length);
        foreach (var s in GeneratedSettings(ratio)) bytes += DeviceBytes(new TensorPlan(vector, s), s);
        foreach (var row in RunTime(length, ratio)) bytes += DeviceBytes(row.Plan, row.Settings);
        return bytes;
    }

    /// <summary>The largest of <see cref="Sizes"/> whose run needs at most memory / <see cref="Headroom"/>; 0 when none does.</summary>
    public static int ChooseLength(long memoryBytes, int ratio)
    {
        foreach (int d in Sizes)
            if (RequiredBytes(d, ratio) * Headroom <= memoryBytes) return d;
        return 0;
    }
}
