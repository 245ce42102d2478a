namespace Collins;

/// <summary>How a tensor's entries are mapped to Count-Sketch buckets.</summary>
public enum SketchLayout
{
    /// <summary>
    /// The tensor is viewed as rows of k entries; row r lands in the buckets rotated by a constant
    /// ρ_r with a constant sign σ_r. Every bucket holds one entry per row, no two entries of a row
    /// collide, and the step is one streaming pass without atomics.
    /// </summary>
    Rotation = 0,

    /// <summary>
    /// Carter–Wegman hashing: bucket h1(i) = ((a·i + b) mod p) mod k and an independent sign hash.
    /// Faithful to the Count-Sketch analysis; random scatter/gather (atomics on the GPU).
    /// </summary>
    Universal = 1,
}

/// <summary>How the second moment of an entry is read back from its bucket.</summary>
public enum SecondMomentEstimate
{
    /// <summary>v̂[i] = sketch_v[h1(i)]: the bucket total, as the Count-Sketch Adam algorithm states.</summary>
    Sum = 0,

    /// <summary>v̂[i] = sketch_v[h1(i)] / occupancy(h1(i)): the bucket total divided by the number of entries in the bucket.</summary>
    Mean = 1,

    /// <summary>
    /// Adafactor's factored estimate (Shazeer &amp; Stern 2018) for a sketched tensor of two or more dimensions, viewed as a matrix of
    /// R = the product of all but its last dimension rows by C = its last dimension columns: EMAs of the row means R[r] and
    /// column means C[c] of g², and v̂[r, c] = R[r]·C[c] / mean(R); R + C floats of state instead of a sketch of v. Needs β1 = 0
    /// (no first moment; m̂ = g), or a block-quantised first moment (<see cref="FirstMomentStorage.Quantized8"/>, <see cref="FirstMomentStorage.Quantized4"/>)
    /// with β1 &gt; 0. Runs on the CPU and on an ILGPU accelerator (the device computes the row and column sums, the EMAs, mean(R)
    /// and update clipping itself; it agrees with the CPU engine to float rounding). A sketched tensor of one dimension (n entries) is
    /// viewed as n rows × 1 column, so its v̂ is its exact v (n + 1 floats), as Adafactor keeps a full v for vectors; tensors below
    /// <see cref="SketchedOptimizerAttribute.DenseThreshold"/> stay dense AdamW (set it to 0 to factor every tensor, as Adafactor does).
    /// </summary>
    Factored = 2,
}

/// <summary>How the first moment m of a sketched tensor is stored.</summary>
public enum FirstMomentStorage
{
    /// <summary>The seed's Count-Sketch of m (k floats; nothing when β1 = 0). The default.</summary>
    Sketch = 0,

    /// <summary>
    /// m kept per entry as signed 8-bit codes q in [−127, 127] with one fp32 absmax scale per block of
    /// <see cref="SketchedOptimizerAttribute.QuantizationBlock"/> entries: m = q·scale/127 (1 byte + 4/block bytes per entry).
    /// Needs <see cref="SecondMomentEstimate.Factored"/> and β1 &gt; 0 (the kind that implements it).
    /// </summary>
    Quantized8 = 1,

    /// <summary>As <see cref="Quantized8"/> with 4-bit codes q in [−7, 7], two per byte: m = q·scale/7 (0.5 byte + 4/block bytes per entry).</summary>
    Quantized4 = 2,
}

/// <summary>Whether a tensor's moments are sketched or kept dense.</summary>
public enum TensorSketching
{
    /// <summary>Sketch the tensor when its length reaches the optimizer's <c>DenseThreshold</c>; keep it dense otherwise.</summary>
    Auto = 0,

    /// <summary>Always keep exact dense Adam moments (2·d floats) for this tensor.</summary>
    Dense = 1,

    /// <summary>Always sketch this tensor, whatever its length.</summary>
    Sketched = 2,
}

/// <summary>
/// Asks the Collins source generator to emit a Count-Sketch Adam optimizer specialised to the
/// tensors declared with <see cref="TensorAttribute"/> in this partial class. Apply it more than
/// once with different <see cref="Name"/>s to get several optimizer variants for one model.
/// </summary>
[AttributeUsage(AttributeTargets.Class, AllowMultiple = true, Inherited = false)]
public sealed class SketchedOptimizerAttribute : Attribute
{
    /// <summary>Name of the generated nested optimizer type. Default <c>"Optimizer"</c>.</summary>
    public string Name { get; set; } = "Optimizer";

    /// <summary>Compression ratio: k = ceil(d / Ratio) buckets per tensor. 1 means exact dense Adam. Default 32.</summary>
    public int Ratio { get; set; } = Planning.SettingsRules.Ratio;

    /// <summary>First-moment decay. 0 removes the first-moment sketch entirely (m̂ = g). Default 0.9.</summary>
    public double Beta1 { get; set; } = Planning.SettingsRules.Beta1;

    /// <summary>Second-moment decay. Default 0.999.</summary>
    public double Beta2 { get; set; } = Planning.SettingsRules.Beta2;

    /// <summary>Denominator guard ε. Default 1e-8.</summary>
    public double Epsilon { get; set; } = Planning.SettingsRules.Epsilon;

    /// <summary>Decoupled weight decay (as in AdamW): p ← p − lr·WeightDecay·p. Default 0.</summary>
    public double WeightDecay { get; set; } = Planning.SettingsRules.WeightDecay;

    /// <summary>
    /// Hash layout of the Count-Sketch tensors. Default <see cref="SketchLayout.Rotation"/>. No effect when no tensor is hashed (under
    /// <see cref="SecondMomentEstimate.Factored"/>, or with every tensor dense): COL034 warns when it is set to Universal then.
    /// </summary>
    public SketchLayout Layout { get; set; } = SketchLayout.Rotation;

    /// <summary>Second-moment estimate. Default <see cref="SecondMomentEstimate.Sum"/>.</summary>
    /// <remarks>
    /// <see cref="SecondMomentEstimate.Mean"/> divides v̂ by the bucket's occupancy but not m̂, so with <see cref="Beta1"/> = 0.9
    /// an update can reach about √Ratio·lr per step (Adam's is about lr): lower the learning rate, or use Beta1 = 0.
    /// </remarks>
    public SecondMomentEstimate SecondMoment { get; set; } = SecondMomentEstimate.Sum;

    /// <summary>Seed from which every hash constant is derived (together with each tensor's name). Default 0.</summary>
    public long Seed { get; set; } = Planning.SettingsRules.Seed;

    /// <summary>
    /// Tensors with fewer elements than this stay dense (exact AdamW moments, not clipped by <see cref="UpdateClipping"/>) unless
    /// marked <see cref="TensorSketching.Sketched"/>. Default 4096. 0 sketches every tensor, or with
    /// <see cref="SecondMomentEstimate.Factored"/> factors every tensor (a vector as n × 1: its exact v), as Adafactor does.
    /// </summary>
    public int DenseThreshold { get; set; } = Planning.SettingsRules.DenseThreshold;

    /// <summary>
    /// Adafactor's update clipping with threshold d (0: off, the default): per factored tensor, the normalised update
    /// u = g / (√v̂ + ε) is divided by max(1, RMS(u) / d) before the learning rate applies; dense tensors (below
    /// <see cref="DenseThreshold"/>) are not clipped. Needs <see cref="SecondMomentEstimate.Factored"/> (COL027 otherwise; COL033 warns
    /// when every tensor is dense, so nothing is clipped); Adafactor uses d = 1.
    /// </summary>
    public double UpdateClipping { get; set; } = Planning.SettingsRules.UpdateClipping;

    /// <summary>
    /// Adafactor's β2 schedule for <see cref="SecondMomentEstimate.Factored"/> tensors: with exponent c &gt; 0 the second-moment
    /// decay of step t is β̂2 = 1 − t^−c (so step 1 keeps g² itself) instead of the constant <see cref="Beta2"/>, and no bias
    /// correction applies. 0 (the default) is off; Adafactor uses 0.8; c in (0, 1] (COL028 otherwise, or without Factored; COL033 warns
    /// when every tensor is dense, which keeps the constant β2).
    /// </summary>
    public double Beta2Schedule { get; set; } = Planning.SettingsRules.Beta2Schedule;

    /// <summary>
    /// How the first moment of sketched tensors is stored. Default <see cref="FirstMomentStorage.Sketch"/> (the seed's Count-Sketch).
    /// <see cref="FirstMomentStorage.Quantized8"/> and <see cref="FirstMomentStorage.Quantized4"/> keep m per entry, block-quantised, with
    /// <see cref="SecondMomentEstimate.Factored"/> and β1 &gt; 0 (COL030 otherwise); they apply to every sketched (that is, factored)
    /// tensor, vectors included; dense tensors keep AdamW's fp32 moments (COL033 warns when every tensor is dense).
    /// </summary>
    /// <remarks>
    /// Each step dequantises a block, forms m ← β1·m + (1 − β1)·g and the update from that m in float, then stores the block
    /// again: scale = max |m| over the block, q = clamp(⌊m·Q/scale + r⌋, −Q, Q), r = ½ (round to nearest) or, with
    /// <see cref="StochasticRounding"/>, r uniform in [0, 1) from a counter-based hash of (seed, tensor, step, entry), so results
    /// are the same for any thread count. On an ILGPU accelerator one thread stores each block, with the same format and the same
    /// random bits; float arithmetic in another order can put an entry's m on the other side of a rounding boundary, so a rare code
    /// differs by one from the CPU engine's.
    /// </remarks>
    public FirstMomentStorage FirstMoment { get; set; } = FirstMomentStorage.Sketch;

    /// <summary>
    /// Entries per fp32 scale of a quantised first moment: a power of two from 8 to 65536 (COL030 otherwise, whatever
    /// <see cref="FirstMoment"/> is). Default 128. No effect unless a tensor keeps a quantised first moment (COL032).
    /// </summary>
    public int QuantizationBlock { get; set; } = Planning.SettingsRules.QuantizationBlock;

    /// <summary>
    /// Round quantised first-moment codes stochastically (unbiased) instead of to nearest. Default false. No effect unless a tensor keeps
    /// a quantised first moment (COL032).
    /// </summary>
    public bool StochasticRounding { get; set; } = Planning.SettingsRules.StochasticRounding;

    /// <summary>
    /// Global gradient-norm clipping inside the step, as PyTorch's <c>clip_grad_norm_(parameters, MaxGradientNorm)</c> (0: off,
    /// the default): ‖g‖ = √(Σ over every tensor of Σ g²), from the sums of squares phase 1 forms anyway (no extra pass over a
    /// sketched gradient); when c = MaxGradientNorm / (‖g‖ + 1e-6) is below 1, the step uses c·g (rounded to float) for every
    /// gradient of every kind of tensor, dense ones included, as if the gradients had been clipped first. The caller's gradient
    /// buffers are not written, and a refused (non-finite) step stays refused. The last norm is
    /// <see cref="SketchedOptimizerBase.LastGradientNorm"/>. Finite and ≥ 0 (COL029 otherwise). Works for CPU and device (ILGPU) state alike:
    /// on a device each tensor's Σ g² is reduced on the device (deterministically, in double) and read back after the step's verdict.
    /// </summary>
    public double MaxGradientNorm { get; set; } = Planning.SettingsRules.MaxGradientNorm;
}

/// <summary>
/// Declares one parameter tensor of a <see cref="SketchedOptimizerAttribute"/> model. Put it on a
/// field or property; the shape is given as compile-time constants and the tensor's name defaults
/// to the member's name.
/// </summary>
[AttributeUsage(AttributeTargets.Field | AttributeTargets.Property, AllowMultiple = false, Inherited = false)]
public sealed class TensorAttribute : Attribute
{
    /// <summary>Declares a tensor of the given shape (each dimension a positive constant).</summary>
    public TensorAttribute(params int[] shape) => Shape = shape;

    /// <summary>The tensor's shape.</summary>
    public int[] Shape { get; }

    /// <summary>The tensor's name (a C# identifier). Defaults to the member's name.</summary>
    public string? Name { get; set; }

    /// <summary>
    /// Overrides the optimizer's ratio for this tensor; 0 (the default) inherits it. 1 means exact dense Adam. Under
    /// <see cref="SecondMomentEstimate.Factored"/> it only decides dense (1) or factored (R + C floats whatever the ratio): COL035 warns
    /// when every optimizer of the class factors the tensor anyway.
    /// </summary>
    public int Ratio { get; set; }

    /// <summary>Whether this tensor is sketched. Default <see cref="TensorSketching.Auto"/>.</summary>
    public TensorSketching Sketching { get; set; }
}
