namespace TinyLm;

/// <summary>
/// A pre-LayerNorm causal transformer with hand-written forward and backward passes on the CPU.
/// Parameters and gradients are flat row-major arrays in <see cref="ModelConfig.Specs"/> order;
/// weights are stored [in, out] so a layer is x·W.
/// </summary>
public sealed class Transformer
{
    private Workspace? _ws;

    /// <summary>
    /// A model over the given parameter arrays and, when given, gradient arrays (neither copied: the backward pass writes
    /// <paramref name="gradients"/> in place, the optimizer updates <paramref name="parameters"/> in place).
    /// </summary>
    public Transformer(ModelConfig config, float[][] parameters, float[][]? gradients = null)
    {
        Config = config;
        var buffers = new TensorBuffers(parameters, gradients ?? parameters.Select(p => new float[p?.Length ?? 0]).ToArray());
        TensorBuffers.CheckShapes(buffers, config.Specs());
        Parameters = buffers.Parameters;
        Gradients = buffers.Gradients;
    }

    public ModelConfig Config { get; }
    public float[][] Parameters { get; }
    public float[][] Gradients { get; }

    /// <summary>Fresh parameters: N(0, 0.02) weights (residual projections scaled by 1/√(2·layers)), unit gains, zero biases.</summary>
    public static float[][] Initialize(ModelConfig c, ulong seed, float[][]? into = null)
    {
        var specs = c.Specs();
        var p = into ?? specs.Select(s => new float[ModelConfig.Length(s)]).ToArray();
        var rng = new SplitMix(seed);
        float resid = 0.02f / MathF.Sqrt(2 * c.Layers);
        for (int i = 0; i < specs.Count; i++)
        {
            string n = specs[i].Name;
            bool weight = n is "Embed" or "Pos" or "Head" || n.EndsWith("Wqkv", StringComparison.Ordinal) || n.EndsWith("Wo", StringComparison.Ordinal)
                          || n.EndsWith("W1", StringComparison.Ordinal) || n.EndsWith("W2", StringComparison.Ordinal);
            if (weight)
            {
                float std = n.EndsWith("Wo", StringComparison.Ordinal) || n.EndsWith("W2", StringComparison.Ordinal) ? resid : 0.02f;
                for (int j = 0; j < p[i].Length; j++) p[i][j] = std * rng.NextGaussian();
            }
            else if (n.EndsWith('G')) Array.Fill(p[i], 1f);
            else Array.Clear(p[i]);
        }
        return p;
    }

    /// <summary>Forward and backward over a batch of sequences; returns the mean cross-entropy (nats/token) and fills <see cref="Gradients"/>.</summary>
    public float ForwardBackward(ReadOnlySpan<int> inputs, ReadOnlySpan<int> targets, int batch)
    {
        var w = Forward(inputs, targets, batch);
        Backward(w, inputs, targets, batch);
        return (float)(w.LossSum / (batch * Config.Context));
    }

    /// <summary>Forward only; returns the summed cross-entropy over batch·Context tokens.</summary>
    public double LossSum(ReadOnlySpan<int> inputs, ReadOnlySpan<int> targets, int batch) => Forward(inputs, targets, batch).LossSum;

    private Workspace Forward(ReadOnlySpan<int> inputs, ReadOnlySpan<int> targets, int batch)
    {
        var c = Config;
        int T = c.Context, D = c.DModel, F = c.FeedForward, V = c.Vocab, M = batch * T;
        if (inputs.Length != M || targets.Length != M) throw new ArgumentException($"Expected {M} inputs and targets.");
        if (_ws is null || _ws.Batch != batch) _ws = new Workspace(c, batch);
        var w = _ws;
        var P = Parameters;

        // Embedding: x = Embed[token] + Pos[t].
        var embed = P[ModelConfig.EmbedIndex]; var pos = P[ModelConfig.PosIndex];
        var x0 = w.X[0];
        for (int i = 0; i < M; i++)
        {
            int tok = inputs[i];
            if ((uint)tok >= (uint)V) throw new ArgumentOutOfRangeException(nameof(inputs), $"Token {tok} is outside the vocabulary.");
            int t = i % T;
            for (int j = 0; j < D; j++) x0[i * D + j] = embed[tok * D + j] + pos[t * D + j];
        }

        for (int l = 0; l < c.Layers; l++)
        {
            var L = w.Layer[l];
            int b0 = ModelConfig.LayerBase(l);
            var x = w.X[l];
            Kernels.LayerNorm(x, P[b0 + ModelConfig.Ln1G], P[b0 + ModelConfig.Ln1B], L.H1, L.Xhat1, L.Rstd1, M, D);
            Kernels.MatMul(L.H1, P[b0 + ModelConfig.Wqkv], null, L.Qkv, M, D, 3 * D);
            Attention(L, batch);
            Kernels.MatMul(L.Att, P[b0 + ModelConfig.Wo], null, L.X2, M, D, D);
            AddInPlace(L.X2, x, M * D);
            Kernels.LayerNorm(L.X2, P[b0 + ModelConfig.Ln2G], P[b0 + ModelConfig.Ln2B], L.H2, L.Xhat2, L.Rstd2, M, D);
            Kernels.MatMul(L.H2, P[b0 + ModelConfig.W1], P[b0 + ModelConfig.B1], L.U, M, D, F);
            Kernels.Gelu(L.U, L.Th, L.A, M, F);
            var xo = w.X[l + 1];
            Kernels.MatMul(L.A, P[b0 + ModelConfig.W2], P[b0 + ModelConfig.B2], xo, M, F, D);
            AddInPlace(xo, L.X2, M * D);
        }

        Kernels.LayerNorm(w.X[c.Layers], P[c.LnfGIndex], P[c.LnfBIndex], w.Hf, w.Xhatf, w.Rstdf, M, D);
        Kernels.MatMul(w.Hf, P[c.HeadIndex], P[c.HeadBIndex], w.Logits, M, D, V);

        // Softmax cross-entropy; Logits becomes the probabilities.
        var logits = w.Logits; var rowLoss = w.RowLoss;
        var tg = targets.ToArray();
        Kernels.For((M + 63) / 64, ch =>
        {
            int end = Math.Min(M, (ch + 1) * 64);
            for (int i = ch * 64; i < end; i++)
            {
                var row = logits.AsSpan(i * V, V);
                float max = System.Numerics.Tensors.TensorPrimitives.Max(row);
                System.Numerics.Tensors.TensorPrimitives.Subtract(row, max, row);
                System.Numerics.Tensors.TensorPrimitives.Exp(row, row);
                float sum = System.Numerics.Tensors.TensorPrimitives.Sum(row);
                int y = tg[i];
                if ((uint)y >= (uint)V) throw new ArgumentOutOfRangeException(nameof(targets));
                rowLoss[i] = MathF.Log(sum) - MathF.Log(row[y]);
                System.Numerics.Tensors.TensorPrimitives.Multiply(row, 1f / sum, row);
            }
        });
        double loss = 0;
        for (int i = 0; i < M; i++) loss += rowLoss[i];
        w.LossSum = loss;
        return w;
    }

    private void Backward(Workspace w, ReadOnlySpan<int> inputs, ReadOnlySpan<int> targets, int batch)
    {
        var c = Config;
        int T = c.Context, D = c.DModel, F = c.FeedForward, V = c.Vocab, M = batch * T;
        var P = Parameters; var G = Gradients;
        foreach (var g in G) Array.Clear(g);

        // dlogits = (p − onehot) / M.
        var dl = w.Logits; float inv = 1f / M;
        for (int i = 0; i < M; i++)
        {
            dl[i * V + targets[i]] -= 1f;
            System.Numerics.Tensors.TensorPrimitives.Multiply(dl.AsSpan(i * V, V), inv, dl.AsSpan(i * V, V));
        }
        Kernels.ColumnSum(dl, G[c.HeadBIndex], M, V);
        Kernels.MatMulBackWeight(w.Hf, dl, G[c.HeadIndex], M, D, V);
        Kernels.MatMulBackInput(dl, P[c.HeadIndex], w.DH, M, D, V, accumulate: false);
        var dx = w.DX;
        Kernels.LayerNormBackward(w.DH, w.Xhatf, w.Rstdf, P[c.LnfGIndex], G[c.LnfGIndex], G[c.LnfBIndex], dx, w.Scratch, M, D, accumulate: false);

        for (int l = c.Layers - 1; l >= 0; l--)
        {
            var L = w.Layer[l];
            int b0 = ModelConfig.LayerBase(l);
            // x_out = x2 + gelu(h2·W1 + B1)·W2 + B2
            Kernels.ColumnSum(dx, G[b0 + ModelConfig.B2], M, D);
            Kernels.MatMulBackWeight(L.A, dx, G[b0 + ModelConfig.W2], M, F, D);
            Kernels.MatMulBackInput(dx, P[b0 + ModelConfig.W2], w.DF, M, F, D, accumulate: false);
            Kernels.GeluBackward(L.U, L.Th, w.DF, w.DF, M, F);
            Kernels.ColumnSum(w.DF, G[b0 + ModelConfig.B1], M, F);
            Kernels.MatMulBackWeight(L.H2, w.DF, G[b0 + ModelConfig.W1], M, D, F);
            Kernels.MatMulBackInput(w.DF, P[b0 + ModelConfig.W1], w.DH, M, D, F, accumulate: false);
            Kernels.LayerNormBackward(w.DH, L.Xhat2, L.Rstd2, P[b0 + ModelConfig.Ln2G], G[b0 + ModelConfig.Ln2G], G[b0 + ModelConfig.Ln2B], dx, w.Scratch, M, D, accumulate: true);
            // x2 = x + att·Wo
            Kernels.MatMulBackWeight(L.Att, dx, G[b0 + ModelConfig.Wo], M, D, D);
            Kernels.MatMulBackInput(dx, P[b0 + ModelConfig.Wo], w.DAtt, M, D, D, accumulate: false);
            AttentionBackward(L, w, batch);
            Kernels.MatMulBackWeight(L.H1, w.DQkv, G[b0 + ModelConfig.Wqkv], M, D, 3 * D);
            Kernels.MatMulBackInput(w.DQkv, P[b0 + ModelConfig.Wqkv], w.DH, M, D, 3 * D, accumulate: false);
            Kernels.LayerNormBackward(w.DH, L.Xhat1, L.Rstd1, P[b0 + ModelConfig.Ln1G], G[b0 + ModelConfig.Ln1G], G[b0 + ModelConfig.Ln1B], dx, w.Scratch, M, D, accumulate: true);
        }

        var ge = G[ModelConfig.EmbedIndex]; var gp = G[ModelConfig.PosIndex];
        for (int i = 0; i < M; i++)
        {
            var row = dx.AsSpan(i * D, D);
            var e = ge.AsSpan(inputs[i] * D, D);
            System.Numerics.Tensors.TensorPrimitives.Add(e, row, e);
            var p = gp.AsSpan((i % T) * D, D);
            System.Numerics.Tensors.TensorPrimitives.Add(p, row, p);
        }
    }

    private void Attention(LayerActs L, int batch)
    {
        var c = Config;
        int T = c.Context, D = c.DModel, H = c.Heads, hd = c.HeadDim, D3 = 3 * D;
        float scale = 1f / MathF.Sqrt(hd);
        var qkv = L.Qkv; var probs = L.P; var att = L.Att;
        Kernels.For(batch * H, bh =>
        {
            int b = bh / H, h = bh % H;
            int qo = h * hd, ko = D + h * hd, vo = 2 * D + h * hd;
            for (int t = 0; t < T; t++)
            {
                var q = qkv.AsSpan((b * T + t) * D3 + qo, hd);
                var prow = probs.AsSpan((bh * T + t) * T, T);
                float max = float.NegativeInfinity;
                for (int s = 0; s <= t; s++)
                {
                    float sc = System.Numerics.Tensors.TensorPrimitives.Dot(q, qkv.AsSpan((b * T + s) * D3 + ko, hd)) * scale;
                    prow[s] = sc;
                    if (sc > max) max = sc;
                }
                float sum = 0;
                for (int s = 0; s <= t; s++) { float e = MathF.Exp(prow[s] - max); prow[s] = e; sum += e; }
                float inv = 1f / sum;
                for (int s = 0; s <= t; s++) prow[s] *= inv;
                prow.Slice(t + 1).Clear();
                var o = att.AsSpan((b * T + t) * D + h * hd, hd);
                o.Clear();
                for (int s = 0; s <= t; s++)
                    System.Numerics.Tensors.TensorPrimitives.MultiplyAdd(qkv.AsSpan((b * T + s) * D3 + vo, hd), prow[s], o, o);
            }
        });
    }

    private void AttentionBackward(LayerActs L, Workspace w, int batch)
    {
        var c = Config;
        int T = c.Context, D = c.DModel, H = c.Heads, hd = c.HeadDim, D3 = 3 * D;
        float scale = 1f / MathF.Sqrt(hd);
        var qkv = L.Qkv; var probs = L.P; var datt = w.DAtt; var dqkv = w.DQkv;
        Kernels.For(batch * H, bh =>
        {
            int b = bh / H, h = bh % H;
            int qo = h * hd, ko = D + h * hd, vo = 2 * D + h * hd;
            for (int t = 0; t < T; t++)
            {
                int r = (b * T + t) * D3;
                dqkv.AsSpan(r + qo, hd).Clear(); dqkv.AsSpan(r + ko, hd).Clear(); dqkv.AsSpan(r + vo, hd).Clear();
            }
            Span<float> dp = stackalloc float[T];
            for (int t = 0; t < T; t++)
            {
                var dO = datt.AsSpan((b * T + t) * D + h * hd, hd);
                var prow = probs.AsSpan((bh * T + t) * T, T);
                float dot = 0;
                for (int s = 0; s <= t; s++)
                {
                    int rs = (b * T + s) * D3;
                    dp[s] = System.Numerics.Tensors.TensorPrimitives.Dot(dO, qkv.AsSpan(rs + vo, hd));
                    dot += prow[s] * dp[s];
                    var dv = dqkv.AsSpan(rs + vo, hd);
                    System.Numerics.Tensors.TensorPrimitives.MultiplyAdd(dO, prow[s], dv, dv);
                }
                var q = qkv.AsSpan((b * T + t) * D3 + qo, hd);
                var dq = dqkv.AsSpan((b * T + t) * D3 + qo, hd);
                for (int s = 0; s <= t; s++)
                {
                    int rs = (b * T + s) * D3;
                    float ds = prow[s] * (dp[s] - dot) * scale;
                    System.Numerics.Tensors.TensorPrimitives.MultiplyAdd(qkv.AsSpan(rs + ko, hd), ds, dq, dq);
                    var dk = dqkv.AsSpan(rs + ko, hd);
                    System.Numerics.Tensors.TensorPrimitives.MultiplyAdd(q, ds, dk, dk);
                }
            }
        });
    }

    private static void AddInPlace(float[] dst, float[] src, int n) =>
        System.Numerics.Tensors.TensorPrimitives.Add(dst.AsSpan(0, n), src.AsSpan(0, n), dst.AsSpan(0, n));

    private sealed class LayerActs
    {
        public LayerActs(ModelConfig c, int batch)
        {
            int M = batch * c.Context, D = c.DModel, F = c.FeedForward;
            H1 = new float[M * D]; Xhat1 = new float[M * D]; Rstd1 = new float[M];
            Qkv = new float[M * 3 * D]; P = new float[batch * c.Heads * c.Context * c.Context]; Att = new float[M * D];
            X2 = new float[M * D]; H2 = new float[M * D]; Xhat2 = new float[M * D]; Rstd2 = new float[M];
            U = new float[M * F]; Th = new float[M * F]; A = new float[M * F];
        }
        public readonly float[] H1, Xhat1, Rstd1, Qkv, P, Att, X2, H2, Xhat2, Rstd2, U, Th, A;
    }

    private sealed class Workspace
    {
        public Workspace(ModelConfig c, int batch)
        {
            Batch = batch;
            int M = batch * c.Context, D = c.DModel;
            X = Enumerable.Range(0, c.Layers + 1).Select(_ => new float[M * D]).ToArray();
            Layer = Enumerable.Range(0, c.Layers).Select(_ => new LayerActs(c, batch)).ToArray();
            Hf = new float[M * D]; Xhatf = new float[M * D]; Rstdf = new float[M];
            Logits = new float[M * c.Vocab]; RowLoss = new float[M];
            DX = new float[M * D]; DH = new float[M * D]; DAtt = new float[M * D]; Scratch = new float[M * D];
            DQkv = new float[M * 3 * D]; DF = new float[M * c.FeedForward];
        }
        public readonly int Batch;
        public readonly float[][] X;
        public readonly LayerActs[] Layer;
        public readonly float[] Hf, Xhatf, Rstdf, Logits, RowLoss, DX, DH, DAtt, Scratch, DQkv, DF;
        public double LossSum;
    }
}

/// <summary>SplitMix64: a small deterministic generator (same stream on every platform and runtime).</summary>
public sealed class SplitMix
{
    private ulong _s;
    public SplitMix(ulong seed) => _s = seed;

    public ulong Next()
    {
        ulong z = _s += 0x9E3779B97F4A7C15UL;
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
        return z ^ (z >> 31);
    }

    /// <summary>Uniform in [0, n).</summary>
    public int NextInt(int n) => (int)((Next() >> 33) % (ulong)n);

    /// <summary>Uniform in (0, 1).</summary>
    public double NextDouble() => ((Next() >> 11) + 0.5) / (1UL << 53);

    public float NextGaussian()
    {
        double u1 = NextDouble(), u2 = NextDouble();
        return (float)(Math.Sqrt(-2 * Math.Log(u1)) * Math.Cos(2 * Math.PI * u2));
    }
}
