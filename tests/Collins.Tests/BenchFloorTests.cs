using Collins.Bench;

namespace Collins.Tests;

/// <summary>
/// The bench's per-kind floors (samples/Collins.Bench/Floors.cs, linked here): the bytes each kind must move, counted here from
/// the streams its protocol reads and writes (one float = 4 B), and how a floor's time is formed from the floor kernels' medians.
/// No timing: the formulas only.
/// </summary>
[Trait("Category", "Bench")]
public class BenchFloorTests
{
    private const double F = sizeof(float);

    private static long K(long d, int ratio) => (d + ratio - 1) / ratio;

    [Fact]
    public void Floor_kernels_move_the_bytes_of_their_passes()
    {
        double read = 1 * F, rwP = 2 * F, triad = read + rwP;   // read g; read and write p; both in one pass
        Assert.Equal(read, Floors.Read.BytesPerParam);
        Assert.Equal(rwP, Floors.Scale.BytesPerParam);
        Assert.Equal(triad, Floors.Triad.BytesPerParam);
        Assert.Equal(read + rwP, Floors.ReadScale.BytesPerParam);
        Assert.Equal(read + triad, Floors.ReadTriad.BytesPerParam);
        Assert.Equal(read + read + triad, Floors.ReadReadTriad.BytesPerParam);
        Assert.Equal((4 + 3) * F, Floors.DenseStream.BytesPerParam);                 // read g, p, m, v; write p, m, v
        Assert.Equal((3 + 2) * F, Floors.DenseStreamNoFirstMoment.BytesPerParam);    // read g, p, v; write p, v
        Assert.Equal(triad, Floors.RandomScatterGather.BytesPerParam);               // streamed part; the random lines are its time
    }

    [Fact]
    public void Dense_AdamW_moves_every_state_stream_once_in_one_pass()
    {
        Assert.Equal((4 + 3) * F, Floors.DenseAdamW(beta1Zero: false).BytesPerParam);
        Assert.Equal((3 + 2) * F, Floors.DenseAdamW(beta1Zero: true).BytesPerParam);
        Assert.Equal(new[] { Floors.DenseStream }, Floors.DenseAdamW(false).Passes);
        Assert.Equal(new[] { Floors.DenseStreamNoFirstMoment }, Floors.DenseAdamW(true).Passes);
        Assert.Equal(0, Floors.DenseAdamW(false).StateBytesPerParam);
    }

    [Theory]
    [InlineData(1000L, 32)]          // ragged: k = 32 for 31.25 rows' worth
    [InlineData(1L << 24, 32)]
    [InlineData(1L << 26, 8)]
    [InlineData(7L, 1)]
    public void Rotation_reads_g_then_rewrites_p_plus_its_bucket_traffic(long d, int ratio)
    {
        long k = K(d, ratio);
        // β1 ≠ 0: phase 1 reads g; phase 2 reads and writes p. Per bucket: Σσg and Σg² written by phase 1 and read by phase 2,
        // m and v read and written: 8 floats.
        var withM = Floors.Rotation(d, ratio, beta1Zero: false);
        Assert.Equal(3 * F + 8 * F * k / d, withM.BytesPerParam, 12);
        Assert.Equal(new[] { Floors.ReadScale }, withM.Passes);
        // β1 = 0: phase 2 reads g again (the update is g·w). Per bucket: Σg² written and read, v read and written: 4 floats.
        var noM = Floors.Rotation(d, ratio, beta1Zero: true);
        Assert.Equal(4 * F + 4 * F * k / d, noM.BytesPerParam, 12);
        Assert.Equal(new[] { Floors.ReadTriad }, noM.Passes);
    }

    [Theory]
    [InlineData(1000L, 32)]
    [InlineData(1L << 24, 32)]
    public void Universal_is_the_random_floor_plus_its_bucket_update(long d, int ratio)
    {
        long k = K(d, ratio);
        // Streamed: g read, p read and written. Per bucket: the two sums read, m and v read and written, the coefficient written.
        var withM = Floors.Universal(d, ratio, beta1Zero: false);
        Assert.Equal(3 * F + (2 + 2 + 2 + 1) * F * k / d, withM.BytesPerParam, 12);
        Assert.Equal(new[] { Floors.RandomScatterGather }, withM.Passes);
        // β1 = 0: g read again in phase 2; per bucket Σg² read, v read and written, the coefficient written.
        var noM = Floors.Universal(d, ratio, beta1Zero: true);
        Assert.Equal(4 * F + (1 + 2 + 1) * F * k / d, noM.BytesPerParam, 12);
        Assert.Equal(new[] { Floors.RandomScatterGather, Floors.Read }, noM.Passes);
    }

    [Theory]
    [InlineData(16384L, 1024L)]
    [InlineData(3L, 5L)]
    public void Factored_reads_g_once_per_pass_plus_its_row_and_column_statistics(long rows, long columns)
    {
        double d = rows * columns;
        // R + C statistics: the sums written by phase 1 and read by phase 2, the EMAs read and written: 4 floats each.
        double stats = 4 * F * (rows + columns) / d;
        var plain = Floors.Factored(rows, columns, clip: false);
        Assert.Equal(4 * F + stats, plain.BytesPerParam, 12);                  // read g; then read g, read and write p
        Assert.Equal(new[] { Floors.ReadTriad }, plain.Passes);
        var clipped = Floors.Factored(rows, columns, clip: true);
        Assert.Equal(5 * F + stats, clipped.BytesPerParam, 12);                // one more read of g for RMS(u)
        Assert.Equal(new[] { Floors.ReadReadTriad }, clipped.Passes);
    }

    [Theory]
    [InlineData(16384L, 1024L, false, 128)]
    [InlineData(3L, 5L, true, 8)]
    public void The_quantised_first_moment_adds_its_codes_and_scales_to_the_factored_traffic(long rows, long columns, bool fourBit, int block)
    {
        double d = rows * columns;
        double stats = 4 * F * (rows + columns) / d;
        // Codes read and written: one byte each way at 8 bits, half a byte at 4; one fp32 scale per block read and written.
        double codes = 2 * (fourBit ? 0.5 : 1.0), scales = 2 * F / block;
        var floor = Floors.FactoredQuantized(rows, columns, fourBit, block);
        Assert.Equal(4 * F + stats + codes + scales, floor.BytesPerParam, 12);
        Assert.Equal(new[] { Floors.ReadTriad }, floor.Passes);
        // The engine's dense step: phase 1 reads g, then the fused pass of seven streams.
        var dense = Floors.DenseEngine();
        Assert.Equal(F + 7 * F, dense.BytesPerParam, 12);
        Assert.Equal(new[] { Floors.Read, Floors.DenseStream }, dense.Passes);
    }

    [Fact]
    public void A_floor_is_its_passes_medians_plus_its_bucket_traffic_at_the_triads_bandwidth()
    {
        const long D = 1000; const int Ratio = 32;
        var medians = new Dictionary<string, double>
        {
            [Floors.ReadScale.Row] = 10.0, [Floors.RandomScatterGather.Row] = 300.0, [Floors.Read.Row] = 2.5,
        };
        double? Of(string row) => medians.TryGetValue(row, out double ms) ? ms : null;
        const double TriadMs = 6.0;   // 12 B/param in 6 ms: 0.5 ms per B/param
        double bucketBytes = 32.0 * K(D, Ratio) / D;
        Assert.Equal(10.0 + bucketBytes * (TriadMs / 12), Floors.Rotation(D, Ratio, false).Milliseconds(Of, TriadMs)!.Value, 12);
        double uniBytes = 16.0 * K(D, Ratio) / D;
        Assert.Equal(300.0 + 2.5 + uniBytes * (TriadMs / 12), Floors.Universal(D, Ratio, true).Milliseconds(Of, TriadMs)!.Value, 12);
        Assert.Equal(7.0, Floors.DenseAdamW(false).Milliseconds(_ => 7.0, TriadMs));
        // A pass that was not measured in the run: no floor rather than a partial one.
        Assert.Null(Floors.Rotation(D, Ratio, beta1Zero: true).Milliseconds(Of, TriadMs));
    }

    [Fact]
    public void The_whole_models_pass_floor_weighs_each_tensors_floor_by_its_share_of_the_parameters()
    {
        // Floor kernels run over all P = 4000 parameters: read + scale 10 ms, dense stream 20 ms; triad 6 ms (0.5 ms per B/param).
        const long P = 4000; const int Ratio = 32;
        var medians = new Dictionary<string, double> { [Floors.ReadScale.Row] = 10.0, [Floors.DenseStream.Row] = 20.0 };
        double? Of(string row) => medians.TryGetValue(row, out double ms) ? ms : null;
        const double TriadMs = 6.0;
        // A Rotation tensor of 3000 entries and a dense one of 1000: each kind's floor per parameter, times its share of P.
        (long, Floor)[] tensors = [(3000, Floors.Rotation(3000, Ratio, beta1Zero: false)), (1000, Floors.DenseAdamW(beta1Zero: false))];
        double rotationMs = 10.0 + 32.0 * K(3000, Ratio) / 3000 * (TriadMs / 12);
        Assert.Equal(rotationMs * 3000 / P + 20.0 * 1000 / P, Floors.ModelPassMilliseconds(tensors, Of, TriadMs, P)!.Value, 12);
        // A pass not measured, or no tensors: no floor rather than a partial one.
        Assert.Null(Floors.ModelPassMilliseconds([(1000, Floors.DenseAdamW(beta1Zero: true))], Of, TriadMs, P));
        Assert.Null(Floors.ModelPassMilliseconds([], Of, TriadMs, P));
        Assert.Throws<ArgumentOutOfRangeException>(() => Floors.ModelPassMilliseconds(tensors, Of, TriadMs, 0));
    }

    // The GPT-2-small shapes of the whole-model bench (samples/Collins.Bench/Gpt2Small.cs), restated: 2 embeddings, 12 blocks of 4
    // matrices and 8 vectors, the final norm's 2 vectors.
    private const int Width = 768, Mlp = 3072, Vocab = 50257, Context = 1024, Layers = 12;

    private static List<TensorSpec> Gpt2SmallSpecs()
    {
        var specs = new List<TensorSpec> { new("Wte", [Vocab, Width]), new("Wpe", [Context, Width]) };
        for (int l = 0; l < Layers; l++)
        {
            specs.Add(new($"H{l}AttnW", [Width, 3 * Width])); specs.Add(new($"H{l}ProjW", [Width, Width]));
            specs.Add(new($"H{l}FcW", [Width, Mlp])); specs.Add(new($"H{l}MlpProjW", [Mlp, Width]));
            foreach (string v in new[] { "Ln1G", "Ln1B", "ProjB", "Ln2G", "Ln2B", "MlpProjB" }) specs.Add(new($"H{l}{v}", Width));
            specs.Add(new($"H{l}AttnB", 3 * Width)); specs.Add(new($"H{l}FcB", Mlp));
        }
        specs.Add(new("LnfG", Width)); specs.Add(new("LnfB", Width));
        return specs;
    }

    public static TheoryData<string> WholeModelSettings => new() { "Rotation R32", "Rotation R32 Mean b1=0", "Factored b1=0", "Factored q8 sr", "Factored q4 sr", "Factored clip all" };

    private static OptimizerSettings SettingsOf(string name) => name switch
    {
        "Rotation R32" => new() { Ratio = 32 },
        "Rotation R32 Mean b1=0" => new() { Ratio = 32, Beta1 = 0, SecondMoment = SecondMomentEstimate.Mean },
        "Factored b1=0" => new() { Beta1 = 0, SecondMoment = SecondMomentEstimate.Factored },
        "Factored q8 sr" => new() { SecondMoment = SecondMomentEstimate.Factored, FirstMoment = FirstMomentStorage.Quantized8, StochasticRounding = true },
        "Factored q4 sr" => new() { SecondMoment = SecondMomentEstimate.Factored, FirstMoment = FirstMomentStorage.Quantized4, StochasticRounding = true },
        "Factored clip all" => new() { Beta1 = 0, SecondMoment = SecondMomentEstimate.Factored, UpdateClipping = 1, DenseThreshold = 0 },
        _ => throw new ArgumentOutOfRangeException(nameof(name), name, "unknown setting"),
    };

    [Theory]
    [MemberData(nameof(WholeModelSettings))]
    public void The_whole_model_floor_is_the_sum_of_each_tensors_streams(string setting)
    {
        var settings = SettingsOf(setting);
        var plans = Gpt2SmallSpecs().Select(s => new TensorPlan(s, settings)).ToList();
        Assert.Equal(148, plans.Count);
        Assert.Equal(124_439_808L, plans.Sum(p => (long)p.Length));
        // Counted here, per tensor, from the streams of its protocol (floats of 4 B, codes in bytes): every vector is below the dense
        // threshold (4096) and takes dense AdamW's one pass; every matrix is sketched at Ratio 32 (k = d/32: every d is a multiple
        // of 768) or factored into R × C.
        double expected = 0;
        foreach (var spec in Gpt2SmallSpecs())
        {
            long d = spec.Shape.Aggregate(1L, (a, x) => a * x);
            bool vector = spec.Shape.Length == 1;
            long rows = vector ? 0 : d / spec.Shape[^1], cols = vector ? 0 : spec.Shape[^1];
            expected += setting switch
            {
                "Rotation R32" => vector ? 7 * F * d : 3 * F * d + 8 * F * (d / 32),                // g; p twice | Σσg, Σg², m, v twice each
                "Rotation R32 Mean b1=0" => vector ? 5 * F * d : 4 * F * d + 4 * F * (d / 32),      // g twice; p twice | Σg², v twice each
                "Factored b1=0" => vector ? 5 * F * d : 4 * F * d + 4 * F * (rows + cols),          // g twice; p twice | R + C sums and EMAs
                // m's codes read and written (1 or ½ B each way), one fp32 scale per 128-entry block read and written.
                "Factored q8 sr" => vector ? 7 * F * d : 4 * F * d + 4 * F * (rows + cols) + 2 * d + 2 * F * (d / 128),
                "Factored q4 sr" => vector ? 7 * F * d : 4 * F * d + 4 * F * (rows + cols) + d + 2 * F * (d / 128),
                // Every tensor factored (a vector as d × 1), update clipping's extra read of g: g three times; p twice | R + C sums and EMAs.
                "Factored clip all" => vector ? 5 * F * d + 4 * F * (d + 1) : 5 * F * d + 4 * F * (rows + cols),
                _ => throw new InvalidOperationException(setting),
            };
        }
        Assert.Equal(expected, Floors.ModelBytes(plans, settings), 6);
    }

    [Fact]
    public void A_tensors_floor_follows_the_kind_its_plan_runs()
    {
        // A sketched vector under Factored is factored as n × 1 (β1 = 0): read g twice, p twice; per entry its row statistic
        // (the sum written and read, the EMA read and written), and the one column's.
        var factored = new OptimizerSettings { Beta1 = 0, SecondMoment = SecondMomentEstimate.Factored };
        var vector = new TensorPlan(new TensorSpec("v", 8192), factored);
        Assert.Equal(4 * F + 4 * F * (8192 + 1) / 8192.0, Floors.Of(vector, factored).BytesPerParam, 12);
        // Update clipping adds the RMS(u) read of g.
        var clip = factored with { UpdateClipping = 1 };
        Assert.Equal(5 * F + 4 * F * (64 + 128) / (64.0 * 128), Floors.Of(new TensorPlan(new TensorSpec("w", [64, 128]), clip), clip).BytesPerParam, 12);
        // Universal: the random scatter+gather floor plus its bucket update.
        var universal = new OptimizerSettings { Layout = SketchLayout.Universal, Ratio = 8 };
        Assert.Equal(3 * F + 7 * F * K(10000, 8) / 10000, Floors.Of(new TensorPlan(new TensorSpec("u", 10000), universal), universal).BytesPerParam, 12);
        // A per-tensor Ratio 1 is dense: dense AdamW's one pass.
        var rotation = new OptimizerSettings();
        Assert.Equal(7 * F, Floors.Of(new TensorPlan(new TensorSpec("r", [100, 100], Ratio: 1), rotation), rotation).BytesPerParam);
    }

    [Fact]
    public void Bad_sizes_and_times_are_refused_by_name()
    {
        Assert.Equal("length", Assert.Throws<ArgumentOutOfRangeException>(() => Floors.Rotation(0, 32, false)).ParamName);
        Assert.Equal("ratio", Assert.Throws<ArgumentOutOfRangeException>(() => Floors.Universal(1000, 0, false)).ParamName);
        Assert.Equal("rows", Assert.Throws<ArgumentOutOfRangeException>(() => Floors.Factored(0, 4, false)).ParamName);
        Assert.Equal("columns", Assert.Throws<ArgumentOutOfRangeException>(() => Floors.Factored(4, 0, true)).ParamName);
        var floor = Floors.DenseAdamW(false);
        Assert.Equal("triadMs", Assert.Throws<ArgumentOutOfRangeException>(() => floor.Milliseconds(_ => 1.0, 0)).ParamName);
        Assert.Equal("triadMs", Assert.Throws<ArgumentOutOfRangeException>(() => floor.Milliseconds(_ => 1.0, double.NaN)).ParamName);
    }
}
