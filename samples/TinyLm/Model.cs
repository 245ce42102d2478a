using Collins;

namespace TinyLm;

/// <summary>
/// The tiny Shakespeare model, declared exactly as a user of Collins.Generators would: one
/// <see cref="SketchedOptimizerAttribute"/> per optimizer variant and one <see cref="TensorAttribute"/>
/// per parameter tensor, in the order the generated <c>Step</c> takes them.
/// </summary>
/// <remarks>
/// A two-layer pre-LayerNorm causal transformer: vocabulary 65, context 64, d_model 64, 4 heads of 16,
/// feed-forward 256 (GELU), untied output head. Tensors of ≥ 4096 elements (the default
/// DenseThreshold) are sketched: Embed, Pos, Wqkv, Wo, W1, W2 and Head; the gains and biases stay dense, except in
/// FactoredClipAll (DenseThreshold 0), where every tensor is factored and each vector's factored v̂ is its exact v.
/// Adding an optimizer variant is one attribute line here and one line in <see cref="OptimizerCatalog.Variants"/> (a test fails
/// until both agree).
/// </remarks>
[SketchedOptimizer(Name = "C32", Ratio = 32)]
[SketchedOptimizer(Name = "C32Mean", Ratio = 32, SecondMoment = SecondMomentEstimate.Mean)]
[SketchedOptimizer(Name = "C32Universal", Ratio = 32, Layout = SketchLayout.Universal)]
[SketchedOptimizer(Name = "C32NoMomentum", Ratio = 32, Beta1 = 0)]
[SketchedOptimizer(Name = "C32MeanNoMomentum", Ratio = 32, Beta1 = 0, SecondMoment = SecondMomentEstimate.Mean)]
[SketchedOptimizer(Name = "C1", Ratio = 1)]
[SketchedOptimizer(Name = "C4", Ratio = 4)]
[SketchedOptimizer(Name = "C8", Ratio = 8)]
[SketchedOptimizer(Name = "C64", Ratio = 64)]
[SketchedOptimizer(Name = "Factored", Beta1 = 0, SecondMoment = SecondMomentEstimate.Factored)]
[SketchedOptimizer(Name = "FactoredClip", Beta1 = 0, SecondMoment = SecondMomentEstimate.Factored, UpdateClipping = 1)]
[SketchedOptimizer(Name = "FactoredSchedule", Beta1 = 0, SecondMoment = SecondMomentEstimate.Factored, UpdateClipping = 1, Beta2Schedule = 0.8)]
[SketchedOptimizer(Name = "FactoredClipAll", Beta1 = 0, SecondMoment = SecondMomentEstimate.Factored, UpdateClipping = 1, DenseThreshold = 0)]
[SketchedOptimizer(Name = "FactoredQ4", Beta1 = 0.9, SecondMoment = SecondMomentEstimate.Factored, FirstMoment = FirstMomentStorage.Quantized4, StochasticRounding = true)]
public partial class TinyLmModel
{
    public const int Vocab = 65, Context = 64, DModel = 64, Heads = 4, FeedForward = 256, Layers = 2;

    /// <summary>The configuration the tensor shapes below are declared with.</summary>
    public static ModelConfig Config { get; } = new(Vocab, Context, DModel, Heads, FeedForward, Layers);

    [Tensor(Vocab, DModel)] public float[] Embed = new float[Vocab * DModel];
    [Tensor(Context, DModel)] public float[] Pos = new float[Context * DModel];

    [Tensor(DModel)] public float[] L0Ln1G = new float[DModel];
    [Tensor(DModel)] public float[] L0Ln1B = new float[DModel];
    [Tensor(DModel, 3 * DModel)] public float[] L0Wqkv = new float[DModel * 3 * DModel];
    [Tensor(DModel, DModel)] public float[] L0Wo = new float[DModel * DModel];
    [Tensor(DModel)] public float[] L0Ln2G = new float[DModel];
    [Tensor(DModel)] public float[] L0Ln2B = new float[DModel];
    [Tensor(DModel, FeedForward)] public float[] L0W1 = new float[DModel * FeedForward];
    [Tensor(FeedForward)] public float[] L0B1 = new float[FeedForward];
    [Tensor(FeedForward, DModel)] public float[] L0W2 = new float[FeedForward * DModel];
    [Tensor(DModel)] public float[] L0B2 = new float[DModel];

    [Tensor(DModel)] public float[] L1Ln1G = new float[DModel];
    [Tensor(DModel)] public float[] L1Ln1B = new float[DModel];
    [Tensor(DModel, 3 * DModel)] public float[] L1Wqkv = new float[DModel * 3 * DModel];
    [Tensor(DModel, DModel)] public float[] L1Wo = new float[DModel * DModel];
    [Tensor(DModel)] public float[] L1Ln2G = new float[DModel];
    [Tensor(DModel)] public float[] L1Ln2B = new float[DModel];
    [Tensor(DModel, FeedForward)] public float[] L1W1 = new float[DModel * FeedForward];
    [Tensor(FeedForward)] public float[] L1B1 = new float[FeedForward];
    [Tensor(FeedForward, DModel)] public float[] L1W2 = new float[FeedForward * DModel];
    [Tensor(DModel)] public float[] L1B2 = new float[DModel];

    [Tensor(DModel)] public float[] LnfG = new float[DModel];
    [Tensor(DModel)] public float[] LnfB = new float[DModel];
    [Tensor(DModel, Vocab)] public float[] Head = new float[DModel * Vocab];
    [Tensor(Vocab)] public float[] HeadB = new float[Vocab];

    /// <summary>
    /// The tensors as the <c>[Tensor]</c> attributes declare them: the generated <c>TensorSpecs</c>, the same for every
    /// variant (<see cref="OptimizerCatalog.Variants"/> checks that once). <see cref="ModelConfig.Specs"/> of
    /// <see cref="Config"/> returns this.
    /// </summary>
    public static IReadOnlyList<TensorSpec> DeclaredSpecs => C32.TensorSpecs;

    /// <summary>The tensors in declaration order (the order of <see cref="ModelConfig.Specs"/> and of the generated Step).</summary>
    public float[][] Tensors() =>
    [
        Embed, Pos,
        L0Ln1G, L0Ln1B, L0Wqkv, L0Wo, L0Ln2G, L0Ln2B, L0W1, L0B1, L0W2, L0B2,
        L1Ln1G, L1Ln1B, L1Wqkv, L1Wo, L1Ln2G, L1Ln2B, L1W1, L1B1, L1W2, L1B2,
        LnfG, LnfB, Head, HeadB,
    ];
}

/// <summary>Sizes of a causal transformer. Tensor names and order follow <see cref="Specs"/>.</summary>
public sealed record ModelConfig(int Vocab, int Context, int DModel, int Heads, int FeedForward, int Layers)
{
    public int HeadDim => DModel / Heads;

    // Index of each tensor in the parameter list.
    public const int EmbedIndex = 0, PosIndex = 1, PerLayer = 10;
    public const int Ln1G = 0, Ln1B = 1, Wqkv = 2, Wo = 3, Ln2G = 4, Ln2B = 5, W1 = 6, B1 = 7, W2 = 8, B2 = 9;
    public static int LayerBase(int layer) => 2 + PerLayer * layer;
    public int LnfGIndex => 2 + PerLayer * Layers;
    public int LnfBIndex => LnfGIndex + 1;
    public int HeadIndex => LnfGIndex + 2;
    public int HeadBIndex => LnfGIndex + 3;
    public int TensorCount => LnfGIndex + 4;

    /// <summary>
    /// Names and shapes of every tensor in order: for the declared <see cref="TinyLmModel.Config"/> the generated
    /// <see cref="TinyLmModel.DeclaredSpecs"/>, for any other configuration <see cref="BuildSpecs"/>.
    /// </summary>
    public IReadOnlyList<TensorSpec> Specs() => this == TinyLmModel.Config ? TinyLmModel.DeclaredSpecs : BuildSpecs();

    /// <summary>
    /// The tensors of this configuration from the shape formulas, for configurations other than the declared one (the
    /// gradient check's small model, the sweep, other data). For <see cref="TinyLmModel.Config"/> it reproduces the
    /// generated <c>TensorSpecs</c> exactly (ModelDeclarationTests), so the two cannot drift.
    /// </summary>
    public IReadOnlyList<TensorSpec> BuildSpecs()
    {
        if (DModel % Heads != 0) throw new ArgumentException("DModel must be a multiple of Heads.");
        var s = new List<TensorSpec>
        {
            new("Embed", [Vocab, DModel]),
            new("Pos", [Context, DModel]),
        };
        for (int l = 0; l < Layers; l++)
        {
            string p = $"L{l}";
            s.Add(new(p + "Ln1G", [DModel]));
            s.Add(new(p + "Ln1B", [DModel]));
            s.Add(new(p + "Wqkv", [DModel, 3 * DModel]));
            s.Add(new(p + "Wo", [DModel, DModel]));
            s.Add(new(p + "Ln2G", [DModel]));
            s.Add(new(p + "Ln2B", [DModel]));
            s.Add(new(p + "W1", [DModel, FeedForward]));
            s.Add(new(p + "B1", [FeedForward]));
            s.Add(new(p + "W2", [FeedForward, DModel]));
            s.Add(new(p + "B2", [DModel]));
        }
        s.Add(new("LnfG", [DModel]));
        s.Add(new("LnfB", [DModel]));
        s.Add(new("Head", [DModel, Vocab]));
        s.Add(new("HeadB", [Vocab]));
        return s;
    }

    /// <summary>Elements of a tensor.</summary>
    public static int Length(TensorSpec spec) => spec.Shape.Aggregate(1, (a, b) => checked(a * b));

    /// <summary>
    /// The first difference between two tensor lists (count, then per position name, shape, ratio override, sketching), or
    /// null when they are the same. <see cref="TensorSpec"/>'s own equality compares the shape arrays by reference.
    /// </summary>
    public static string? SpecsDiffer(IReadOnlyList<TensorSpec> expected, IReadOnlyList<TensorSpec> actual)
    {
        if (expected.Count != actual.Count) return $"{expected.Count} tensors expected, {actual.Count} found";
        for (int i = 0; i < expected.Count; i++)
        {
            TensorSpec e = expected[i], a = actual[i];
            if (e.Name != a.Name || !e.Shape.SequenceEqual(a.Shape) || e.Ratio != a.Ratio || e.Sketching != a.Sketching)
                return $"tensor {i}: expected {Describe(e)}, found {Describe(a)}";
        }
        return null;

        static string Describe(TensorSpec t) => $"{t.Name} [{string.Join(", ", t.Shape)}] ratio {t.Ratio} {t.Sketching}";
    }

    public long ParameterCount => Specs().Sum(t => (long)Length(t));
}
