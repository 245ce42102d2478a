using Collins;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace TorchSharpLm;

/// <summary>The transformer's sizes.</summary>
public sealed record ModelConfig(int Vocab, int Context = 64, int DModel = 128, int Heads = 4, int Layers = 2, int FeedForward = 512)
{
    public int HeadDim => DModel / Heads;
}

/// <summary>
/// A pre-LayerNorm causal transformer over characters, written with TorchSharp's layers and autograd: token and position
/// embeddings, <see cref="ModelConfig.Layers"/> blocks of masked multi-head self-attention and a GELU feed-forward, a
/// final LayerNorm and a linear head.
/// </summary>
[SketchedOptimizer(Name = "C32", Ratio = 32)]
[SketchedOptimizer(Name = "C32MeanNoMomentum", Ratio = 32, Beta1 = 0, SecondMoment = SecondMomentEstimate.Mean)]
public sealed partial class CharTransformer : nn.Module<Tensor, Tensor>
{
    private readonly Embedding tok, pos;
    private readonly ModuleList<Block> blocks;
    private readonly LayerNorm lnf;
    private readonly Linear head;

    public CharTransformer(ModelConfig config) : base(nameof(CharTransformer))
    {
        if (config.DModel % config.Heads != 0) throw new ArgumentException($"DModel {config.DModel} is not a multiple of Heads {config.Heads}.", nameof(config));
        Config = config;
        tok = nn.Embedding(config.Vocab, config.DModel);
        pos = nn.Embedding(config.Context, config.DModel);
        blocks = nn.ModuleList(Enumerable.Range(0, config.Layers).Select(_ => new Block(config)).ToArray());
        lnf = nn.LayerNorm(config.DModel);
        head = nn.Linear(config.DModel, config.Vocab);
        RegisterComponents();
    }

    public ModelConfig Config { get; }

    public long ParameterCount => parameters().Sum(p => p.numel());

    /// <summary>Logits [B, T, Vocab] for token indices [B, T] (int64, T ≤ Context).</summary>
    public override Tensor forward(Tensor idx)
    {
        // libtorch 2.10 through TorchSharp 0.107.0 aborts the process on a matmul shape mismatch: check before calling in.
        if (idx.dim() != 2 || idx.dtype != ScalarType.Int64 || idx.shape[1] > Config.Context || idx.shape[1] < 1)
            throw new ArgumentException($"Expected int64 token indices [B, T] with 1 ≤ T ≤ {Config.Context}, got {idx.dtype} [{string.Join(", ", idx.shape)}].", nameof(idx));
        using var scope = NewDisposeScope();
        long t = idx.shape[1];
        var x = tok.call(idx) + pos.call(arange(t, dtype: ScalarType.Int64));
        foreach (var b in blocks) x = b.call(x);
        return head.call(lnf.call(x)).MoveToOuterDisposeScope();
    }

    internal sealed class Block : nn.Module<Tensor, Tensor>
    {
        internal readonly LayerNorm ln1, ln2;
        internal readonly Linear qkv, proj, fc1, fc2;
        private readonly GELU gelu;
        private readonly int heads, headDim;

        public Block(ModelConfig c) : base(nameof(Block))
        {
            heads = c.Heads; headDim = c.HeadDim;
            ln1 = nn.LayerNorm(c.DModel);
            qkv = nn.Linear(c.DModel, 3 * c.DModel);
            proj = nn.Linear(c.DModel, c.DModel);
            ln2 = nn.LayerNorm(c.DModel);
            fc1 = nn.Linear(c.DModel, c.FeedForward);
            fc2 = nn.Linear(c.FeedForward, c.DModel);
            gelu = nn.GELU();
            RegisterComponents();
        }

        public override Tensor forward(Tensor x)
        {
            long b = x.shape[0], t = x.shape[1], d = x.shape[2];
            var q3 = qkv.call(ln1.call(x)).view(b, t, 3, heads, headDim).permute(2, 0, 3, 1, 4); // [3, B, H, T, hd]
            var q = q3[0]; var k = q3[1]; var v = q3[2];
            var att = q.matmul(k.transpose(-2, -1)) * (1.0 / Math.Sqrt(headDim));             // [B, H, T, T]
            var mask = ones(t, t, dtype: ScalarType.Bool).triu(1);
            att = att.masked_fill(mask, float.NegativeInfinity).softmax(-1);
            var y = att.matmul(v).transpose(1, 2).contiguous().view(b, t, d);                    // [B, T, D]
            x = x + proj.call(y);
            return x + fc2.call(gelu.call(fc1.call(ln2.call(x))));
        }
    }
}

/// <summary>
/// The default configuration's parameters declared for the generator (<see cref="DeclaredConfig"/>; vocabulary 65, the
/// shipped text's alphabet): each <c>[Tensor]</c> property returns a submodule's own <c>Parameter</c>, so the generated
/// optimizers (<c>CharTransformer.C32</c>, <c>CharTransformer.C32MeanNoMomentum</c>) step the module in place with
/// <c>Step(lr, model)</c>. A model of another configuration has other shapes, which the generated Step refuses by name;
/// the trainer uses the run-time CollinsOptimizer for those.
/// </summary>
public sealed partial class CharTransformer
{
    public const int Vocab = 65, Context = 64, DModel = 128, FeedForward = 512;

    /// <summary>The configuration the <c>[Tensor]</c> shapes below are declared for.</summary>
    public static ModelConfig DeclaredConfig { get; } = new(Vocab, Context, DModel, Heads: 4, Layers: 2, FeedForward: FeedForward);

    private Block Layer(int i) => blocks[i];

    [Tensor(Vocab, DModel)] private Parameter TokWeight => tok.weight!;
    [Tensor(Context, DModel)] private Parameter PosWeight => pos.weight!;
    [Tensor(DModel)] private Parameter L0Ln1Weight => Layer(0).ln1.weight!;
    [Tensor(DModel)] private Parameter L0Ln1Bias => Layer(0).ln1.bias!;
    [Tensor(3 * DModel, DModel)] private Parameter L0QkvWeight => Layer(0).qkv.weight!;
    [Tensor(3 * DModel)] private Parameter L0QkvBias => Layer(0).qkv.bias!;
    [Tensor(DModel, DModel)] private Parameter L0ProjWeight => Layer(0).proj.weight!;
    [Tensor(DModel)] private Parameter L0ProjBias => Layer(0).proj.bias!;
    [Tensor(DModel)] private Parameter L0Ln2Weight => Layer(0).ln2.weight!;
    [Tensor(DModel)] private Parameter L0Ln2Bias => Layer(0).ln2.bias!;
    [Tensor(FeedForward, DModel)] private Parameter L0Fc1Weight => Layer(0).fc1.weight!;
    [Tensor(FeedForward)] private Parameter L0Fc1Bias => Layer(0).fc1.bias!;
    [Tensor(DModel, FeedForward)] private Parameter L0Fc2Weight => Layer(0).fc2.weight!;
    [Tensor(DModel)] private Parameter L0Fc2Bias => Layer(0).fc2.bias!;
    [Tensor(DModel)] private Parameter L1Ln1Weight => Layer(1).ln1.weight!;
    [Tensor(DModel)] private Parameter L1Ln1Bias => Layer(1).ln1.bias!;
    [Tensor(3 * DModel, DModel)] private Parameter L1QkvWeight => Layer(1).qkv.weight!;
    [Tensor(3 * DModel)] private Parameter L1QkvBias => Layer(1).qkv.bias!;
    [Tensor(DModel, DModel)] private Parameter L1ProjWeight => Layer(1).proj.weight!;
    [Tensor(DModel)] private Parameter L1ProjBias => Layer(1).proj.bias!;
    [Tensor(DModel)] private Parameter L1Ln2Weight => Layer(1).ln2.weight!;
    [Tensor(DModel)] private Parameter L1Ln2Bias => Layer(1).ln2.bias!;
    [Tensor(FeedForward, DModel)] private Parameter L1Fc1Weight => Layer(1).fc1.weight!;
    [Tensor(FeedForward)] private Parameter L1Fc1Bias => Layer(1).fc1.bias!;
    [Tensor(DModel, FeedForward)] private Parameter L1Fc2Weight => Layer(1).fc2.weight!;
    [Tensor(DModel)] private Parameter L1Fc2Bias => Layer(1).fc2.bias!;
    [Tensor(DModel)] private Parameter LnfWeight => lnf.weight!;
    [Tensor(DModel)] private Parameter LnfBias => lnf.bias!;
    [Tensor(Vocab, DModel)] private Parameter HeadWeight => head.weight!;
    [Tensor(Vocab)] private Parameter HeadBias => head.bias!;
}
