using Collins;

namespace QuickStart;

/// <summary>
/// A two-layer perceptron, y = W2·relu(W1·x + B1) + B2. Each attribute asks the Collins generator for an optimizer
/// specialised to these four tensors, a nested type of this class (see obj/.../generated for the emitted source):
/// <c>TinyMlp.Optimizer</c>, the seed's Count-Sketch Adam at Ratio 8, and <c>TinyMlp.Recommended</c>, the setting the README
/// recommends at about 0.14 B/param (β1 = 0, Adafactor's factored second moment and update clipping, every tensor factored).
/// </summary>
[SketchedOptimizer(Ratio = 8, Beta1 = 0.9, WeightDecay = 1e-4, DenseThreshold = 1024)]
[SketchedOptimizer(Name = "Recommended", Beta1 = 0, SecondMoment = SecondMomentEstimate.Factored, UpdateClipping = 1, DenseThreshold = 0, WeightDecay = 1e-4)]
public sealed partial class TinyMlp
{
    public const int Inputs = 128, Hidden = 64, Outputs = 4;

    [Tensor(Hidden, Inputs)] public float[] W1 = new float[Hidden * Inputs];   // 8192 entries: sketched, 1024 buckets
    [Tensor(Hidden)] public float[] B1 = new float[Hidden];                    // below DenseThreshold: exact AdamW
    [Tensor(Outputs, Hidden)] public float[] W2 = new float[Outputs * Hidden]; // 256 entries: dense
    [Tensor(Outputs)] public float[] B2 = new float[Outputs];

    public float[] GW1 = new float[Hidden * Inputs], GB1 = new float[Hidden], GW2 = new float[Outputs * Hidden], GB2 = new float[Outputs];

    /// <summary>Random initialisation scaled by 1/√fan-in.</summary>
    public void Initialise(Random rng)
    {
        Fill(W1, rng, 1f / MathF.Sqrt(Inputs));
        Fill(W2, rng, 1f / MathF.Sqrt(Hidden));
    }

    public static void Fill(float[] a, Random rng, float scale)
    {
        for (int i = 0; i < a.Length; i++) a[i] = (float)(rng.NextDouble() * 2 - 1) * scale;
    }

    /// <summary>Forward pass for one input; <paramref name="hidden"/> receives the post-ReLU activations.</summary>
    public void Forward(ReadOnlySpan<float> x, Span<float> hidden, Span<float> y)
    {
        for (int h = 0; h < Hidden; h++)
        {
            float s = B1[h];
            var row = W1.AsSpan(h * Inputs, Inputs);
            for (int i = 0; i < Inputs; i++) s += row[i] * x[i];
            hidden[h] = MathF.Max(s, 0f);
        }
        for (int o = 0; o < Outputs; o++)
        {
            float s = B2[o];
            for (int h = 0; h < Hidden; h++) s += W2[o * Hidden + h] * hidden[h];
            y[o] = s;
        }
    }

    /// <summary>Loss ½·mean‖y − t‖² over the batch and its gradients (written into the G* buffers).</summary>
    public double LossAndGradients(float[][] inputs, float[][] targets)
    {
        Array.Clear(GW1); Array.Clear(GB1); Array.Clear(GW2); Array.Clear(GB2);
        Span<float> hidden = stackalloc float[Hidden], y = stackalloc float[Outputs], dy = stackalloc float[Outputs], dh = stackalloc float[Hidden];
        double loss = 0;
        float inv = 1f / inputs.Length;
        for (int n = 0; n < inputs.Length; n++)
        {
            var x = inputs[n];
            Forward(x, hidden, y);
            for (int o = 0; o < Outputs; o++)
            {
                float e = y[o] - targets[n][o];
                loss += 0.5 * e * e;
                dy[o] = e * inv;
                GB2[o] += dy[o];
                for (int h = 0; h < Hidden; h++) GW2[o * Hidden + h] += dy[o] * hidden[h];
            }
            for (int h = 0; h < Hidden; h++)
            {
                float s = 0;
                for (int o = 0; o < Outputs; o++) s += W2[o * Hidden + h] * dy[o];
                dh[h] = hidden[h] > 0 ? s : 0f;
                GB1[h] += dh[h];
                if (dh[h] == 0) continue;
                var row = GW1.AsSpan(h * Inputs, Inputs);
                for (int i = 0; i < Inputs; i++) row[i] += dh[h] * x[i];
            }
        }
        return loss / inputs.Length;
    }
}
