namespace Collins.Reference;

/// <summary>
/// Textbook AdamW with PyTorch's semantics (decoupled weight decay), scalar, state in double:
/// p ← p − lr·wd·p; m ← β1·m + (1−β1)·g; v ← β2·v + (1−β2)·g²;
/// p ← p − lr·(m/(1−β1^t)) / (√(v/(1−β2^t)) + ε).
/// Independent of the Count-Sketch code (no plans, no hashes): the bar the sketched optimizers meet at Ratio 1.
/// </summary>
public sealed class DenseAdamWReference
{
    private readonly double[][] _m;
    private readonly double[][] _v;

    /// <summary>AdamW over tensors of the given lengths.</summary>
    public DenseAdamWReference(IReadOnlyList<int> lengths, double beta1 = 0.9, double beta2 = 0.999, double epsilon = 1e-8, double weightDecay = 0)
    {
        ArgumentNullException.ThrowIfNull(lengths);
        Beta1 = beta1; Beta2 = beta2; Epsilon = epsilon; WeightDecay = weightDecay;
        _m = lengths.Select(n => new double[n]).ToArray();
        _v = lengths.Select(n => new double[n]).ToArray();
    }

    /// <summary>AdamW with the β1, β2, ε and weight decay of <paramref name="settings"/> (ratio, layout and hashes are ignored).</summary>
    public DenseAdamWReference(OptimizerSettings settings, IReadOnlyList<int> lengths)
        : this(lengths, settings.Beta1, settings.Beta2, settings.Epsilon, settings.WeightDecay) { }

    public double Beta1 { get; }
    public double Beta2 { get; }
    public double Epsilon { get; }
    public double WeightDecay { get; }
    public int StepCount { get; private set; }

    public void Step(float learningRate, IReadOnlyList<float[]> parameters, IReadOnlyList<float[]> gradients)
    {
        if (parameters.Count != _m.Length || gradients.Count != _m.Length)
            throw new ArgumentException($"Expected {_m.Length} parameter and gradient buffers.");
        int t = ++StepCount;
        double lr = learningRate;
        double bc1 = 1.0 - Math.Pow(Beta1, t);
        double bc2 = 1.0 - Math.Pow(Beta2, t);
        for (int n = 0; n < _m.Length; n++)
        {
            float[] p = parameters[n], g = gradients[n];
            double[] m = _m[n], v = _v[n];
            if (p.Length != m.Length || g.Length != m.Length) throw new ArgumentException($"Tensor {n}: expected {m.Length} elements.");
            for (int i = 0; i < p.Length; i++)
            {
                double pi = p[i];
                pi -= lr * WeightDecay * pi;
                m[i] = Beta1 * m[i] + (1.0 - Beta1) * g[i];
                v[i] = Beta2 * v[i] + (1.0 - Beta2) * (double)g[i] * g[i];
                double mHat = m[i] / bc1;
                double vHat = v[i] / bc2;
                pi -= lr * mHat / (Math.Sqrt(vHat) + Epsilon);
                p[i] = (float)pi;
            }
        }
    }

    public double[] FirstMoment(int tensor) => (double[])_m[tensor].Clone();
    public double[] SecondMoment(int tensor) => (double[])_v[tensor].Clone();
}
