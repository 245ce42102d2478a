// This file is compiled into BOTH the runtime (src/Collins) and the source generator (generator/, netstandard2.0) through a
// <Compile Link> item, like Hashing/HashDerivation.cs: the single definition of the settings' defaults, of what makes a
// setting valid and of which tensors stay dense. SketchedOptimizerAttribute, OptimizerSettings, TensorPlan and the
// generator's ModelBuilder all read it; never restate a default or a rule elsewhere. Keep it free of APIs newer than
// netstandard2.0.

namespace Collins.Planning
{
    /// <summary>Defaults, validity rules and the dense rule of an optimizer's settings, shared by the runtime and the generator.</summary>
    internal static class SettingsRules
    {
        /// <summary>Default compression ratio.</summary>
        public const int Ratio = 32;
        /// <summary>Default first-moment decay.</summary>
        public const double Beta1 = 0.9;
        /// <summary>Default second-moment decay.</summary>
        public const double Beta2 = 0.999;
        /// <summary>Default ε.</summary>
        public const double Epsilon = 1e-8;
        /// <summary>Default decoupled weight decay.</summary>
        public const double WeightDecay = 0;
        /// <summary>Default dense threshold: tensors with fewer entries stay dense unless marked sketched.</summary>
        public const int DenseThreshold = 4096;
        /// <summary>Default seed.</summary>
        public const long Seed = 0;

        /// <summary>A ratio is at least 1 (1 = dense).</summary>
        public static bool RatioIsValid(int ratio) => ratio >= 1;

        /// <summary>β in [0, 1) whose float the kernels use is below 1 too (0.99999999 rounds to 1f, which would freeze the moment).</summary>
        public static bool BetaIsValid(double beta) => beta >= 0 && beta < 1 && (float)beta < 1f;

        /// <summary>ε finite and &gt; 0, also as the float the kernels use (1e-50 rounds to 0f, 1e39 to +∞).</summary>
        public static bool EpsilonIsValid(double epsilon)
            => epsilon > 0 && !double.IsInfinity(epsilon) && (float)epsilon > 0f && !float.IsInfinity((float)epsilon);

        /// <summary>Weight decay finite and ≥ 0.</summary>
        public static bool WeightDecayIsValid(double weightDecay) => weightDecay >= 0 && !double.IsInfinity(weightDecay);

        /// <summary>A dense threshold is ≥ 0.</summary>
        public static bool DenseThresholdIsValid(int denseThreshold) => denseThreshold >= 0;

        /// <summary>Second-moment estimates, as <c>SecondMomentEstimate</c>: 0 Sum, 1 Mean, 2 Factored.</summary>
        public const int SumEstimate = 0, MeanEstimate = 1, FactoredEstimate = 2;

        /// <summary>Default update clipping: off.</summary>
        public const double UpdateClipping = 0;

        /// <summary>Update clipping is off (0) or a finite threshold d &gt; 0, and applies to the factored estimate only.</summary>
        public static bool UpdateClippingIsValid(double d) => d >= 0 && !double.IsInfinity(d);

        /// <summary>Update clipping needs the factored estimate (the only kind that implements it so far).</summary>
        public static bool UpdateClippingApplies(double d, int estimate) => d == 0 || estimate == FactoredEstimate;

        /// <summary>Default β2 schedule: off (a constant β2 with bias correction).</summary>
        public const double Beta2Schedule = 0;

        /// <summary>The β2 schedule's exponent c (β̂2_t = 1 − t^−c) is 0 (off) or in (0, 1].</summary>
        public static bool Beta2ScheduleIsValid(double c) => c == 0 || (c > 0 && c <= 1);

        /// <summary>The β2 schedule needs the factored estimate (the only kind that implements it so far).</summary>
        public static bool Beta2ScheduleApplies(double c, int estimate) => c == 0 || estimate == FactoredEstimate;

        /// <summary>Default global gradient-norm clipping bound: off.</summary>
        public const double MaxGradientNorm = 0;

        /// <summary>The gradient-norm clipping bound is 0 (off) or finite and &gt; 0; it applies to every kind of tensor.</summary>
        public static bool MaxGradientNormIsValid(double maxNorm) => maxNorm >= 0 && !double.IsInfinity(maxNorm);

        /// <summary>A defined second-moment estimate.</summary>
        public static bool SecondMomentIsDefined(int estimate) => estimate >= SumEstimate && estimate <= FactoredEstimate;

        /// <summary>
        /// The factored estimate keeps no Count-Sketch first moment: it needs β1 = 0, unless the first moment is stored
        /// block-quantised (<paramref name="storage"/> ≠ <see cref="SketchStorage"/>).
        /// </summary>
        public static bool FactoredAllowsBeta1(int estimate, double beta1, int storage)
            => estimate != FactoredEstimate || beta1 == 0 || storage != SketchStorage;

        /// <summary>First-moment storage, as <c>FirstMomentStorage</c>: 0 Sketch (the seed's), 1 Quantized8, 2 Quantized4 (block-quantised).</summary>
        public const int SketchStorage = 0, Quantized8Storage = 1, Quantized4Storage = 2;

        /// <summary>The member name of a first-moment storage in <c>FirstMomentStorage</c> (what the generator writes and reports).</summary>
        public static string FirstMomentName(int storage)
            => storage == Quantized8Storage ? "Quantized8" : storage == Quantized4Storage ? "Quantized4" : "Sketch";

        /// <summary>A defined first-moment storage.</summary>
        public static bool FirstMomentIsDefined(int storage) => storage >= SketchStorage && storage <= Quantized4Storage;

        /// <summary>Default quantisation block: 128 entries share one fp32 scale (measured: docs/tinylm, "Quantised first moment").</summary>
        public const int QuantizationBlock = 128;

        /// <summary>A quantisation block is a power of two from 8 to 65536 entries (whole bytes of 4-bit codes, a bounded workspace).</summary>
        public static bool QuantizationBlockIsValid(int block) => block >= 8 && block <= 65536 && (block & (block - 1)) == 0;

        /// <summary>Default rounding of the quantised first moment: to nearest.</summary>
        public const bool StochasticRounding = false;

        /// <summary>
        /// A block-quantised first moment applies to the factored estimate with β1 &gt; 0 (the kind that implements it); the
        /// Count-Sketch storage applies everywhere.
        /// </summary>
        public static bool QuantizedFirstMomentApplies(int storage, int estimate, double beta1)
            => storage == SketchStorage || (estimate == FactoredEstimate && beta1 > 0);

        /// <summary>The largest code magnitude Q of a storage: codes are integers in [−Q, Q] (127 for 8 bits, 7 for 4 bits).</summary>
        public static int QuantizationLevels(int storage) => storage == Quantized8Storage ? 127 : storage == Quantized4Storage ? 7 : 0;

        /// <summary>
        /// Bytes of codes of a quantised first moment of <paramref name="length"/> entries: one per entry (8 bits), or half a block
        /// per block (4 bits, two codes a byte, the last block padded to a whole block).
        /// </summary>
        public static long QuantizedCodeBytes(int storage, long length, int block)
            => storage == Quantized8Storage ? length : storage == Quantized4Storage ? QuantizedBlocks(length, block) * (block / 2) : 0;

        /// <summary>
        /// Whether a tensor keeps its first moment block-quantised: it is factored, β1 ≠ 0 and the optimizer's storage is not the
        /// Count-Sketch (dense tensors keep exact m, sketched ones the Count-Sketch).
        /// </summary>
        public static bool TensorIsQuantized(bool factored, double beta1, int storage) => factored && beta1 != 0 && storage != SketchStorage;

        /// <summary>Floats of a tensor's first moment: a quantised moment's <paramref name="quantizedBlocks"/> scales, else k, or none with β1 = 0.</summary>
        public static long FirstMomentFloats(bool hasFirstMoment, long buckets, long quantizedBlocks)
            => quantizedBlocks > 0 ? quantizedBlocks : hasFirstMoment ? buckets : 0;

        /// <summary>Floats of a tensor's second moment: R + C when factored, else k (k = d when dense).</summary>
        public static long SecondMomentFloats(long buckets, bool factored, long factorRows, long factorColumns)
            => factored ? factorRows + factorColumns : buckets;

        /// <summary>
        /// Bytes of optimizer state of one tensor (the one formula the run-time plan and the generated code both report): its
        /// <see cref="FirstMomentFloats"/> and <see cref="SecondMomentFloats"/>, 4 bytes each, plus a quantised moment's codes.
        /// </summary>
        public static long TensorStateBytes(bool hasFirstMoment, long buckets, bool factored, long factorRows, long factorColumns, long quantizedBlocks, long codeBytes)
            => 4L * (FirstMomentFloats(hasFirstMoment, buckets, quantizedBlocks) + SecondMomentFloats(buckets, factored, factorRows, factorColumns)) + codeBytes;

        /// <summary>Blocks (one fp32 scale each) of a quantised first moment: ceil(length / block).</summary>
        public static long QuantizedBlocks(long length, int block) => (length + block - 1) / block;

        /// <summary>
        /// C of a factored tensor's R × C view: its last dimension, or 1 for a tensor of one dimension, which is factored as
        /// n rows × 1 column: its row means are its own g², so its v̂ = R[r]·C[0] / mean(R) is its exact v (up to rounding),
        /// as Adafactor keeps a full v for vectors. R is the product of the other dimensions (n for a vector).
        /// </summary>
        public static int FactorColumns(int[] shape) => shape.Length >= 2 ? shape[shape.Length - 1] : 1;

        /// <summary>
        /// Whether a tensor keeps exact dense AdamW moments: its effective ratio is 1, it is marked dense, or it is left to the
        /// default (<paramref name="sketching"/> 0 = Auto, 1 = Dense, 2 = Sketched, as <c>TensorSketching</c>) and is shorter
        /// than the dense threshold.
        /// </summary>
        public static bool IsDense(int effectiveRatio, int sketching, long length, int denseThreshold)
            => effectiveRatio == 1 || sketching == 1 || (sketching == 0 && length < denseThreshold);
    }
}
