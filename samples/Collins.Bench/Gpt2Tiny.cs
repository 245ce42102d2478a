namespace Collins.Bench;

/// <summary>
/// <see cref="Gpt2Small"/>'s structure at a toy size, for checking the whole-model device path on ILGPU's CPU accelerator
/// (<c>--gpu --gpu-backend cpu --whole-model --model tiny</c>; that accelerator takes seconds per step over GPT-2 small): the same
/// six optimizers and the same kinds of tensor (embeddings, 2 blocks of attention and MLP weights with biases and layer norms, the
/// final norm; 28 tensors, 141,056 parameters; vocabulary 512, context 128, width 64, MLP 256). Not a benchmark.
/// </summary>
[SketchedOptimizer(Name = "Rotation_R32", Ratio = 32)]
[SketchedOptimizer(Name = "Rotation_R32_MeanB0", Ratio = 32, Beta1 = 0, SecondMoment = SecondMomentEstimate.Mean)]
[SketchedOptimizer(Name = "Factored_B0", Beta1 = 0, SecondMoment = SecondMomentEstimate.Factored)]
[SketchedOptimizer(Name = "Factored_Q4", SecondMoment = SecondMomentEstimate.Factored, FirstMoment = FirstMomentStorage.Quantized4, StochasticRounding = true)]
[SketchedOptimizer(Name = "Factored_ClipAll", Beta1 = 0, SecondMoment = SecondMomentEstimate.Factored, UpdateClipping = 1, DenseThreshold = 0)]
[SketchedOptimizer(Name = "Factored_Q8", SecondMoment = SecondMomentEstimate.Factored, FirstMoment = FirstMomentStorage.Quantized8, StochasticRounding = true)]
public partial class Gpt2Tiny
{
    public const int Vocab = 512, Context = 128, Width = 64, Mlp = 256, Layers = 2;

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
    [Tensor(Width)] public float[] LnfG = new float[Width];
    [Tensor(Width)] public float[] LnfB = new float[Width];
}
