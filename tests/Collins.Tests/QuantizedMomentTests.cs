using Collins.Kernels;
using Collins.Reference;
using ILGPU;
using ILGPU.Runtime;
using ILGPU.Runtime.CPU;
using static Collins.Tests.Generated.GeneratedTestSupport;

namespace Collins.Tests;

/// <summary>
/// The block-quantised first moment (<see cref="FirstMomentStorage.Quantized8"/>, <see cref="FirstMomentStorage.Quantized4"/>) with the
/// factored second moment: the storage format and the random bits, the reference against the formulas, the engine against the
/// reference, determinism, state bytes, the guard, checkpoints, refusals, and the generated optimizer against the run-time one.
/// </summary>
[Trait("Category", "Kernels")]
public class QuantizedMomentTests
{
    private static readonly OptimizerSettings Q8 = Generated.QuantizedModel.Optimizer.DefaultSettings;
    private static readonly OptimizerSettings Q4 = Generated.QuantizedModel.Q4.DefaultSettings;
    private static IReadOnlyList<TensorSpec> Specs => Generated.QuantizedModel.Optimizer.TensorSpecs;

    // ------------------------------------------------------------------ storage format and random bits

    [Theory]
    [InlineData(false, 127)]
    [InlineData(true, 7)]
    public void Every_code_round_trips_at_every_entry_without_touching_another(bool fourBit, int levels)
    {
        const int block = 8, entries = 16;   // two blocks
        var codes = new byte[fourBit ? entries / 2 : entries];
        for (int q = -levels; q <= levels; q++)
            for (int i = 0; i < entries; i++)
            {
                Array.Fill(codes, (byte)0);
                BlockQuantizer.SetCode(codes, fourBit, block, i, q);
                Assert.Equal(q, BlockQuantizer.Code(codes, fourBit, block, i));
                for (int j = 0; j < entries; j++) if (j != i) Assert.Equal(0, BlockQuantizer.Code(codes, fourBit, block, j));
                Assert.True(BlockQuantizer.CodesAreValid(codes, fourBit));
            }
        Assert.False(BlockQuantizer.CodesAreValid([0x80], fourBit: false));
        Assert.False(BlockQuantizer.CodesAreValid([0x08], fourBit: true));
        Assert.False(BlockQuantizer.CodesAreValid([0x80], fourBit: true));
    }

    /// <summary>4 bits are block-planar: entry j of block b in byte b·B/2 + (j mod B/2), low nibble for j &lt; B/2.</summary>
    [Fact]
    public void Four_bit_codes_are_block_planar()
    {
        var codes = new byte[8];   // two blocks of 8
        BlockQuantizer.SetCode(codes, true, 8, 1, 3);    // block 0, low half: low nibble of byte 1
        BlockQuantizer.SetCode(codes, true, 8, 5, -2);   // block 0, high half (5 − 4 = 1): high nibble of byte 1
        BlockQuantizer.SetCode(codes, true, 8, 12, 7);   // block 1, high half: high nibble of byte 4 + 0
        Assert.Equal(new byte[] { 0, 0x3 | (0xE << 4), 0, 0, 0x70, 0, 0, 0 }, codes);
        Assert.Equal(2L * 4, BlockQuantizer.CodeBytes(true, 13, 8));   // the last block is padded to a whole block
    }

    /// <summary>
    /// The vector path (a whole block of 128) against the formula, entry by entry: q = clamp(⌊m·(Q/max|m|) + r⌋, −Q, Q) and
    /// m = q·(scale/Q), for 8 and 4 bits, to nearest and stochastically; and a partial block (the scalar path) the same way.
    /// </summary>
    [Theory]
    [InlineData(false, false)]
    [InlineData(false, true)]
    [InlineData(true, false)]
    [InlineData(true, true)]
    public void Whole_and_partial_blocks_store_the_codes_of_the_formula(bool fourBit, bool stochastic)
    {
        const int block = 128, start = 3 * block;
        int levels = fourBit ? 7 : 127;
        ulong key = BlockQuantizer.StreamKey(4, "W");
        foreach (int length in new[] { block, 77 })
        {
            var m = RandomArray(length, 21 + length, 0.02f);
            var codes = new byte[BlockQuantizer.CodeBytes(fourBit, start + block, block)];
            float scale = BlockQuantizer.Quantize(m, codes, fourBit, block, start, levels, stochastic, key, 9);
            float absmax = m.Max(MathF.Abs);
            Assert.Equal(absmax, scale);
            float inv = levels / absmax;
            var back = new float[length];
            BlockQuantizer.Dequantize(codes, fourBit, block, start, scale, levels, back);
            for (int j = 0; j < length; j++)
            {
                float r = stochastic ? BlockQuantizer.Uniform(key, 9, start + j) : 0.5f;
                int q = Math.Clamp((int)MathF.Floor(m[j] * inv + r), -levels, levels);
                Assert.True(q == BlockQuantizer.Code(codes, fourBit, block, start + j), $"length {length} entry {j}: code {BlockQuantizer.Code(codes, fourBit, block, start + j)}, formula {q}");
                Assert.Equal(q * (scale / levels), back[j]);
            }
        }
    }

    [Fact]
    public void The_random_bits_are_uniform_and_depend_on_tensor_step_and_entry()
    {
        ulong key = BlockQuantizer.StreamKey(0, "W");
        double sum = 0, squares = 0;
        const int n = 200_000;
        for (int i = 0; i < n; i++)
        {
            float u = BlockQuantizer.Uniform(key, 1 + i / 1000, i % 1000);
            Assert.InRange(u, 0f, 0.99999994f);
            sum += u;
            squares += (double)u * u;
        }
        Assert.InRange(sum / n, 0.497, 0.503);                    // mean ½ (σ of the mean ≈ 0.00065)
        Assert.InRange(squares / n - Math.Pow(sum / n, 2), 1 / 12.0 - 0.002, 1 / 12.0 + 0.002);   // variance 1/12
        Assert.Equal(BlockQuantizer.Uniform(key, 5, 17), BlockQuantizer.Uniform(key, 5, 17));
        Assert.NotEqual(BlockQuantizer.Uniform(key, 5, 17), BlockQuantizer.Uniform(key, 6, 17));
        Assert.NotEqual(BlockQuantizer.Uniform(key, 5, 17), BlockQuantizer.Uniform(key, 5, 18));
        Assert.NotEqual(BlockQuantizer.Uniform(key, 5, 17), BlockQuantizer.Uniform(BlockQuantizer.StreamKey(0, "V"), 5, 17));
        Assert.NotEqual(BlockQuantizer.Uniform(key, 5, 17), BlockQuantizer.Uniform(BlockQuantizer.StreamKey(1, "W"), 5, 17));
    }

    /// <summary>Round to nearest: ⌊y + ½⌋ of y = m·Q/max|m|; stochastic: the mean code over many steps is y (unbiased).</summary>
    [Fact]
    public void Quantize_rounds_to_nearest_or_stochastically_without_bias()
    {
        float[] m = [0.5f, -0.23f, 0.1f, 0f, 0.049f, -0.5f, 0.3f, 0.26f];   // max |m| = 0.5; y = 254·m (Q = 127)
        var codes = new byte[8];
        float scale = BlockQuantizer.Quantize(m, codes, false, 8, 0, 127, stochastic: false, 0, 1);
        Assert.Equal(0.5f, scale);
        int[] nearest = m.Select(x => (int)Math.Floor(x * 254.0 + 0.5)).ToArray();   // 127, −58, 25, 0, 12, −127, 76, 66
        Assert.Equal(nearest, Enumerable.Range(0, 8).Select(i => BlockQuantizer.Code(codes, false, 8, i)));

        var sums = new double[8];
        const int steps = 20_000;
        for (int t = 1; t <= steps; t++)
        {
            BlockQuantizer.Quantize(m, codes, true, 8, 0, 7, stochastic: true, BlockQuantizer.StreamKey(0, "x"), t);
            for (int i = 0; i < 8; i++) sums[i] += BlockQuantizer.Code(codes, true, 8, i);
        }
        for (int i = 0; i < 8; i++) Assert.Equal(m[i] * 14.0, sums[i] / steps, 1);   // y = 14·m (Q = 7), within 0.05
        Assert.Equal(0f, BlockQuantizer.Quantize(new float[8], codes, true, 8, 0, 7, true, 1, 1));
        Assert.All(Enumerable.Range(0, 8), i => Assert.Equal(0, BlockQuantizer.Code(codes, true, 8, i)));
    }

    // ------------------------------------------------------------------ plans and state bytes

    [Fact]
    public void State_bytes_are_the_scales_the_codes_and_the_factored_v()
    {
        // W 37×129 = 4773 entries: 38 blocks of 128; T folds to 6×700 = 4200: 33 blocks; B (20) is dense: 2·20 floats.
        long q8 = 4L * (37 + 129 + 38) + 4773 + 4L * (6 + 700 + 33) + 4200 + 8 * 20;
        using (var o = new CountSketchAdam(Q8, Specs)) Assert.Equal(q8, o.StateBytes);
        using (var g = new Generated.QuantizedModel.Optimizer()) Assert.Equal(q8, g.StateBytes);
        Assert.Equal(4L * (37 + 129 + 38) + 4773, Generated.QuantizedModel.Optimizer.W.StateBytes);
        // Q4, block 64: W 75 blocks of 32 bytes (the last block padded); T 66 blocks.
        long q4 = 4L * (37 + 129 + 75) + 75 * 32 + 4L * (6 + 700 + 66) + 66 * 32 + 8 * 20;
        using (var o = new CountSketchAdam(Q4, Specs)) Assert.Equal(q4, o.StateBytes);
        Assert.Equal((75, 2400), (Generated.QuantizedModel.Q4.W.QuantizedBlocks, Generated.QuantizedModel.Q4.W.CodeBytes));
        var plan = new TensorPlan(Specs[0], Q4);
        Assert.Equal((true, 75, 2400, 7, 75), (plan.IsQuantized, plan.QuantizedBlocks, plan.FirstMomentCodeBytes, plan.QuantizationLevels, plan.FirstMomentFloats));
        Assert.False(new TensorPlan(Specs[2], Q4).IsQuantized);   // the dense vector keeps exact AdamW moments
    }

    [Theory]
    [InlineData(SecondMomentEstimate.Sum, 0.9, 128, "FirstMoment")]
    [InlineData(SecondMomentEstimate.Factored, 0.0, 128, "FirstMoment")]
    [InlineData(SecondMomentEstimate.Factored, 0.9, 100, "QuantizationBlock")]
    [InlineData(SecondMomentEstimate.Factored, 0.9, 4, "QuantizationBlock")]
    [InlineData(SecondMomentEstimate.Factored, 0.9, 131072, "QuantizationBlock")]
    public void Impossible_settings_are_refused_naming_the_setting(SecondMomentEstimate estimate, double beta1, int block, string setting)
    {
        var settings = new OptimizerSettings { SecondMoment = estimate, Beta1 = beta1, FirstMoment = FirstMomentStorage.Quantized8, QuantizationBlock = block };
        Assert.Equal(setting, Assert.Throws<ArgumentException>(settings.Validate).ParamName);
    }

    /// <summary>The README's first example steps, and keeps what its comment says: m in 4-bit blocks, v factored, vectors dense.</summary>
    [Fact]
    public void The_README_example_steps_with_the_state_it_describes()
    {
        var model = new Generated.ReadmeMlp();
        using var optimizer = new Generated.ReadmeMlp.Optimizer();
        var grads = new Generated.ReadmeMlp.Optimizer.Gradients();
        for (int i = 0; i < grads.W1.Length; i++) grads.W1[i] = 1e-3f * (i % 7 - 3);
        Assert.Equal(StepOutcome.Applied, optimizer.Step(1e-3f, model, grads));
        var w1 = optimizer.Tensors[0];
        Assert.Equal((true, FirstMomentStorage.Quantized4, 128 + 784), (w1.IsQuantized, w1.FirstMoment, w1.SecondMomentFloats));
        Assert.True(optimizer.Tensors[1].IsDense && optimizer.Tensors[3].IsDense);
        Assert.True(optimizer.Tensors[2].IsQuantized);
        Assert.True(optimizer.StateBytes * 10 < optimizer.DenseAdamWStateBytes);
    }

    [Fact]
    public void Eight_bit_codes_beyond_the_largest_array_are_refused_naming_the_tensor()
    {
        var huge = new TensorSpec("Huge", new[] { 2, 1_073_741_823 });   // 2,147,483,646 entries: indexable, but not as bytes of one array
        var e = Assert.Throws<ArgumentException>(() => new TensorPlan(huge, Q8));
        Assert.Contains("'Huge'", e.Message, StringComparison.Ordinal);
        Assert.Contains("Quantized4", e.Message, StringComparison.Ordinal);
        Assert.True(new TensorPlan(huge, Q4).IsQuantized);   // 4 bits: half the bytes, fits
    }

    /// <summary>
    /// A sketched vector is factored as n rows × 1 column, so it takes the quantised first moment like a matrix: its state is its
    /// n + 1 factored floats, one scale per block and its codes, and the engine follows the reference on it (codes to within the
    /// rare neighbouring code, the rest to 1e-5).
    /// </summary>
    [Fact]
    public void A_sketched_vector_takes_the_quantised_first_moment_and_follows_the_reference()
    {
        var specs = new[] { new TensorSpec("V", 1000) };
        var plan = new TensorPlan(specs[0], Q4);
        Assert.Equal((true, true, 1000, 1), (plan.IsFactored, plan.IsQuantized, plan.FactorRows, plan.FactorColumns));
        using var engine = new CountSketchAdam(Q4, specs);
        int block = plan.QuantizationBlock, blocks = (1000 + block - 1) / block;
        Assert.Equal(4L * (1000 + 1 + blocks) + blocks * block / 2, engine.StateBytes);   // 4 bits: half a byte per entry, the last block padded
        var reference = new ReferenceOptimizer(Q4, specs);
        var pr = Parameters(specs, 3);
        var pe = Clone(pr);
        var parted = new bool[1000];
        for (int step = 1; step <= 10; step++)
        {
            var g = Gradients(specs, 3, step);
            reference.Step(1e-2f, pr, g);
            Assert.Equal(StepOutcome.Applied, engine.Step(1e-2f, pe, g));
            RecordParting(engine.Tensors[0], reference.FirstMomentCodes(0), engine.CopyFirstMomentCodes(0), parted, $"step {step}");
        }
        Assert.True(parted.Count(x => x) <= 10, $"{parted.Count(x => x)} of 1000 entries parted");
        for (int i = 0; i < 1000; i++)
            if (!parted[i]) Assert.True(Math.Abs(pr[0][i] - pe[0][i]) <= 1e-5 * Math.Max(1, Math.Abs(pr[0][i])), $"p V[{i}] {pr[0][i]} vs {pe[0][i]}");
    }

    // ------------------------------------------------------------------ the reference against the formulas

    /// <summary>
    /// Step 1 from m = 0: m = (1 − β1)·g and m/bc1 = g exactly, so the update is the factored β1 = 0 step's; the stored codes are
    /// ⌊g·Q/max|g| + ½⌋ per block and the scale (1 − β1)·max|g| (computed here from those formulas).
    /// </summary>
    [Fact]
    public void The_reference_first_step_is_the_factored_step_and_stores_the_rounded_codes()
    {
        var specs = new[] { new TensorSpec("M", new[] { 4, 6 }, Sketching: TensorSketching.Sketched) };
        var quantized = new OptimizerSettings { Beta1 = 0.9, SecondMoment = SecondMomentEstimate.Factored, FirstMoment = FirstMomentStorage.Quantized8, QuantizationBlock = 8 };
        var plain = new OptimizerSettings { Beta1 = 0, SecondMoment = SecondMomentEstimate.Factored };
        var g = RandomArray(24, 11, 0.7f);
        var p0 = RandomArray(24, 12);
        var pq = (float[])p0.Clone();
        var pp = (float[])p0.Clone();
        var rq = new ReferenceOptimizer(quantized, specs);
        rq.Step(0.05f, [pq], [g]);
        new ReferenceOptimizer(plain, specs).Step(0.05f, [pp], [g]);
        for (int i = 0; i < 24; i++) Assert.Equal(pp[i], pq[i], 6);
        var scales = rq.FirstMoment(0);
        var codes = rq.FirstMomentCodes(0);
        for (int b = 0; b < 3; b++)
        {
            double absmax = Enumerable.Range(8 * b, 8).Max(i => Math.Abs(0.1 * g[i]));
            Assert.Equal(absmax, scales[b], 6);
            for (int i = 8 * b; i < 8 * b + 8; i++)
                Assert.Equal((int)Math.Floor(0.1 * g[i] * 127 / absmax + 0.5), (sbyte)codes[i]);
        }
    }

    /// <summary>Step 2 from the stored codes, by hand: m = β1·q·s/Q + (1 − β1)·g, u = (m/bc1)/(√v̂ + ε) with the reference's own v.</summary>
    [Fact]
    public void The_reference_second_step_reads_the_dequantised_moment()
    {
        var specs = new[] { new TensorSpec("M", new[] { 2, 8 }, Sketching: TensorSketching.Sketched) };
        var settings = new OptimizerSettings { Beta1 = 0.8, SecondMoment = SecondMomentEstimate.Factored, FirstMoment = FirstMomentStorage.Quantized4, QuantizationBlock = 8 };
        var reference = new ReferenceOptimizer(settings, specs);
        var p = RandomArray(16, 1);
        reference.Step(0.01f, [p], [RandomArray(16, 2)]);
        var m1 = reference.FirstMomentValues(0);
        var before = (float[])p.Clone();
        var g2 = RandomArray(16, 3);
        reference.Step(0.01f, [p], [g2]);
        var v = reference.SecondMoment(0);
        double meanR = (v[0] + v[1]) / 2, bc1 = 1 - 0.8 * 0.8, bc2 = 1 - 0.999 * 0.999;
        for (int i = 0; i < 16; i++)
        {
            double m = 0.8 * m1[i] + 0.2 * g2[i];
            double vHat = (double)v[i / 8] * v[2 + i % 8] / meanR / bc2;
            Assert.Equal(before[i] - 0.01 * (m / bc1) / (Math.Sqrt(vHat) + 1e-8), p[i], 5);
        }
    }

    // ------------------------------------------------------------------ the engine against the reference

    public static TheoryData<string> Variants => new() { "Q8", "Q4", "Q8 stochastic", "Q4 nearest block 8", "Q8 clip", "Q4 gradient-norm clipping" };

    private static OptimizerSettings Variant(string name) => name switch
    {
        "Q8" => Q8,
        "Q4" => Q4,
        "Q8 stochastic" => Q8 with { StochasticRounding = true },
        "Q4 nearest block 8" => Q4 with { StochasticRounding = false, QuantizationBlock = 8, UpdateClipping = 0 },
        "Q8 clip" => Q8 with { UpdateClipping = 0.5 },
        "Q4 gradient-norm clipping" => Q4 with { MaxGradientNorm = 2 },   // ‖g‖ of these gradients is about 4 to 40: clipped every step
        _ => throw new ArgumentOutOfRangeException(nameof(name)),
    };

    /// <summary>
    /// Twenty steps, engine (float) against reference (double). A code is a rounding of m·Q/s, so where the two arithmetics put
    /// m on either side of a rounding boundary they store neighbouring codes, and that entry's m and p part ways for good; such
    /// entries must be rare (here under 1 %) and differ by one code when they first appear, and every other entry must agree to
    /// the usual tolerance.
    /// </summary>
    [Theory]
    [MemberData(nameof(Variants))]
    public void The_engine_follows_the_reference_for_twenty_steps(string variant)
    {
        var settings = Variant(variant);
        var reference = new ReferenceOptimizer(settings, Specs);
        using var engine = new CountSketchAdam(settings, Specs);
        var pr = Parameters(Specs, 5);
        var pe = Clone(pr);
        var parted = Specs.Select(s => new bool[s.Shape.Aggregate(1, (a, b) => a * b)]).ToArray();
        for (int step = 1; step <= 20; step++)
        {
            var g = Gradients(Specs, 5, step);
            float lr = 1e-2f / step;
            reference.Step(lr, pr, g);
            Assert.Equal(StepOutcome.Applied, engine.Step(lr, pe, g));
            for (int t = 0; t < 2; t++)
            {
                var plan = engine.Tensors[t];
                RecordParting(plan, reference.FirstMomentCodes(t), engine.CopyFirstMomentCodes(t), parted[t], $"{variant} step {step}");
            }
        }
        for (int t = 0; t < Specs.Count; t++)
        {
            int count = parted[t].Count(x => x);
            Assert.True(count <= parted[t].Length / 100, $"{variant}: {count} of {parted[t].Length} entries of {Specs[t].Name} parted");
            var rm = t < 2 ? reference.FirstMomentValues(t) : null;
            var em = t < 2 ? engine.DequantizeFirstMoment(t) : null;
            for (int i = 0; i < pr[t].Length; i++)
            {
                if (parted[t][i]) continue;
                Assert.True(Math.Abs(pr[t][i] - pe[t][i]) <= 1e-5 * Math.Max(1, Math.Abs(pr[t][i])), $"{variant}: p {Specs[t].Name}[{i}] {pr[t][i]} vs {pe[t][i]}");
                if (rm is not null)
                    Assert.True(Math.Abs(rm[i] - em![i]) <= 1e-5 * Math.Max(1e-3, Math.Abs(rm[i])), $"{variant}: m {Specs[t].Name}[{i}] {rm[i]} vs {em[i]}");
            }
            AssertClose([Specs[t]], [reference.SecondMoment(t)], [engine.CopySecondMoment(t)], 1e-5, "v");
        }
    }

    /// <summary>
    /// Marks in <paramref name="parted"/> the entries whose codes differ between two runs for the first time, checking that they
    /// differ by one code (a rounding boundary, not a bug); returns how many were marked now.
    /// </summary>
    internal static int RecordParting(TensorPlan plan, byte[] expected, byte[] actual, bool[] parted, string context)
    {
        bool fourBit = plan.FirstMoment == FirstMomentStorage.Quantized4;
        int marked = 0;
        for (int i = 0; i < plan.Length; i++)
        {
            int a = BlockQuantizer.Code(expected, fourBit, plan.QuantizationBlock, i), b = BlockQuantizer.Code(actual, fourBit, plan.QuantizationBlock, i);
            if (a == b || parted[i]) continue;
            Assert.True(Math.Abs(a - b) == 1, $"{context}: tensor {plan.Name}[{i}] codes {a} and {b}");
            parted[i] = true;
            marked++;
        }
        return marked;
    }

    [Theory]
    [MemberData(nameof(Variants))]
    public void Results_are_bit_identical_for_any_thread_count(string variant)
    {
        // A tensor of four block tiles (16384 entries each) besides the model's, so that tiles run on different threads.
        IReadOnlyList<TensorSpec> specs = [.. Specs, new TensorSpec("Big", new[] { 64, 1024 })];
        float[][] Run(int threads)
        {
            using var o = new CountSketchAdam(Variant(variant), specs) { MaxThreads = threads };
            var p = Parameters(specs, 9);
            for (int step = 1; step <= 4; step++) Assert.Equal(StepOutcome.Applied, o.Step(1e-2f, p, Gradients(specs, 9, step)));
            var codes = Enumerable.Range(0, specs.Count).Select(t => o.CopyFirstMomentCodes(t).Select(b => (float)b).ToArray());
            return [.. p, .. Enumerable.Range(0, specs.Count).Select(o.CopyFirstMoment), .. codes];
        }
        var one = Run(1);
        foreach (int threads in new[] { 2, 3 }) AssertBitIdentical(one, Run(threads));
    }

    // ------------------------------------------------------------------ extreme values

    /// <summary>
    /// mean(R) below 2.9e-39 (1 / mean(R) overflows float): rows whose EMA is 0 must not turn p into 0·∞ = NaN. One row with a
    /// 1e-20 gradient, the others 0, for Factored β1 0 and with a quantised first moment; engine, device-free reference agree.
    /// </summary>
    [Theory]
    [InlineData(FirstMomentStorage.Sketch)]
    [InlineData(FirstMomentStorage.Quantized8)]
    public void A_vanishing_row_mean_leaves_every_parameter_finite(FirstMomentStorage storage)
    {
        var specs = new[] { new TensorSpec("M", new[] { 4, 8 }, Sketching: TensorSketching.Sketched) };
        var settings = storage == FirstMomentStorage.Sketch
            ? new OptimizerSettings { Beta1 = 0, SecondMoment = SecondMomentEstimate.Factored }
            : new OptimizerSettings { SecondMoment = SecondMomentEstimate.Factored, FirstMoment = storage, QuantizationBlock = 8 };
        var g = new float[32];
        for (int c = 0; c < 8; c++) g[c] = 1e-20f;
        using var engine = new CountSketchAdam(settings, specs);
        var reference = new ReferenceOptimizer(settings, specs);
        var pe = Enumerable.Range(0, 32).Select(i => 1f + i).ToArray();
        var pr = (float[])pe.Clone();
        Assert.Equal(StepOutcome.Applied, engine.Step(1e-3f, [pe], [g]));
        reference.Step(1e-3f, [pr], [g]);
        for (int i = 0; i < 32; i++)
        {
            Assert.True(float.IsFinite(pe[i]), $"p[{i}] = {pe[i]}");
            Assert.Equal(pr[i], pe[i], 5);
        }
    }

    /// <summary>The same vanishing row mean on the device (ILGPU's CPU accelerator): every parameter finite, as on the CPU.</summary>
    [Fact]
    public void A_vanishing_row_mean_leaves_every_parameter_finite_on_the_device()
    {
        var specs = new[] { new TensorSpec("M", new[] { 4, 8 }, Sketching: TensorSketching.Sketched) };
        var g = new float[32];
        for (int c = 0; c < 8; c++) g[c] = 1e-20f;
        using var context = Context.Create(b => b.CPU());
        using var accelerator = context.CreateCPUAccelerator(0);
        foreach (var settings in new[] { new OptimizerSettings { Beta1 = 0, SecondMoment = SecondMomentEstimate.Factored },
                                         new OptimizerSettings { SecondMoment = SecondMomentEstimate.Factored, FirstMoment = FirstMomentStorage.Quantized4, QuantizationBlock = 8 } })
        {
            using var device = new CountSketchAdam(settings, specs, accelerator);
            using var p = accelerator.Allocate1D(Enumerable.Range(0, 32).Select(i => 1f + i).ToArray());
            using var gd = accelerator.Allocate1D(g);
            Assert.Equal(StepOutcome.Applied, device.Step(1e-3f, [p.View.AsContiguous()], [gd.View.AsContiguous()]));
            Assert.All(p.GetAsArray1D(), x => Assert.True(float.IsFinite(x)));
        }
    }

    /// <summary>
    /// The factored kernel's workspace stays at most 64 tiles of C column partials (plus R + C sums) for a wide matrix, instead of
    /// one tile per row; results stay those of the reference (the partition only orders the column sums).
    /// </summary>
    [Fact]
    public void A_wide_matrix_keeps_a_bounded_workspace_and_follows_the_reference()
    {
        var spec = new TensorSpec("Wide", new[] { 300, 20_000 });   // C > ElementTile: one row per tile before
        var settings = new OptimizerSettings { Beta1 = 0, SecondMoment = SecondMomentEstimate.Factored };
        var plan = new TensorPlan(spec, settings);
        var kernel = new FactoredCpuKernel(plan, settings);
        Assert.True(kernel.WorkspaceFloats <= FactoredCpuKernel.MaxRowTiles * 20_000L + 300 + 20_000, $"{kernel.WorkspaceFloats} floats");
        using var engine = new CountSketchAdam(settings, [spec]);
        var reference = new ReferenceOptimizer(settings, [spec]);
        var pe = Parameters([spec], 2);
        var pr = Clone(pe);
        for (int step = 1; step <= 2; step++)
        {
            var g = Gradients([spec], 2, step);
            Assert.Equal(StepOutcome.Applied, engine.Step(1e-2f, pe, g));
            reference.Step(1e-2f, pr, g);
        }
        AssertClose([spec], pr, pe, 1e-5, "wide");
    }

    /// <summary>A block whose max |m| is below Q / float.MaxValue is stored as 0 (scale 0, codes 0), by the kernel and the reference alike.</summary>
    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void A_block_too_small_for_its_scale_is_stored_as_zero(bool fourBit)
    {
        int levels = fourBit ? 7 : 127;
        var m = RandomArray(128, 3, 1e-38f);
        var codes = new byte[BlockQuantizer.CodeBytes(fourBit, 128, 128)];
        Assert.Equal(0f, BlockQuantizer.Quantize(m, codes, fourBit, 128, 0, levels, stochastic: false, 0, 1));
        Assert.All(codes, b => Assert.Equal(0, b));
        var bigger = RandomArray(128, 3, 1e-30f);   // well above the threshold: ordinary codes
        Assert.NotEqual(0f, BlockQuantizer.Quantize(bigger, codes, fourBit, 128, 0, levels, stochastic: false, 0, 1));
        Assert.Contains(codes, b => b != 0);
    }

    // ------------------------------------------------------------------ guard, checkpoints, the generated optimizer

    [Theory]
    [InlineData(float.NaN)]
    [InlineData(2e19f)]
    public void A_non_finite_gradient_changes_nothing(float bad)
    {
        using var o = new CountSketchAdam(Q4, Specs);
        var p = Parameters(Specs, 3);
        o.Step(1e-2f, p, Gradients(Specs, 3, 1));
        var before = Clone(p);
        var scales = Enumerable.Range(0, Specs.Count).Select(o.CopyFirstMoment).ToArray();
        var codes = Enumerable.Range(0, Specs.Count).Select(o.CopyFirstMomentCodes).ToArray();
        var g = Gradients(Specs, 3, 2);
        g[1][4000] = bad;
        Assert.Equal(StepOutcome.SkippedNonFinite, o.Step(1e-2f, p, g));
        AssertBitIdentical(before, p);
        AssertBitIdentical(scales, Enumerable.Range(0, Specs.Count).Select(o.CopyFirstMoment).ToArray());
        for (int t = 0; t < Specs.Count; t++) Assert.Equal(codes[t], o.CopyFirstMomentCodes(t));
        Assert.Equal(("T", 4000L), (o.LastNonFinite!.Value.TensorName, o.LastNonFinite!.Value.ElementIndex));
    }

    [Fact]
    public void Moments_and_parameters_stay_finite_under_extreme_gradients()
    {
        using var o = new CountSketchAdam(Q4, Specs);
        var p = Parameters(Specs, 8);
        for (int step = 1; step <= 6; step++)
        {
            var g = Gradients(Specs, 8, step);
            foreach (var x in g) for (int i = 0; i < x.Length; i += 7) x[i] = step % 2 == 0 ? 1e17f : 1e-30f;
            Assert.Equal(StepOutcome.Applied, o.Step(1e-3f, p, g));
        }
        Assert.All(p.SelectMany(x => x), x => Assert.True(float.IsFinite(x)));
        for (int t = 0; t < 2; t++) Assert.All(o.DequantizeFirstMoment(t), x => Assert.True(float.IsFinite(x)));
    }

    [Fact]
    public void A_checkpoint_is_version_2_and_continues_exactly()
    {
        using var a = new CountSketchAdam(Q4, Specs);
        var pa = Parameters(Specs, 4);
        for (int step = 1; step <= 3; step++) a.Step(1e-2f, pa, Gradients(Specs, 4, step));
        var stream = new MemoryStream();
        a.Save(stream);
        Assert.Equal(2, BitConverter.ToInt32(stream.ToArray(), 8));
        using var b = new CountSketchAdam(Q4, Specs);
        stream.Position = 0;
        b.Load(stream);
        var pb = Clone(pa);
        for (int step = 4; step <= 6; step++)
        {
            a.Step(1e-2f, pa, Gradients(Specs, 4, step));
            b.Step(1e-2f, pb, Gradients(Specs, 4, step));
        }
        AssertBitIdentical(pa, pb);
        for (int t = 0; t < Specs.Count; t++) Assert.Equal(a.CopyFirstMomentCodes(t), b.CopyFirstMomentCodes(t));

        // Another storage or block is another plan; an optimizer without a quantised moment still writes version 1.
        stream.Position = 0;
        using var other = new CountSketchAdam(Q4 with { QuantizationBlock = 128 }, Specs);
        var e = Assert.Throws<CheckpointMismatchException>(() => other.Load(stream));
        Assert.Contains("quantisation block 64 in file, 128 in optimizer", e.Message, StringComparison.Ordinal);
        stream.Position = 0;
        using var eight = new CountSketchAdam(Q8, Specs);
        Assert.Contains("first-moment storage Quantized4 in file, Quantized8 in optimizer",
                        Assert.Throws<CheckpointMismatchException>(() => eight.Load(stream)).Message, StringComparison.Ordinal);
        // A quantised setting whose tensors are all dense still writes version 2 and loads its own file.
        var denseOnly = new[] { new TensorSpec("b", 20), new TensorSpec("w", new[] { 4, 5 }) };
        using var dense = new CountSketchAdam(Q8, denseOnly);
        var own = new MemoryStream();
        dense.Save(own);
        Assert.Equal(2, BitConverter.ToInt32(own.ToArray(), 8));
        own.Position = 0;
        dense.Load(own);
        using var plain = new CountSketchAdam(new OptimizerSettings { Beta1 = 0, SecondMoment = SecondMomentEstimate.Factored, DenseThreshold = 100 }, Specs);
        var ms = new MemoryStream();
        plain.Save(ms);
        Assert.Equal(1, BitConverter.ToInt32(ms.ToArray(), 8));
    }

    [Fact]
    public void A_checkpoint_with_an_impossible_code_is_refused_naming_the_tensor()
    {
        using var a = new CountSketchAdam(Q8, Specs);
        var p = Parameters(Specs, 4);
        a.Step(1e-2f, p, Gradients(Specs, 4, 1));
        var stream = new MemoryStream();
        a.Save(stream);
        byte[] data = stream.ToArray();
        // The last tensor's codes are empty (dense); T's codes end right before B's two moments (i32 + 80 bytes each) and its
        // own empty code array (i32): the byte before those is T's last code.
        int last = data.Length - 8 - (4 + 0) - 2 * (4 + 80) - 4 - 1;
        data[last] = 0x80;
        CheckpointTests.Reseal(data);
        var e = Assert.Throws<CheckpointFormatException>(() => a.Load(new MemoryStream(data)));
        Assert.Contains("tensor 'T' first-moment codes", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void The_generated_optimizers_are_bit_identical_to_the_run_time_ones()
    {
        foreach (var (settings, make) in new (OptimizerSettings, Func<SketchedOptimizerBase>)[]
                 { (Q8, () => new Generated.QuantizedModel.Optimizer()), (Q4, () => new Generated.QuantizedModel.Q4()) })
        {
            using var generated = make();
            using var runtime = new CountSketchAdam(settings, Specs);
            var model = new Generated.QuantizedModel();
            var p = Parameters(Specs, 6);
            p[0].CopyTo(model.W, 0); p[1].CopyTo(model.T, 0); p[2].CopyTo(model.B, 0);
            for (int step = 1; step <= 8; step++)
            {
                var g = Gradients(Specs, 6, step);
                var outcome = generated switch
                {
                    Generated.QuantizedModel.Optimizer o => o.Step(1e-2f, model.W, g[0], model.T, g[1], model.B, g[2]),
                    Generated.QuantizedModel.Q4 o => o.Step(1e-2f, model.W, g[0], model.T, g[1], model.B, g[2]),
                    _ => throw new InvalidOperationException(),
                };
                Assert.Equal(StepOutcome.Applied, outcome);
                Assert.Equal(StepOutcome.Applied, runtime.Step(1e-2f, p, g));
            }
            AssertBitIdentical(p, [model.W, model.T, model.B]);
            for (int t = 0; t < 2; t++) Assert.Equal(runtime.CopyFirstMomentCodes(t), generated.CopyFirstMomentCodes(t));
        }
    }
}
