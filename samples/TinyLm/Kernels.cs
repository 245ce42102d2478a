using System.Numerics;
using System.Numerics.Tensors;

namespace TinyLm;

/// <summary>
/// CPU kernels of the transformer: row-major matrix products, LayerNorm, GELU. Every output
/// element is computed by exactly one worker in a fixed order, so results are bit-identical for any
/// thread count.
/// </summary>
internal static class Kernels
{
    /// <summary>Upper bound on worker threads (results do not depend on it).</summary>
    public static int MaxThreads { get; set; } = Environment.ProcessorCount;

    private const int RowChunk = 32;

    /// <summary>Runs body(chunk) for chunks 0..count−1, in parallel when there is more than one.</summary>
    public static void For(int count, Action<int> body)
    {
        if (count <= 1 || MaxThreads <= 1) { for (int i = 0; i < count; i++) body(i); return; }
        Parallel.For(0, count, new ParallelOptions { MaxDegreeOfParallelism = MaxThreads }, body);
    }

    private static int Chunks(int rows, int chunk) => (rows + chunk - 1) / chunk;

    /// <summary>C[M,N] = A[M,K]·B[K,N] (+ bias[N] on every row).</summary>
    public static void MatMul(float[] a, float[] b, float[]? bias, float[] c, int m, int k, int n)
    {
        For(Chunks(m, RowChunk), ch =>
        {
            int end = Math.Min(m, (ch + 1) * RowChunk);
            for (int i = ch * RowChunk; i < end; i++)
            {
                var row = c.AsSpan(i * n, n);
                if (bias is null) row.Clear(); else bias.AsSpan(0, n).CopyTo(row);
                var ai = a.AsSpan(i * k, k);
                int kk = 0;
                for (; kk + 4 <= k; kk += 4)
                    Axpy4(ai[kk], ai[kk + 1], ai[kk + 2], ai[kk + 3],
                          b.AsSpan(kk * n, n), b.AsSpan((kk + 1) * n, n), b.AsSpan((kk + 2) * n, n), b.AsSpan((kk + 3) * n, n), row);
                for (; kk < k; kk++) TensorPrimitives.MultiplyAdd(b.AsSpan(kk * n, n), ai[kk], row, row);
            }
        });
    }

    /// <summary>dA[M,K] (=, or += when accumulate) dC[M,N]·B[K,N]ᵀ.</summary>
    public static void MatMulBackInput(float[] dc, float[] b, float[] da, int m, int k, int n, bool accumulate)
    {
        For(Chunks(m, RowChunk), ch =>
        {
            int end = Math.Min(m, (ch + 1) * RowChunk);
            for (int i = ch * RowChunk; i < end; i++)
            {
                var dci = dc.AsSpan(i * n, n);
                var dai = da.AsSpan(i * k, k);
                for (int kk = 0; kk < k; kk++)
                {
                    float s = TensorPrimitives.Dot(dci, b.AsSpan(kk * n, n));
                    dai[kk] = accumulate ? dai[kk] + s : s;
                }
            }
        });
    }

    /// <summary>dB[K,N] += A[M,K]ᵀ·dC[M,N]. Each row of dB is summed over i in increasing order.</summary>
    public static void MatMulBackWeight(float[] a, float[] dc, float[] db, int m, int k, int n)
    {
        const int KChunk = 8, IBlock = 64;
        For(Chunks(k, KChunk), ch =>
        {
            int kEnd = Math.Min(k, (ch + 1) * KChunk);
            for (int i0 = 0; i0 < m; i0 += IBlock)
            {
                int iEnd = Math.Min(m, i0 + IBlock);
                for (int kk = ch * KChunk; kk < kEnd; kk++)
                {
                    var dbk = db.AsSpan(kk * n, n);
                    int i = i0;
                    for (; i + 4 <= iEnd; i += 4)
                        Axpy4(a[i * k + kk], a[(i + 1) * k + kk], a[(i + 2) * k + kk], a[(i + 3) * k + kk],
                              dc.AsSpan(i * n, n), dc.AsSpan((i + 1) * n, n), dc.AsSpan((i + 2) * n, n), dc.AsSpan((i + 3) * n, n), dbk);
                    for (; i < iEnd; i++) TensorPrimitives.MultiplyAdd(dc.AsSpan(i * n, n), a[i * k + kk], dbk, dbk);
                }
            }
        });
    }

    /// <summary>dst += s0·x0 + s1·x1 + s2·x2 + s3·x3 (fixed association order).</summary>
    private static void Axpy4(float s0, float s1, float s2, float s3,
                              ReadOnlySpan<float> x0, ReadOnlySpan<float> x1, ReadOnlySpan<float> x2, ReadOnlySpan<float> x3, Span<float> dst)
    {
        int n = dst.Length, j = 0;
        if (Vector.IsHardwareAccelerated && n >= Vector<float>.Count)
        {
            var v0 = new Vector<float>(s0); var v1 = new Vector<float>(s1);
            var v2 = new Vector<float>(s2); var v3 = new Vector<float>(s3);
            int w = Vector<float>.Count;
            for (; j <= n - w; j += w)
            {
                var d = new Vector<float>(dst.Slice(j));
                d += v0 * new Vector<float>(x0.Slice(j)) + v1 * new Vector<float>(x1.Slice(j))
                   + (v2 * new Vector<float>(x2.Slice(j)) + v3 * new Vector<float>(x3.Slice(j)));
                d.CopyTo(dst.Slice(j));
            }
        }
        for (; j < n; j++) dst[j] += s0 * x0[j] + s1 * x1[j] + (s2 * x2[j] + s3 * x3[j]);
    }

    /// <summary>db[N] += Σ_i dC[i,N] (rows in order).</summary>
    public static void ColumnSum(float[] dc, float[] db, int m, int n)
    {
        var d = db.AsSpan(0, n);
        for (int i = 0; i < m; i++) TensorPrimitives.Add(d, dc.AsSpan(i * n, n), d);
    }

    /// <summary>y = LN(x)·g + b per row; keeps x̂ and 1/σ for the backward pass.</summary>
    public static void LayerNorm(float[] x, float[] g, float[] b, float[] y, float[] xhat, float[] rstd, int m, int d)
    {
        For(Chunks(m, RowChunk), ch =>
        {
            int end = Math.Min(m, (ch + 1) * RowChunk);
            for (int i = ch * RowChunk; i < end; i++)
            {
                var xi = x.AsSpan(i * d, d);
                float mean = TensorPrimitives.Sum(xi) / d;
                var hi = xhat.AsSpan(i * d, d);
                TensorPrimitives.Subtract(xi, mean, hi);
                float var = TensorPrimitives.Dot(hi, hi) / d;
                float r = 1f / MathF.Sqrt(var + 1e-5f);
                rstd[i] = r;
                TensorPrimitives.Multiply(hi, r, hi);
                TensorPrimitives.MultiplyAdd(hi, g, b, y.AsSpan(i * d, d));
            }
        });
    }

    /// <summary>
    /// LayerNorm backward: dx (=, or += when accumulate) from dy; dg += Σ dy·x̂, db += Σ dy. Uses
    /// <paramref name="scratch"/> (M·D) for dy·g.
    /// </summary>
    public static void LayerNormBackward(float[] dy, float[] xhat, float[] rstd, float[] g, float[] dg, float[] db,
                                         float[] dx, float[] scratch, int m, int d, bool accumulate)
    {
        For(Chunks(m, RowChunk), ch =>
        {
            int end = Math.Min(m, (ch + 1) * RowChunk);
            for (int i = ch * RowChunk; i < end; i++)
            {
                var dyi = dy.AsSpan(i * d, d);
                var hi = xhat.AsSpan(i * d, d);
                var t = scratch.AsSpan(i * d, d);
                TensorPrimitives.Multiply(dyi, g, t);                 // dx̂
                float meanT = TensorPrimitives.Sum(t) / d;
                float meanTH = TensorPrimitives.Dot(t, hi) / d;
                float r = rstd[i];
                var dxi = dx.AsSpan(i * d, d);
                for (int j = 0; j < d; j++)
                {
                    float v = r * (t[j] - meanT - hi[j] * meanTH);
                    dxi[j] = accumulate ? dxi[j] + v : v;
                }
            }
        });
        var dgs = dg.AsSpan(0, d);
        var dbs = db.AsSpan(0, d);
        for (int i = 0; i < m; i++)
        {
            var dyi = dy.AsSpan(i * d, d);
            TensorPrimitives.MultiplyAdd(dyi, xhat.AsSpan(i * d, d), dgs, dgs);
            TensorPrimitives.Add(dbs, dyi, dbs);
        }
    }

    private const float GeluC = 0.7978845608f, GeluA = 0.044715f;

    /// <summary>a = GELU(u) (tanh form); keeps tanh(·) in <paramref name="th"/>.</summary>
    public static void Gelu(float[] u, float[] th, float[] a, int m, int n)
    {
        For(Chunks(m, RowChunk), ch =>
        {
            int lo = ch * RowChunk * n, len = (Math.Min(m, (ch + 1) * RowChunk) - ch * RowChunk) * n;
            var us = u.AsSpan(lo, len); var ts = th.AsSpan(lo, len); var a_ = a.AsSpan(lo, len);
            TensorPrimitives.Multiply(us, us, ts);                   // u²
            TensorPrimitives.Multiply(ts, GeluA, ts);
            TensorPrimitives.Add(ts, 1f, ts);                        // 1 + a·u²
            TensorPrimitives.Multiply(ts, us, ts);                   // u + a·u³
            TensorPrimitives.Multiply(ts, GeluC, ts);
            TensorPrimitives.Tanh(ts, ts);
            TensorPrimitives.Add(ts, 1f, a_);
            TensorPrimitives.Multiply(a_, us, a_);
            TensorPrimitives.Multiply(a_, 0.5f, a_);
        });
    }

    /// <summary>du = da · GELU'(u).</summary>
    public static void GeluBackward(float[] u, float[] th, float[] da, float[] du, int m, int n)
    {
        For(Chunks(m, RowChunk), ch =>
        {
            int lo = ch * RowChunk * n, hi = Math.Min(m, (ch + 1) * RowChunk) * n;
            for (int j = lo; j < hi; j++)
            {
                float x = u[j], t = th[j];
                float deriv = 0.5f * (1f + t) + 0.5f * x * (1f - t * t) * GeluC * (1f + 3f * GeluA * x * x);
                du[j] = da[j] * deriv;
            }
        });
    }
}
