namespace Collins.Reference;

/// <summary>
/// The Count-Sketch Adam algorithm of DEVELOPERS.md written as plainly as possible: scalar loops,
/// arithmetic in <see cref="double"/>, moments stored as <see cref="float"/> (as the kernels store
/// them). It is the oracle every optimized implementation (the run-time <see cref="CountSketchAdam"/>
/// and the generated optimizers) is tested against; it is not meant to be fast.
/// </summary>
/// <remarks>
/// Per tensor and step t (1-based), with bc1 = 1 − β1^t (1 when β1 = 0) and bc2 = 1 − β2^t:
/// <list type="number">
/// <item>Sketch update: sumM[b] = Σ_{h1(i)=b} h2(i)·g[i], sumV[b] = Σ_{h1(i)=b} g[i]² (in double);
/// m[b] ← β1·m[b] + (1−β1)·sumM[b]; v[b] ← β2·v[b] + (1−β2)·sumV[b].</item>
/// <item>Recovery: m̂[i] = h2(i)·m[h1(i)]/bc1 (m̂[i] = g[i] when β1 = 0, no first-moment sketch);
/// v̂[i] = v[h1(i)]/bc2, divided by the bucket's occupancy for <see cref="SecondMomentEstimate.Mean"/>.</item>
/// <item>Update: p[i] ← p[i] − lr·wd·p[i] − lr·m̂[i]/(√v̂[i] + ε).</item>
/// </list>
/// Dense tensors (<see cref="TensorPlan.IsDense"/>) use h1(i) = i, h2(i) = +1, which is exact AdamW.
/// A factored tensor (<see cref="TensorPlan.IsFactored"/>, β1 = 0) viewed as R × C keeps v as R row and C column EMAs:
/// R[r] ← β2·R[r] + (1−β2)·mean_c g[r, c]², C[c] ← β2·C[c] + (1−β2)·mean_r g[r, c]², v̂[r, c] = R[r]·C[c] / mean(R) / bc2
/// (0 when mean(R) is 0; with the β2 schedule c: β2 = 1 − t^−c and bc2 = 1), u = g/(√v̂ + ε), with update clipping d &gt; 0 u ← u / max(1, RMS(u)/d), and p ← p − lr·wd·p − lr·u.
/// With a quantised first moment (<see cref="TensorPlan.IsQuantized"/>, factored tensors with β1 &gt; 0), per block of B entries with
/// codes q and scale s: m[i] = q[i]·s/Q, m[i] ← β1·m[i] + (1−β1)·g[i], u = (m/bc1)/(√v̂ + ε) (then update clipping as above),
/// p ← p − lr·wd·p − lr·u; the block is stored again with s = max |m| and q[i] = clamp(⌊m[i]·Q/s + r⌋, −Q, Q) (s = 0 and every
/// q = 0 when s &lt; Q / float.MaxValue, where Q / s would not be a float), r = ½ or, with
/// stochastic rounding, the counter-based r of <c>BlockQuantizer.Uniform</c> (the storage format and the random bits are
/// definitions shared with the kernels; the arithmetic here is its own, in double).
/// Global gradient-norm clipping (<see cref="OptimizerSettings.MaxGradientNorm"/> = c_max &gt; 0) as clip_grad_norm_: ‖g‖ = √(Σ over
/// every tensor of Σ g²) in double, and when c_max / (‖g‖ + 1e-6) is below 1 each gradient is replaced by s·g with s that
/// coefficient rounded to float (s = 1 otherwise). Sketch sums are formed from g and scaled once: s·sumM, and (s·s)·sumV with
/// s·s rounded to float, as the engine does; every g read directly (m̂ = g when β1 = 0, the factored u) is s·g.
/// The reference has no non-finite guard: it applies whatever the formulas give.
/// </remarks>
public sealed class ReferenceOptimizer
{
    private readonly OptimizerSettings _settings;
    private readonly TensorPlan[] _plans;
    private readonly float[][] _m;
    private readonly float[][] _v;
    private readonly int[]?[] _occupancy;
    private readonly byte[][] _codes;

    public ReferenceOptimizer(OptimizerSettings settings, IReadOnlyList<TensorSpec> tensors)
    {
        ArgumentNullException.ThrowIfNull(settings);
        ArgumentNullException.ThrowIfNull(tensors);
        settings.Validate();
        _settings = settings;
        _plans = tensors.Select(t => new TensorPlan(t, settings)).ToArray();
        _m = new float[_plans.Length][];
        _v = new float[_plans.Length][];
        _occupancy = new int[]?[_plans.Length];
        _codes = new byte[_plans.Length][];
        for (int t = 0; t < _plans.Length; t++)
        {
            var plan = _plans[t];
            _m[t] = plan.HasFirstMoment ? new float[plan.FirstMomentFloats] : Array.Empty<float>();
            _codes[t] = new byte[plan.FirstMomentCodeBytes];
            _v[t] = new float[plan.SecondMomentFloats];
            if (!plan.IsDense && plan.SecondMoment == SecondMomentEstimate.Mean) _occupancy[t] = plan.Occupancy();
        }
    }

    /// <summary>One plan per tensor, in the order given.</summary>
    public IReadOnlyList<TensorPlan> Tensors => _plans;

    /// <summary>Number of steps taken, t.</summary>
    public int StepCount { get; private set; }

    /// <summary>Takes one step on every tensor.</summary>
    public void Step(float learningRate, IReadOnlyList<float[]> parameters, IReadOnlyList<float[]> gradients)
    {
        ArgumentNullException.ThrowIfNull(parameters);
        ArgumentNullException.ThrowIfNull(gradients);
        if (parameters.Count != _plans.Length || gradients.Count != _plans.Length)
            throw new ArgumentException($"Expected {_plans.Length} parameter and gradient buffers, got {parameters.Count} and {gradients.Count}.");
        for (int t = 0; t < _plans.Length; t++)
            if (parameters[t].Length != _plans[t].Length || gradients[t].Length != _plans[t].Length)
                throw new ArgumentException($"Tensor '{_plans[t].Name}': expected {_plans[t].Length} elements, got {parameters[t].Length} parameters and {gradients[t].Length} gradients.");

        int step = StepCount + 1;
        double beta1 = _settings.Beta1, beta2 = _settings.Beta2, eps = _settings.Epsilon, wd = _settings.WeightDecay;
        double lr = learningRate;
        double bc1 = beta1 == 0 ? 1.0 : 1.0 - Math.Pow(beta1, step);
        double bc2 = 1.0 - Math.Pow(beta2, step);
        float scale = ClipScale(gradients, _settings.MaxGradientNorm);
        double gs = scale, gs2 = scale * scale;   // s, and s·s rounded to float

        for (int t = 0; t < _plans.Length; t++)
        {
            var plan = _plans[t];
            float[] p = parameters[t], g = gradients[t], m = _m[t], v = _v[t];
            int d = plan.Length, k = plan.Buckets;
            if (plan.IsFactored)
            {
                double schedule = _settings.Beta2Schedule;   // β̂2 = 1 − t^−c, no bias correction
                var quantized = plan.IsQuantized ? new QuantizedMoment(plan, m, _codes[t], beta1, bc1, _settings.StochasticRounding,
                                                                       Kernels.BlockQuantizer.StreamKey(_settings.Seed, plan.Name), step) : null;
                FactoredStep(plan, p, g, v, lr, wd, schedule > 0 ? 1.0 - Math.Pow(step, -schedule) : beta2, eps, schedule > 0 ? 1.0 : bc2, _settings.UpdateClipping, gs, gs2, quantized);
                continue;
            }

            // 1. Sketch update (for a dense tensor h1(i) = i and h2(i) = 1, so this is AdamW's moment update).
            var sumM = new double[k];
            var sumV = new double[k];
            for (int i = 0; i < d; i++)
            {
                int b = plan.Bucket(i);
                sumM[b] += plan.Sign(i) * (double)g[i];
                sumV[b] += (double)g[i] * g[i];
            }
            for (int b = 0; b < k; b++)
            {
                if (plan.HasFirstMoment) m[b] = (float)(beta1 * m[b] + (1.0 - beta1) * (gs * sumM[b]));
                v[b] = (float)(beta2 * v[b] + (1.0 - beta2) * (gs2 * sumV[b]));
            }

            // 2. Recovery and 3. parameter update.
            int[]? occupancy = _occupancy[t];
            for (int i = 0; i < d; i++)
            {
                int b = plan.Bucket(i);
                double mHat = plan.HasFirstMoment ? plan.Sign(i) * (double)m[b] / bc1 : gs * g[i];
                double vHat = v[b] / bc2;
                if (occupancy is not null) vHat /= occupancy[b];
                double pi = p[i];
                p[i] = (float)(pi - lr * wd * pi - lr * mHat / (Math.Sqrt(vHat) + eps));
            }
        }
        StepCount = step;
    }

    /// <summary>clip_grad_norm_'s factor s over all the gradients (1 when <paramref name="maxNorm"/> is 0 or the norm is within it).</summary>
    private static float ClipScale(IReadOnlyList<float[]> gradients, double maxNorm)
    {
        if (maxNorm == 0) return 1f;
        double squares = 0;
        foreach (var g in gradients)
            foreach (float x in g) squares += (double)x * x;
        double coefficient = maxNorm / (Math.Sqrt(squares) + 1e-6);
        return coefficient < 1 ? (float)coefficient : 1f;
    }

    /// <summary>A quantised first moment of one tensor for one step: its state and what its formulas need.</summary>
    private sealed record QuantizedMoment(TensorPlan Plan, float[] Scales, byte[] Codes, double Beta1, double Bc1, bool Stochastic, ulong Key, int Step)
    {
        private bool FourBit => Plan.FirstMoment == FirstMomentStorage.Quantized4;

        /// <summary>m of every entry from the stored codes and scales: q·s/Q.</summary>
        public double[] Read()
        {
            var m = new double[Plan.Length];
            for (int i = 0; i < m.Length; i++)
                m[i] = Kernels.BlockQuantizer.Code(Codes, FourBit, Plan.QuantizationBlock, i) * (double)Scales[i / Plan.QuantizationBlock] / Plan.QuantizationLevels;
            return m;
        }

        /// <summary>Stores <paramref name="m"/> block by block: s = max |m|, q = clamp(⌊m·Q/s + r⌋, −Q, Q).</summary>
        public void Write(double[] m)
        {
            int block = Plan.QuantizationBlock, levels = Plan.QuantizationLevels;
            for (int b = 0; b < Plan.QuantizedBlocks; b++)
            {
                int start = b * block, end = Math.Min(start + block, m.Length);
                double absmax = 0;
                for (int i = start; i < end; i++) absmax = Math.Max(absmax, Math.Abs(m[i]));
                if (absmax < levels / (double)float.MaxValue) absmax = 0;   // too small for a float Q / max: stored as 0
                Scales[b] = (float)absmax;
                for (int i = start; i < end; i++)
                {
                    double r = Stochastic ? Kernels.BlockQuantizer.Uniform(Key, Step, i) : 0.5;
                    int q = absmax == 0 ? 0 : (int)Math.Clamp(Math.Floor(m[i] * levels / absmax + r), -levels, levels);
                    Kernels.BlockQuantizer.SetCode(Codes, FourBit, block, i, q);
                }
            }
        }
    }

    /// <summary>
    /// The factored estimate of one tensor, from its formulas (see the remarks); <paramref name="gs"/> is the gradient-norm clipping
    /// factor s, <paramref name="gs2"/> s·s; <paramref name="quantized"/> the tensor's quantised first moment, or null (m̂ = s·g).
    /// </summary>
    private static void FactoredStep(TensorPlan plan, float[] p, float[] g, float[] v, double lr, double wd, double beta2, double eps, double bc2, double clip,
                                     double gs, double gs2, QuantizedMoment? quantized)
    {
        // With a quantised first moment, m ← β1·m + (1 − β1)·s·g from the stored m, and the update reads m/bc1 instead of s·g.
        double[]? m = quantized?.Read();
        if (m is not null)
            for (int i = 0; i < m.Length; i++) m[i] = quantized!.Beta1 * m[i] + (1.0 - quantized.Beta1) * (gs * g[i]);
        int rows = plan.FactorRows, cols = plan.FactorColumns;
        for (int r = 0; r < rows; r++)
        {
            double sum = 0;
            for (int c = 0; c < cols; c++) sum += (double)g[r * cols + c] * g[r * cols + c];
            v[r] = (float)(beta2 * v[r] + (1.0 - beta2) * (gs2 * sum / cols));
        }
        for (int c = 0; c < cols; c++)
        {
            double sum = 0;
            for (int r = 0; r < rows; r++) sum += (double)g[r * cols + c] * g[r * cols + c];
            v[rows + c] = (float)(beta2 * v[rows + c] + (1.0 - beta2) * (gs2 * sum / rows));
        }
        double meanR = 0;
        for (int r = 0; r < rows; r++) meanR += v[r];
        meanR /= rows;
        var u = new double[rows * cols];
        double squares = 0;
        for (int r = 0; r < rows; r++)
            for (int c = 0; c < cols; c++)
            {
                int i = r * cols + c;
                double vHat = meanR > 0 ? (double)v[r] * v[rows + c] / meanR / bc2 : 0;
                u[i] = (m is null ? gs * g[i] : m[i] / quantized!.Bc1) / (Math.Sqrt(vHat) + eps);
                squares += u[i] * u[i];
            }
        // Update clipping (Adafactor): u ← u / max(1, RMS(u) / d).
        double scale = clip > 0 ? 1.0 / Math.Max(1.0, Math.Sqrt(squares / u.Length) / clip) : 1.0;
        for (int i = 0; i < u.Length; i++)
        {
            double pi = p[i];
            p[i] = (float)(pi - lr * wd * pi - lr * scale * u[i]);
        }
        if (m is not null) quantized!.Write(m);
    }

    /// <summary>
    /// Tensor <paramref name="tensor"/>'s quantised first moment, one value per entry, as the next step reads it (q·s/Q; empty
    /// unless the tensor's m is quantised).
    /// </summary>
    public float[] FirstMomentValues(int tensor)
    {
        var plan = _plans[tensor];
        if (!plan.IsQuantized) return Array.Empty<float>();
        var values = new QuantizedMoment(plan, _m[tensor], _codes[tensor], 0, 1, false, 0, 0).Read();
        return values.Select(x => (float)x).ToArray();
    }

    /// <summary>A copy of tensor <paramref name="tensor"/>'s quantised first-moment codes (empty unless quantised).</summary>
    public byte[] FirstMomentCodes(int tensor) => (byte[])_codes[tensor].Clone();

    /// <summary>A copy of tensor <paramref name="tensor"/>'s first-moment sketch m (k floats; the block scales when quantised; empty when β1 = 0).</summary>
    public float[] FirstMoment(int tensor) => (float[])_m[tensor].Clone();

    /// <summary>A copy of tensor <paramref name="tensor"/>'s second moment v (k floats; R + C when factored, rows first).</summary>
    public float[] SecondMoment(int tensor) => (float[])_v[tensor].Clone();
}
