// Models annotated for the real generator (referenced as an analyzer by this project). Each class
// exercises a different corner of the emitted code; GeneratedOptimizerTests checks them against
// Collins.ReferenceOptimizer.
namespace Collins.Tests.Generated
{
    /// <summary>Rotation, Sum, β1 = 0.9, weight decay; ragged shapes: prime, below ratio, not a multiple of ratio or vector width, one element.</summary>
    [SketchedOptimizer(Ratio = 16, Beta1 = 0.9, WeightDecay = 0.01, DenseThreshold = 64)]
    [SketchedOptimizer(Name = "MeanNoMomentum", Ratio = 16, Beta1 = 0, SecondMoment = SecondMomentEstimate.Mean, DenseThreshold = 64, Seed = 7)]
    public partial class RaggedRotation
    {
        [Tensor(10007)] public float[] Prime = new float[10007];
        [Tensor(7, Sketching = TensorSketching.Sketched)] public float[] Tiny = new float[7];
        [Tensor(4099, 3)] public float[] Odd = new float[4099 * 3];
        [Tensor(1)] public float[] One = new float[1];
        [Tensor(33)] public float[] Small = new float[33];
        [Tensor(64, 40, Ratio = 4)] public float[] Override { get; set; } = new float[64 * 40];
    }

    /// <summary>Universal layout, both estimates, β1 both ways.</summary>
    [SketchedOptimizer(Layout = SketchLayout.Universal, Ratio = 16, WeightDecay = 0.05, DenseThreshold = 64)]
    [SketchedOptimizer(Name = "MeanNoMomentum", Layout = SketchLayout.Universal, Ratio = 8, Beta1 = 0, SecondMoment = SecondMomentEstimate.Mean, DenseThreshold = 64)]
    public partial class RaggedUniversal
    {
        [Tensor(10007)] public float[] Prime = new float[10007];
        [Tensor(7, Sketching = TensorSketching.Sketched)] public float[] Tiny = new float[7];
        [Tensor(4099, 3)] public float[] Odd = new float[4099 * 3];
        [Tensor(1)] public float[] One = new float[1];
    }

    public static partial class Outer
    {
        /// <summary>Nested in a partial type, one large tensor (≥ 4M elements) for the multi-tile paths.</summary>
        [SketchedOptimizer(Ratio = 32, Beta1 = 0.9, SecondMoment = SecondMomentEstimate.Mean)]
        public partial class Large
        {
            [Tensor(4_194_319, Name = "Big")] public float[] Weights = new float[4_194_319];
            [Tensor(128)] public float[] Bias = new float[128];
        }
    }
}

namespace Collins.Tests.Generated
{
    /// <summary>Small shapes for the ILGPU CPU-accelerator tests (a few thousand elements): Rotation, both β1 and both estimates via two variants.</summary>
    [SketchedOptimizer(Ratio = 8, Beta1 = 0.9, WeightDecay = 0.02, DenseThreshold = 100)]
    [SketchedOptimizer(Name = "MeanNoMomentum", Ratio = 8, Beta1 = 0, SecondMoment = SecondMomentEstimate.Mean, DenseThreshold = 100)]
    public partial class DeviceRotation
    {
        [Tensor(3001)] public float[] W = new float[3001];
        [Tensor(40, 13)] public float[] V = new float[520];
        [Tensor(50)] public float[] B = new float[50];
    }

    /// <summary>Small shapes for the ILGPU CPU-accelerator tests: Universal layout.</summary>
    [SketchedOptimizer(Layout = SketchLayout.Universal, Ratio = 8, Beta1 = 0.9, DenseThreshold = 100)]
    [SketchedOptimizer(Name = "MeanNoMomentum", Layout = SketchLayout.Universal, Ratio = 8, Beta1 = 0, SecondMoment = SecondMomentEstimate.Mean, WeightDecay = 0.1, DenseThreshold = 100)]
    public partial class DeviceUniversal
    {
        [Tensor(2503)] public float[] W = new float[2503];
        [Tensor(7, Sketching = TensorSketching.Sketched)] public float[] T = new float[7];
        [Tensor(50)] public float[] B = new float[50];
    }
}

namespace Collins.Tests.Generated
{
    /// <summary>
    /// Non-default β1 = 0.5, β2 = 0.95, ε = 1e-6 (and weight decay) in both layouts × both second-moment
    /// estimates, with sketched (W, V) and dense (B) tensors: NonDefaultHyperparameterTests steps them, so an
    /// emitter that hard-coded 0.9 / 0.999 / 1e-8 fails.
    /// </summary>
    [SketchedOptimizer(Name = "RotSum", Ratio = 8, Beta1 = 0.5, Beta2 = 0.95, Epsilon = 1e-6, WeightDecay = 0.01, DenseThreshold = 100, Seed = 5)]
    [SketchedOptimizer(Name = "RotMean", Ratio = 8, Beta1 = 0.5, Beta2 = 0.95, Epsilon = 1e-6, SecondMoment = SecondMomentEstimate.Mean, DenseThreshold = 100, Seed = 5)]
    [SketchedOptimizer(Name = "UniSum", Layout = SketchLayout.Universal, Ratio = 8, Beta1 = 0.5, Beta2 = 0.95, Epsilon = 1e-6, DenseThreshold = 100, Seed = 5)]
    [SketchedOptimizer(Name = "UniMean", Layout = SketchLayout.Universal, Ratio = 8, Beta1 = 0.5, Beta2 = 0.95, Epsilon = 1e-6, SecondMoment = SecondMomentEstimate.Mean, WeightDecay = 0.01, DenseThreshold = 100, Seed = 5)]
    public partial class OddHyper
    {
        [Tensor(3001)] public float[] W = new float[3001];
        [Tensor(40, 13)] public float[] V = new float[520];
        [Tensor(50)] public float[] B = new float[50];
    }
}

namespace Collins.Tests.Generated
{
    /// <summary>
    /// Tensors big enough for several tiles in every phase (W: past UniversalCpu.SplitThreshold = 2^20 and many
    /// element tiles; D: dense, three DenseAdamWCpu tiles), so that MaxThreads really changes who runs what:
    /// the thread-count determinism tests of the Universal layout and of β1 = 0 use it (the Ragged models run one tile per phase).
    /// </summary>
    [SketchedOptimizer(Name = "Universal", Layout = SketchLayout.Universal, Ratio = 16, Beta1 = 0.9, WeightDecay = 0.01)]
    [SketchedOptimizer(Name = "RotationNoMomentum", Ratio = 16, Beta1 = 0, SecondMoment = SecondMomentEstimate.Mean)]
    public partial class Wide
    {
        [Tensor(1_048_593)] public float[] W = new float[1_048_593];
        [Tensor(3 * 65536 + 11, Sketching = TensorSketching.Dense)] public float[] D = new float[3 * 65536 + 11];
    }
}
