namespace TinyLm;

/// <summary>
/// Each generated gradient holder <c>TinyLmModel.{Variant}.Gradients</c> as a list of arrays in declaration order (the order of
/// <see cref="TinyLmModel.Tensors"/> and <see cref="ModelConfig.Specs"/>), which is how the backward pass indexes them.
/// </summary>
/// <remarks>
/// The holders have the same members but are nine unrelated generated types, so the order is written here once per type:
/// the generator does not (yet) emit it. ModelDeclarationTests checks every list against the holder's members by name.
/// </remarks>
public static class GradientTensors
{
    /// <summary>The arrays of a <see cref="TinyLmModel.C32.Gradients"/> in declaration order.</summary>
    public static float[][] Tensors(this TinyLmModel.C32.Gradients g) =>
    [
        g.Embed, g.Pos,
        g.L0Ln1G, g.L0Ln1B, g.L0Wqkv, g.L0Wo, g.L0Ln2G, g.L0Ln2B, g.L0W1, g.L0B1, g.L0W2, g.L0B2,
        g.L1Ln1G, g.L1Ln1B, g.L1Wqkv, g.L1Wo, g.L1Ln2G, g.L1Ln2B, g.L1W1, g.L1B1, g.L1W2, g.L1B2,
        g.LnfG, g.LnfB, g.Head, g.HeadB,
    ];

    /// <summary>The arrays of a <see cref="TinyLmModel.C32Mean.Gradients"/> in declaration order.</summary>
    public static float[][] Tensors(this TinyLmModel.C32Mean.Gradients g) =>
    [
        g.Embed, g.Pos,
        g.L0Ln1G, g.L0Ln1B, g.L0Wqkv, g.L0Wo, g.L0Ln2G, g.L0Ln2B, g.L0W1, g.L0B1, g.L0W2, g.L0B2,
        g.L1Ln1G, g.L1Ln1B, g.L1Wqkv, g.L1Wo, g.L1Ln2G, g.L1Ln2B, g.L1W1, g.L1B1, g.L1W2, g.L1B2,
        g.LnfG, g.LnfB, g.Head, g.HeadB,
    ];

    /// <summary>The arrays of a <see cref="TinyLmModel.C32Universal.Gradients"/> in declaration order.</summary>
    public static float[][] Tensors(this TinyLmModel.C32Universal.Gradients g) =>
    [
        g.Embed, g.Pos,
        g.L0Ln1G, g.L0Ln1B, g.L0Wqkv, g.L0Wo, g.L0Ln2G, g.L0Ln2B, g.L0W1, g.L0B1, g.L0W2, g.L0B2,
        g.L1Ln1G, g.L1Ln1B, g.L1Wqkv, g.L1Wo, g.L1Ln2G, g.L1Ln2B, g.L1W1, g.L1B1, g.L1W2, g.L1B2,
        g.LnfG, g.LnfB, g.Head, g.HeadB,
    ];

    /// <summary>The arrays of a <see cref="TinyLmModel.C32NoMomentum.Gradients"/> in declaration order.</summary>
    public static float[][] Tensors(this TinyLmModel.C32NoMomentum.Gradients g) =>
    [
        g.Embed, g.Pos,
        g.L0Ln1G, g.L0Ln1B, g.L0Wqkv, g.L0Wo, g.L0Ln2G, g.L0Ln2B, g.L0W1, g.L0B1, g.L0W2, g.L0B2,
        g.L1Ln1G, g.L1Ln1B, g.L1Wqkv, g.L1Wo, g.L1Ln2G, g.L1Ln2B, g.L1W1, g.L1B1, g.L1W2, g.L1B2,
        g.LnfG, g.LnfB, g.Head, g.HeadB,
    ];

    /// <summary>The arrays of a <see cref="TinyLmModel.C32MeanNoMomentum.Gradients"/> in declaration order.</summary>
    public static float[][] Tensors(this TinyLmModel.C32MeanNoMomentum.Gradients g) =>
    [
        g.Embed, g.Pos,
        g.L0Ln1G, g.L0Ln1B, g.L0Wqkv, g.L0Wo, g.L0Ln2G, g.L0Ln2B, g.L0W1, g.L0B1, g.L0W2, g.L0B2,
        g.L1Ln1G, g.L1Ln1B, g.L1Wqkv, g.L1Wo, g.L1Ln2G, g.L1Ln2B, g.L1W1, g.L1B1, g.L1W2, g.L1B2,
        g.LnfG, g.LnfB, g.Head, g.HeadB,
    ];

    /// <summary>The arrays of a <see cref="TinyLmModel.C1.Gradients"/> in declaration order.</summary>
    public static float[][] Tensors(this TinyLmModel.C1.Gradients g) =>
    [
        g.Embed, g.Pos,
        g.L0Ln1G, g.L0Ln1B, g.L0Wqkv, g.L0Wo, g.L0Ln2G, g.L0Ln2B, g.L0W1, g.L0B1, g.L0W2, g.L0B2,
        g.L1Ln1G, g.L1Ln1B, g.L1Wqkv, g.L1Wo, g.L1Ln2G, g.L1Ln2B, g.L1W1, g.L1B1, g.L1W2, g.L1B2,
        g.LnfG, g.LnfB, g.Head, g.HeadB,
    ];

    /// <summary>The arrays of a <see cref="TinyLmModel.C4.Gradients"/> in declaration order.</summary>
    public static float[][] Tensors(this TinyLmModel.C4.Gradients g) =>
    [
        g.Embed, g.Pos,
        g.L0Ln1G, g.L0Ln1B, g.L0Wqkv, g.L0Wo, g.L0Ln2G, g.L0Ln2B, g.L0W1, g.L0B1, g.L0W2, g.L0B2,
        g.L1Ln1G, g.L1Ln1B, g.L1Wqkv, g.L1Wo, g.L1Ln2G, g.L1Ln2B, g.L1W1, g.L1B1, g.L1W2, g.L1B2,
        g.LnfG, g.LnfB, g.Head, g.HeadB,
    ];

    /// <summary>The arrays of a <see cref="TinyLmModel.C8.Gradients"/> in declaration order.</summary>
    public static float[][] Tensors(this TinyLmModel.C8.Gradients g) =>
    [
        g.Embed, g.Pos,
        g.L0Ln1G, g.L0Ln1B, g.L0Wqkv, g.L0Wo, g.L0Ln2G, g.L0Ln2B, g.L0W1, g.L0B1, g.L0W2, g.L0B2,
        g.L1Ln1G, g.L1Ln1B, g.L1Wqkv, g.L1Wo, g.L1Ln2G, g.L1Ln2B, g.L1W1, g.L1B1, g.L1W2, g.L1B2,
        g.LnfG, g.LnfB, g.Head, g.HeadB,
    ];

    /// <summary>The arrays of a <see cref="TinyLmModel.C64.Gradients"/> in declaration order.</summary>
    public static float[][] Tensors(this TinyLmModel.C64.Gradients g) =>
    [
        g.Embed, g.Pos,
        g.L0Ln1G, g.L0Ln1B, g.L0Wqkv, g.L0Wo, g.L0Ln2G, g.L0Ln2B, g.L0W1, g.L0B1, g.L0W2, g.L0B2,
        g.L1Ln1G, g.L1Ln1B, g.L1Wqkv, g.L1Wo, g.L1Ln2G, g.L1Ln2B, g.L1W1, g.L1B1, g.L1W2, g.L1B2,
        g.LnfG, g.LnfB, g.Head, g.HeadB,
    ];
}
