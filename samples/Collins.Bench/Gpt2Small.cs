namespace Collins.Bench;

/// <summary>
/// A GPT-2-small-shaped model for the whole-model step bench: token and position embeddings, 12 blocks of attention and MLP
/// weights with their biases and layer norms, the final norm — 148 tensors, 124,439,808 parameters, every one declared with
/// <c>[Tensor]</c> as a user would (shapes of the public GPT-2 small configuration: vocabulary 50257, context 1024, width 768,
/// MLP 3072). Six optimizers: the algorithm as specified at Ratio 32; the Rotation setting with β1 = 0 and Mean; the factored
/// second moment with β1 = 0, with a 4-bit block-quantised first moment (stochastic rounding; recommended at about 0.7 B/param)
/// and with an 8-bit one; and the factored second moment with β1 = 0, update clipping and every tensor factored (DenseThreshold 0;
/// recommended at about 0.14 B/param). With the default dense threshold (4096 entries) the 98 vectors (biases, layer norms) are
/// dense and the 50 matrices sketched or factored; in Factored_ClipAll the vectors are factored as d × 1 too. One instance holds the 498 MB of parameters; the
/// bench makes one.
/// </summary>
[SketchedOptimizer(Name = "Rotation_R32", Ratio = 32)]
[SketchedOptimizer(Name = "Rotation_R32_MeanB0", Ratio = 32, Beta1 = 0, SecondMoment = SecondMomentEstimate.Mean)]
[SketchedOptimizer(Name = "Factored_B0", Beta1 = 0, SecondMoment = SecondMomentEstimate.Factored)]
[SketchedOptimizer(Name = "Factored_Q4", SecondMoment = SecondMomentEstimate.Factored, FirstMoment = FirstMomentStorage.Quantized4, StochasticRounding = true)]
[SketchedOptimizer(Name = "Factored_ClipAll", Beta1 = 0, SecondMoment = SecondMomentEstimate.Factored, UpdateClipping = 1, DenseThreshold = 0)]
[SketchedOptimizer(Name = "Factored_Q8", SecondMoment = SecondMomentEstimate.Factored, FirstMoment = FirstMomentStorage.Quantized8, StochasticRounding = true)]
public partial class Gpt2Small
{
    public const int Vocab = 50257, Context = 1024, Width = 768, Mlp = 3072, Layers = 12;

    [Tensor(Vocab, Width)] public float[] Wte = new float[Vocab * Width];
    [Tensor(Context, Width)] public float[] Wpe = new float[Context * Width];
    [Tensor(Width)] public float[] H0Ln1G = new float[Width]; [Tensor(Width)] public float[] H0Ln1B = new float[Width];
    [Tensor(Width, 3 * Width)] public float[] H0AttnW = new float[Width * 3 * Width]; [Tensor(3 * Width)] public float[] H0AttnB = new float[3 * Width];
    [Tensor(Width, Width)] public float[] H0ProjW = new float[Width * Width]; [Tensor(Width)] public float[] H0ProjB = new float[Width];
    [Tensor(Width)] public float[] H0Ln2G = new float[Width]; [Tensor(Width)] public float[] H0Ln2B = new float[Width];
    [Tensor(Width, Mlp)] public float[] H0FcW = new float[Width * Mlp]; [Tensor(Mlp)] public float[] H0FcB = new float[Mlp];
    [Tensor(Mlp, Width)] public float[] H0MlpProjW = new float[Mlp * Width]; [Tensor(Width)] public float[] H0MlpProjB = new float[Width];
    [Tensor(Width)] public float[] H1Ln1G = new float[Width]; [Tensor(Width)] public float[] H1Ln1B = new float[Width];
    [Tensor(Width, 3 * Width)] public float[] H1AttnW = new float[Width * 3 * Width]; [Tensor(3 * Width)] public float[] H1AttnB = new float[3 * Width];
    [Tensor(Width, Width)] public float[] H1ProjW = new float[Width * Width]; [Tensor(Width)] public float[] H1ProjB = new float[Width];
    [Tensor(Width)] public float[] H1Ln2G = new float[Width]; [Tensor(Width)] public float[] H1Ln2B = new float[Width];
    [Tensor(Width, Mlp)] public float[] H1FcW = new float[Width * Mlp]; [Tensor(Mlp)] public float[] H1FcB = new float[Mlp];
    [Tensor(Mlp, Width)] public float[] H1MlpProjW = new float[Mlp * Width]; [Tensor(Width)] public float[] H1MlpProjB = new float[Width];
    [Tensor(Width)] public float[] H2Ln1G = new float[Width]; [Tensor(Width)] public float[] H2Ln1B = new float[Width];
    [Tensor(Width, 3 * Width)] public float[] H2AttnW = new float[Width * 3 * Width]; [Tensor(3 * Width)] public float[] H2AttnB = new float[3 * Width];
    [Tensor(Width, Width)] public float[] H2ProjW = new float[Width * Width]; [Tensor(Width)] public float[] H2ProjB = new float[Width];
    [Tensor(Width)] public float[] H2Ln2G = new float[Width]; [Tensor(Width)] public float[] H2Ln2B = new float[Width];
    [Tensor(Width, Mlp)] public float[] H2FcW = new float[Width * Mlp]; [Tensor(Mlp)] public float[] H2FcB = new float[Mlp];
    [Tensor(Mlp, Width)] public float[] H2MlpProjW = new float[Mlp * Width]; [Tensor(Width)] public float[] H2MlpProjB = new float[Width];
    [Tensor(Width)] public float[] H3Ln1G = new float[Width]; [Tensor(Width)] public float[] H3Ln1B = new float[Width];
    [Tensor(Width, 3 * Width)] public float[] H3AttnW = new float[Width * 3 * Width]; [Tensor(3 * Width)] public float[] H3AttnB = new float[3 * Width];
    [Tensor(Width, Width)] public float[] H3ProjW = new float[Width * Width]; [Tensor(Width)] public float[] H3ProjB = new float[Width];
    [Tensor(Width)] public float[] H3Ln2G = new float[Width]; [Tensor(Width)] public float[] H3Ln2B = new float[Width];
    [Tensor(Width, Mlp)] public float[] H3FcW = new float[Width * Mlp]; [Tensor(Mlp)] public float[] H3FcB = new float[Mlp];
    [Tensor(Mlp, Width)] public float[] H3MlpProjW = new float[Mlp * Width]; [Tensor(Width)] public float[] H3MlpProjB = new float[Width];
    [Tensor(Width)] public float[] H4Ln1G = new float[Width]; [Tensor(Width)] public float[] H4Ln1B = new float[Width];
    [Tensor(Width, 3 * Width)] public float[] H4AttnW = new float[Width * 3 * Width]; [Tensor(3 * Width)] public float[] H4AttnB = new float[3 * Width];
    [Tensor(Width, Width)] public float[] H4ProjW = new float[Width * Width]; [Tensor(Width)] public float[] H4ProjB = new float[Width];
    [Tensor(Width)] public float[] H4Ln2G = new float[Width]; [Tensor(Width)] public float[] H4Ln2B = new float[Width];
    [Tensor(Width, Mlp)] public float[] H4FcW = new float[Width * Mlp]; [Tensor(Mlp)] public float[] H4FcB = new float[Mlp];
    [Tensor(Mlp, Width)] public float[] H4MlpProjW = new float[Mlp * Width]; [Tensor(Width)] public float[] H4MlpProjB = new float[Width];
    [Tensor(Width)] public float[] H5Ln1G = new float[Width]; [Tensor(Width)] public float[] H5Ln1B = new float[Width];
    [Tensor(Width, 3 * Width)] public float[] H5AttnW = new float[Width * 3 * Width]; [Tensor(3 * Width)] public float[] H5AttnB = new float[3 * Width];
    [Tensor(Width, Width)] public float[] H5ProjW = new float[Width * Width]; [Tensor(Width)] public float[] H5ProjB = new float[Width];
    [Tensor(Width)] public float[] H5Ln2G = new float[Width]; [Tensor(Width)] public float[] H5Ln2B = new float[Width];
    [Tensor(Width, Mlp)] public float[] H5FcW = new float[Width * Mlp]; [Tensor(Mlp)] public float[] H5FcB = new float[Mlp];
    [Tensor(Mlp, Width)] public float[] H5MlpProjW = new float[Mlp * Width]; [Tensor(Width)] public float[] H5MlpProjB = new float[Width];
    [Tensor(Width)] public float[] H6Ln1G = new float[Width]; [Tensor(Width)] public float[] H6Ln1B = new float[Width];
    [Tensor(Width, 3 * Width)] public float[] H6AttnW = new float[Width * 3 * Width]; [Tensor(3 * Width)] public float[] H6AttnB = new float[3 * Width];
    [Tensor(Width, Width)] public float[] H6ProjW = new float[Width * Width]; [Tensor(Width)] public float[] H6ProjB = new float[Width];
    [Tensor(Width)] public float[] H6Ln2G = new float[Width]; [Tensor(Width)] public float[] H6Ln2B = new float[Width];
    [Tensor(Width, Mlp)] public float[] H6FcW = new float[Width * Mlp]; [Tensor(Mlp)] public float[] H6FcB = new float[Mlp];
    [Tensor(Mlp, Width)] public float[] H6MlpProjW = new float[Mlp * Width]; [Tensor(Width)] public float[] H6MlpProjB = new float[Width];
    [Tensor(Width)] public float[] H7Ln1G = new float[Width]; [Tensor(Width)] public float[] H7Ln1B = new float[Width];
    [Tensor(Width, 3 * Width)] public float[] H7AttnW = new float[Width * 3 * Width]; [Tensor(3 * Width)] public float[] H7AttnB = new float[3 * Width];
    [Tensor(Width, Width)] public float[] H7ProjW = new float[Width * Width]; [Tensor(Width)] public float[] H7ProjB = new float[Width];
    [Tensor(Width)] public float[] H7Ln2G = new float[Width]; [Tensor(Width)] public float[] H7Ln2B = new float[Width];
    [Tensor(Width, Mlp)] public float[] H7FcW = new float[Width * Mlp]; [Tensor(Mlp)] public float[] H7FcB = new float[Mlp];
    [Tensor(Mlp, Width)] public float[] H7MlpProjW = new float[Mlp * Width]; [Tensor(Width)] public float[] H7MlpProjB = new float[Width];
    [Tensor(Width)] public float[] H8Ln1G = new float[Width]; [Tensor(Width)] public float[] H8Ln1B = new float[Width];
    [Tensor(Width, 3 * Width)] public float[] H8AttnW = new float[Width * 3 * Width]; [Tensor(3 * Width)] public float[] H8AttnB = new float[3 * Width];
    [Tensor(Width, Width)] public float[] H8ProjW = new float[Width * Width]; [Tensor(Width)] public float[] H8ProjB = new float[Width];
    [Tensor(Width)] public float[] H8Ln2G = new float[Width]; [Tensor(Width)] public float[] H8Ln2B = new float[Width];
    [Tensor(Width, Mlp)] public float[] H8FcW = new float[Width * Mlp]; [Tensor(Mlp)] public float[] H8FcB = new float[Mlp];
    [Tensor(Mlp, Width)] public float[] H8MlpProjW = new float[Mlp * Width]; [Tensor(Width)] public float[] H8MlpProjB = new float[Width];
    [Tensor(Width)] public float[] H9Ln1G = new float[Width]; [Tensor(Width)] public float[] H9Ln1B = new float[Width];
    [Tensor(Width, 3 * Width)] public float[] H9AttnW = new float[Width * 3 * Width]; [Tensor(3 * Width)] public float[] H9AttnB = new float[3 * Width];
    [Tensor(Width, Width)] public float[] H9ProjW = new float[Width * Width]; [Tensor(Width)] public float[] H9ProjB = new float[Width];
    [Tensor(Width)] public float[] H9Ln2G = new float[Width]; [Tensor(Width)] public float[] H9Ln2B = new float[Width];
    [Tensor(Width, Mlp)] public float[] H9FcW = new float[Width * Mlp]; [Tensor(Mlp)] public float[] H9FcB = new float[Mlp];
    [Tensor(Mlp, Width)] public float[] H9MlpProjW = new float[Mlp * Width]; [Tensor(Width)] public float[] H9MlpProjB = new float[Width];
    [Tensor(Width)] public float[] H10Ln1G = new float[Width]; [Tensor(Width)] public float[] H10Ln1B = new float[Width];
    [Tensor(Width, 3 * Width)] public float[] H10AttnW = new float[Width * 3 * Width]; [Tensor(3 * Width)] public float[] H10AttnB = new float[3 * Width];
    [Tensor(Width, Width)] public float[] H10ProjW = new float[Width * Width]; [Tensor(Width)] public float[] H10ProjB = new float[Width];
    [Tensor(Width)] public float[] H10Ln2G = new float[Width]; [Tensor(Width)] public float[] H10Ln2B = new float[Width];
    [Tensor(Width, Mlp)] public float[] H10FcW = new float[Width * Mlp]; [Tensor(Mlp)] public float[] H10FcB = new float[Mlp];
    [Tensor(Mlp, Width)] public float[] H10MlpProjW = new float[Mlp * Width]; [Tensor(Width)] public float[] H10MlpProjB = new float[Width];
    [Tensor(Width)] public float[] H11Ln1G = new float[Width]; [Tensor(Width)] public float[] H11Ln1B = new float[Width];
    [Tensor(Width, 3 * Width)] public float[] H11AttnW = new float[Width * 3 * Width]; [Tensor(3 * Width)] public float[] H11AttnB = new float[3 * Width];
    [Tensor(Width, Width)] public float[] H11ProjW = new float[Width * Width]; [Tensor(Width)] public float[] H11ProjB = new float[Width];
    [Tensor(Width)] public float[] H11Ln2G = new float[Width]; [Tensor(Width)] public float[] H11Ln2B = new float[Width];
    [Tensor(Width, Mlp)] public float[] H11FcW = new float[Width * Mlp]; [Tensor(Mlp)] public float[] H11FcB = new float[Mlp];
    [Tensor(Mlp, Width)] public float[] H11MlpProjW = new float[Mlp * Width]; [Tensor(Width)] public float[] H11MlpProjB = new float[Width];
    [Tensor(Width)] public float[] LnfG = new float[Width];
    [Tensor(Width)] public float[] LnfB = new float[Width];
}
