// Models annotated for the real generator (referenced as an analyzer by this project). Each class
// exercises a different corner of the emitted code; GeneratedOptimizerTests checks them against
// Collins.ReferenceOptimizer.
namespace Collins.Tests.Generated
{
    /// <summary>Every setting left to the attribute's defaults.</summary>
    [SketchedOptimizer]
    public partial class AllDefaults
    {
        [Tensor(8)] public float[] W = new float[8];
    }

    /// <summary>The factored second moment: a matrix, a 3-D tensor (folded to 6 × 700) and a dense one.</summary>
    [SketchedOptimizer(Beta1 = 0, SecondMoment = SecondMomentEstimate.Factored, WeightDecay = 0.01, DenseThreshold = 100)]
    public partial class FactoredModel
    {
        [Tensor(37, 129)] public float[] W = new float[37 * 129];
        [Tensor(2, 3, 700)] public float[] T = new float[4200];
        [Tensor(20)] public float[] B = new float[20];
    }

    /// <summary>
    /// The quantised first moment with the factored second moment: 8-bit to nearest with the defaults, and 4-bit with stochastic
    /// rounding, a block of 64 and update clipping; the same shapes as <see cref="FactoredModel"/> (blocks cross rows of 129 and 700).
    /// </summary>
    [SketchedOptimizer(Beta1 = 0.9, SecondMoment = SecondMomentEstimate.Factored, FirstMoment = FirstMomentStorage.Quantized8, WeightDecay = 0.01, DenseThreshold = 100)]
    [SketchedOptimizer(Name = "Q4", Beta1 = 0.9, SecondMoment = SecondMomentEstimate.Factored, FirstMoment = FirstMomentStorage.Quantized4, QuantizationBlock = 64,
                       StochasticRounding = true, UpdateClipping = 1, DenseThreshold = 100, Seed = 3)]
    public partial class QuantizedModel
    {
        [Tensor(37, 129)] public float[] W = new float[37 * 129];
        [Tensor(2, 3, 700)] public float[] T = new float[4200];
        [Tensor(20)] public float[] B = new float[20];
    }

    /// <summary>The README's first example, as written there (it must compile and generate): the recommended setting.</summary>
    [SketchedOptimizer(SecondMoment = SecondMomentEstimate.Factored, FirstMoment = FirstMomentStorage.Quantized4, StochasticRounding = true, WeightDecay = 0.01)]
    public partial class ReadmeMlp
    {
        [Tensor(128, 784)] public float[] W1 = new float[128 * 784];
        [Tensor(128)] public float[] B1 = new float[128];
        [Tensor(10, 128, Sketching = TensorSketching.Sketched)] public float[] W2 = new float[1280];
        [Tensor(10)] public float[] B2 = new float[10];
    }

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
    [SketchedOptimizer(Name = "MeanMomentum", Ratio = 8, Beta1 = 0.5, Beta2 = 0.95, Epsilon = 1e-6, SecondMoment = SecondMomentEstimate.Mean, DenseThreshold = 100)]
    [SketchedOptimizer(Name = "SumNoMomentum", Ratio = 8, Beta1 = 0, WeightDecay = 0.1, DenseThreshold = 100)]
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
    /// The guard matrix on the CPU: a sketched tensor, a dense tensor and one large enough (≥ 2^20 entries) for the Rotation
    /// phase 1 to write its sums with non-temporal stores; β1 both ways, both layouts.
    /// </summary>
    [SketchedOptimizer(Name = "RotationM", Ratio = 8, Beta1 = 0.9, WeightDecay = 0.01, DenseThreshold = 100)]
    [SketchedOptimizer(Name = "RotationNoM", Ratio = 8, Beta1 = 0, DenseThreshold = 100)]
    [SketchedOptimizer(Name = "UniversalM", Layout = SketchLayout.Universal, Ratio = 8, Beta1 = 0.9, DenseThreshold = 100)]
    [SketchedOptimizer(Name = "UniversalNoM", Layout = SketchLayout.Universal, Ratio = 8, Beta1 = 0, SecondMoment = SecondMomentEstimate.Mean, DenseThreshold = 100)]
    public partial class GuardMatrix
    {
        [Tensor(3001)] public float[] Sketched = new float[3001];
        [Tensor(50)] public float[] Dense = new float[50];
        [Tensor(1 << 20)] public float[] Large = new float[1 << 20];
    }

    /// <summary>More than 24 tensors (the generated Step once stopped checking cross-tensor aliasing there): sketched and dense alternate.</summary>
    [SketchedOptimizer(Ratio = 4, DenseThreshold = 64)]
    public partial class ManyTensors
    {
        [Tensor(100)] public float[] T00 = new float[100]; [Tensor(30)] public float[] T01 = new float[30];
        [Tensor(100)] public float[] T02 = new float[100]; [Tensor(30)] public float[] T03 = new float[30];
        [Tensor(100)] public float[] T04 = new float[100]; [Tensor(30)] public float[] T05 = new float[30];
        [Tensor(100)] public float[] T06 = new float[100]; [Tensor(30)] public float[] T07 = new float[30];
        [Tensor(100)] public float[] T08 = new float[100]; [Tensor(30)] public float[] T09 = new float[30];
        [Tensor(100)] public float[] T10 = new float[100]; [Tensor(30)] public float[] T11 = new float[30];
        [Tensor(100)] public float[] T12 = new float[100]; [Tensor(30)] public float[] T13 = new float[30];
        [Tensor(100)] public float[] T14 = new float[100]; [Tensor(30)] public float[] T15 = new float[30];
        [Tensor(100)] public float[] T16 = new float[100]; [Tensor(30)] public float[] T17 = new float[30];
        [Tensor(100)] public float[] T18 = new float[100]; [Tensor(30)] public float[] T19 = new float[30];
        [Tensor(100)] public float[] T20 = new float[100]; [Tensor(30)] public float[] T21 = new float[30];
        [Tensor(100)] public float[] T22 = new float[100]; [Tensor(30)] public float[] T23 = new float[30];
        [Tensor(100)] public float[] T24 = new float[100]; [Tensor(30)] public float[] T25 = new float[30];
    }

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
    /// Every layout × second-moment estimate × β1, for the bit-identity of generated and run-time optimizers: a prime, a ragged
    /// matrix, a tiny sketched tensor, a dense one and one above the non-temporal threshold (2^20 + 3 entries).
    /// </summary>
    [SketchedOptimizer(Name = "RotSumM", Ratio = 8, Beta1 = 0.9, WeightDecay = 0.01, DenseThreshold = 64)]
    [SketchedOptimizer(Name = "RotSumNoM", Ratio = 8, Beta1 = 0, Beta2 = 0.99, DenseThreshold = 64)]
    [SketchedOptimizer(Name = "RotMeanM", Ratio = 8, Beta1 = 0.5, Beta2 = 0.95, Epsilon = 1e-6, SecondMoment = SecondMomentEstimate.Mean, DenseThreshold = 64, Seed = 3)]
    [SketchedOptimizer(Name = "RotMeanNoM", Ratio = 8, Beta1 = 0, SecondMoment = SecondMomentEstimate.Mean, WeightDecay = 0.1, DenseThreshold = 64)]
    [SketchedOptimizer(Name = "UniSumM", Layout = SketchLayout.Universal, Ratio = 8, Beta1 = 0.9, WeightDecay = 0.01, DenseThreshold = 64)]
    [SketchedOptimizer(Name = "UniSumNoM", Layout = SketchLayout.Universal, Ratio = 8, Beta1 = 0, Epsilon = 1e-7, DenseThreshold = 64)]
    [SketchedOptimizer(Name = "UniMeanM", Layout = SketchLayout.Universal, Ratio = 8, Beta1 = 0.5, Beta2 = 0.95, SecondMoment = SecondMomentEstimate.Mean, DenseThreshold = 64, Seed = 5)]
    [SketchedOptimizer(Name = "UniMeanNoM", Layout = SketchLayout.Universal, Ratio = 8, Beta1 = 0, SecondMoment = SecondMomentEstimate.Mean, DenseThreshold = 64)]
    public partial class LayoutMatrix
    {
        [Tensor(10007)] public float[] Prime = new float[10007];
        [Tensor(301, 13)] public float[] Ragged = new float[301 * 13];
        [Tensor(7, Sketching = TensorSketching.Sketched)] public float[] Tiny = new float[7];
        [Tensor(40)] public float[] Dense = new float[40];
        [Tensor((1 << 20) + 3)] public float[] Large = new float[(1 << 20) + 3];
    }

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

namespace Collins.Tests.Generated
{
    /// <summary>Members the model-typed Step must reach in unusual ways: a static member and one named like a keyword.</summary>
    [SketchedOptimizer(Ratio = 4, DenseThreshold = 0)]
    public partial class OddMembers
    {
#pragma warning disable CA2211 // a mutable public static [Tensor] member is exactly the case under test
        [Tensor(8, 8)] public static float[] Shared = new float[64];
#pragma warning restore CA2211
        [Tensor(8, 8, Name = "Kw")] public float[] @event = new float[64];
    }
}
