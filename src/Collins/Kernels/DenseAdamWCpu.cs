using System.Numerics;

namespace Collins.Kernels;

/// <summary>
/// Dense fused AdamW on the CPU: the kernel for dense tensors (Ratio 1, small tensors) and the bar
/// the sketched kernels are measured against. One pass: reads p, g, m, v; writes p, m, v.
/// </summary>
public static class DenseAdamWCpu
{
    /// <summary>True when every gradient value is finite.</summary>
    public static bool AllFinite(ReadOnlySpan<float> gradient)
    {
        int i = 0;
        if (Vector.IsHardwareAccelerated)
        {
            var acc = Vector<float>.Zero;
            for (; i <= gradient.Length - Vector<float>.Count; i += Vector<float>.Count)
                acc += new Vector<float>(gradient.Slice(i)) * Vector<float>.Zero; // NaN/Inf · 0 = NaN
            if (!Vector.EqualsAll(acc, acc)) return false;
        }
        for (; i < gradient.Length; i++) if (!float.IsFinite(gradient[i])) return false;
        return true;
    }

    /// <summary>
    /// One AdamW step over a slice: m ← β1·m + (1−β1)·g; v ← β2·v + (1−β2)·g²;
    /// p ← p·decay − lr·(m·invBc1)/(√v·invSqrtBc2 + ε). When <paramref name="firstMoment"/> is empty (β1 = 0), m̂ = g.
    /// </summary>
    public static void Step(Span<float> parameters, ReadOnlySpan<float> gradient, Span<float> firstMoment, Span<float> secondMoment,
                            in StepScalars s, float beta1, float beta2, float epsilon)
    {
        bool hasM = firstMoment.Length != 0;
        float lr = s.LearningRate, decay = s.Decay, ib1 = s.InvBiasCorrection1, isb2 = s.InvSqrtBiasCorrection2;
        float c1 = 1f - beta1, c2 = 1f - beta2;
        int i = 0;
        if (Vector.IsHardwareAccelerated)
        {
            int w = Vector<float>.Count;
            var vb1 = new Vector<float>(beta1); var vc1 = new Vector<float>(c1);
            var vb2 = new Vector<float>(beta2); var vc2 = new Vector<float>(c2);
            var vlr = new Vector<float>(lr); var vdecay = new Vector<float>(decay);
            var vib1 = new Vector<float>(ib1); var visb2 = new Vector<float>(isb2); var veps = new Vector<float>(epsilon);
            for (; i <= parameters.Length - w; i += w)
            {
                var g = new Vector<float>(gradient.Slice(i));
                var v = vb2 * new Vector<float>(secondMoment.Slice(i)) + vc2 * g * g;
                v.CopyTo(secondMoment.Slice(i));
                Vector<float> mhat;
                if (hasM)
                {
                    var m = vb1 * new Vector<float>(firstMoment.Slice(i)) + vc1 * g;
                    m.CopyTo(firstMoment.Slice(i));
                    mhat = m * vib1;
                }
                else mhat = g;
                var p = new Vector<float>(parameters.Slice(i)) * vdecay - vlr * mhat / (Vector.SquareRoot(v) * visb2 + veps);
                p.CopyTo(parameters.Slice(i));
            }
        }
        for (; i < parameters.Length; i++)
        {
            float g = gradient[i];
            float v = beta2 * secondMoment[i] + c2 * g * g;
            secondMoment[i] = v;
            float mhat;
            if (hasM) { float m = beta1 * firstMoment[i] + c1 * g; firstMoment[i] = m; mhat = m * ib1; }
            else mhat = g;
            parameters[i] = parameters[i] * decay - lr * mhat / (MathF.Sqrt(v) * isb2 + epsilon);
        }
    }
}
