using Collins.Bench;

namespace Collins.Tests;

/// <summary>
/// The GPU bench's run-time rows and its device-memory sizing (samples/Collins.Bench/GpuRows.cs, linked here): each row is the kind
/// its name says, its bytes per parameter are that kind's floor, and the default length is the largest size whose buffers, state and
/// workspace fit with a quarter spare. Sizes are counted here from what each kind keeps (one float = 4 B). No device, no timing.
/// </summary>
[Trait("Category", "Bench")]
public class BenchGpuRowsTests
{
    private const int D = 1 << 20, Ratio = 32, K = D / Ratio, R = D / 1024, C = 1024, Block = 128;

    [Fact]
    public void Run_time_rows_are_the_kinds_they_name()
    {
        var rows = GpuRows.RunTime(D, Ratio);
        Assert.Equal(new[]
        {
            "runtime CountSketchAdam Rotation", "runtime Factored", "runtime Factored clip=1", "runtime Factored q8", "runtime Factored q8 sr",
            "runtime Factored q4", "runtime Factored q4 sr", "runtime CountSketchAdam Rotation clipnorm=1",
        }, rows.Select(r => r.Name));
        foreach (var row in rows) Assert.Equal(D, row.Plan.Length);

        foreach (var (row, clipNorm) in new[] { (rows[0], 0.0), (rows[7], 1.0) })
        {
            Assert.False(row.Plan.IsDense);
            Assert.False(row.Plan.IsFactored);
            Assert.Equal(SketchLayout.Rotation, row.Plan.Layout);
            Assert.True(row.Plan.HasFirstMoment);
            Assert.Equal(K, row.Plan.Buckets);
            Assert.Equal(clipNorm, row.Settings.MaxGradientNorm);
            // Phase 1 reads g, phase 2 reads and writes p; per bucket Σσg, Σg² written and read, m and v read and written.
            Assert.Equal(3 * 4 + 8 * 4.0 * K / D, row.Floor.BytesPerParam, 12);
        }
        for (int i = 1; i <= 6; i++)
        {
            Assert.True(rows[i].Plan.IsFactored, rows[i].Name);
            Assert.Equal(R, rows[i].Plan.FactorRows);
            Assert.Equal(C, rows[i].Plan.FactorColumns);
            Assert.Equal(0, rows[i].Settings.MaxGradientNorm);
        }
        double stats = 4 * 4.0 * (R + C) / D;   // R + C row and column statistics: sums written and read, EMAs read and written
        Assert.False(rows[1].Plan.HasFirstMoment);
        Assert.False(rows[1].Plan.IsQuantized);
        Assert.Equal(0, rows[1].Settings.UpdateClipping);
        Assert.Equal(4 + 4 + 8 + stats, rows[1].Floor.BytesPerParam, 12);            // read g; read g, read/write p
        Assert.False(rows[2].Plan.IsQuantized);
        Assert.Equal(1, rows[2].Settings.UpdateClipping);
        Assert.Equal(4 + 4 + 4 + 8 + stats, rows[2].Floor.BytesPerParam, 12);        // one more read of g for RMS(u)
        var quantised = new[] { (FirstMomentStorage.Quantized8, false), (FirstMomentStorage.Quantized8, true), (FirstMomentStorage.Quantized4, false), (FirstMomentStorage.Quantized4, true) };
        for (int i = 0; i < 4; i++)
        {
            var row = rows[3 + i];
            Assert.True(row.Plan.IsQuantized, row.Name);
            Assert.Equal(quantised[i].Item1, row.Plan.FirstMoment);
            Assert.Equal(quantised[i].Item2, row.Settings.StochasticRounding);
            Assert.Equal(0.9, row.Settings.Beta1);
            Assert.Equal(Block, row.Plan.QuantizationBlock);
            Assert.Equal(0, row.Settings.UpdateClipping);
            double codes = quantised[i].Item1 == FirstMomentStorage.Quantized8 ? 2 : 1;   // one byte (or half) read and written
            Assert.Equal(16 + codes + 2 * 4.0 / Block + stats, row.Floor.BytesPerParam, 12);
        }
    }

    [Fact]
    public void Factored_rows_are_left_out_with_the_reason_when_d_is_not_a_multiple_of_1024()
    {
        var missing = new List<string>();
        var rows = GpuRows.RunTime(1000, 8, missing);
        Assert.Equal(new[] { "runtime CountSketchAdam Rotation", "runtime CountSketchAdam Rotation clipnorm=1" }, rows.Select(r => r.Name));
        string why = Assert.Single(missing);
        Assert.Contains("1000", why);
        Assert.Contains("1024", why);
        Assert.Throws<ArgumentOutOfRangeException>(() => GpuRows.RunTime(0, 8));
        Assert.Throws<ArgumentOutOfRangeException>(() => GpuRows.RunTime(D, 0));
    }

    [Fact]
    public void Device_bytes_cover_every_kinds_state_and_workspace()
    {
        var rows = GpuRows.RunTime(D, Ratio);
        long Bytes(int i) => GpuRows.DeviceBytes(rows[i].Plan, rows[i].Settings);
        // A Rotation sketch: m and v, k floats each, and phase 1's Σσg and Σg², k floats each.
        Assert.Equal(4L * 4 * K, Bytes(0));
        var noM = new OptimizerSettings { Ratio = Ratio, Beta1 = 0 };
        Assert.Equal(2L * 4 * K, GpuRows.DeviceBytes(new TensorPlan(new TensorSpec("W", D), noM), noM));   // v and Σg²
        // Gradient-norm clipping adds the reduction's partials: at least one double per 256 of the k bucket sums it reduces.
        Assert.True(Bytes(7) - Bytes(0) >= 8L * (K / 256), $"{Bytes(7)} − {Bytes(0)}");
        // Factored: v as R row and C column statistics, and phase 1's R row and C column sums.
        long factored = 2 * 4L * (R + C);
        // The quantised first moment: one code per entry (8 bits, or 4), one float scale per block.
        long q8 = factored + D + 4L * (D / Block), q4 = factored + D / 2 + 4L * (D / Block);
        long[] least = [factored, factored, q8, q8, q4, q4];
        for (int i = 1; i <= 6; i++)
            Assert.InRange(Bytes(i), least[i - 1], least[i - 1] + D / 64);   // the partial sums are a small fraction of d
        Assert.Throws<ArgumentNullException>(() => GpuRows.DeviceBytes(null!, noM));
    }

    [Fact]
    public void The_default_length_is_the_largest_size_whose_every_row_fits_with_a_quarter_spare()
    {
        foreach (int d in GpuRows.Sizes)
        {
            long k = (d + Ratio - 1) / Ratio;
            // p, g, the copy target, dense AdamW's m and v; the generated Rotation and Universal rows (16·k bytes with m, 8·k without);
            // every run-time row.
            long expected = 5L * 4 * d + 2 * 16 * k + 2 * 8 * k + GpuRows.RunTime(d, Ratio).Sum(r => GpuRows.DeviceBytes(r.Plan, r.Settings));
            Assert.Equal(expected, GpuRows.RequiredBytes(d, Ratio));
        }
        Assert.Equal(new[] { 1 << 28, 1 << 26, 1 << 24, 1 << 20 }, GpuRows.Sizes);
        long largest = GpuRows.RequiredBytes(1 << 28, Ratio);
        long fits = (long)Math.Ceiling(largest * 1.25);
        Assert.Equal(1 << 28, GpuRows.ChooseLength(139L << 30, Ratio));
        Assert.Equal(1 << 28, GpuRows.ChooseLength(fits, Ratio));
        Assert.Equal(1 << 26, GpuRows.ChooseLength(fits - 1, Ratio));
        Assert.Equal(1 << 20, GpuRows.ChooseLength((long)Math.Ceiling(GpuRows.RequiredBytes(1 << 20, Ratio) * 1.25), Ratio));
        Assert.Equal(0, GpuRows.ChooseLength(1L << 20, Ratio));   // 1 MiB holds not even the 1M parameters
    }
}
