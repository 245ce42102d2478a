// QuickStart: train a tiny MLP on a synthetic regression task with two optimizers the Collins source generator emitted for
// it (TinyMlp.Optimizer, the seed's Count-Sketch Adam, and TinyMlp.Recommended, the README's ~0.14 B/param setting), and
// compare their state with dense AdamW's.
using System.Globalization;
using QuickStart;

CultureInfo.CurrentCulture = CultureInfo.InvariantCulture;
var rng = new Random(42);

// A teacher network of the same shape produces the targets; the student starts from another random point.
var teacher = new TinyMlp();
teacher.Initialise(rng);
TinyMlp.Fill(teacher.B1, rng, 0.1f);
var initial = new TinyMlp();
initial.Initialise(rng);

const int BatchSize = 256;
var inputs = new float[BatchSize][];
var targets = new float[BatchSize][];
Span<float> hidden = stackalloc float[TinyMlp.Hidden];
for (int n = 0; n < BatchSize; n++)
{
    inputs[n] = new float[TinyMlp.Inputs];
    TinyMlp.Fill(inputs[n], rng, 1f);
    targets[n] = new float[TinyMlp.Outputs];
    teacher.Forward(inputs[n], hidden, targets[n]);
}

// Two students from the same starting point, one per generated optimizer.
TinyMlp Student()
{
    var s = new TinyMlp();
    initial.W1.CopyTo(s.W1, 0); initial.B1.CopyTo(s.B1, 0); initial.W2.CopyTo(s.W2, 0); initial.B2.CopyTo(s.B2, 0);
    return s;
}
var sketched = Student();
var recommended = Student();
using var sketchOptimizer = new TinyMlp.Optimizer();
using var recommendedOptimizer = new TinyMlp.Recommended();

Console.WriteLine("Collins QuickStart: TinyMlp (128 → 64 → 4) trained with two generated optimizers");
Console.WriteLine($"  parameters: {sketchOptimizer.ParameterCount}; dense AdamW would keep {sketchOptimizer.DenseAdamWStateBytes} bytes of state");
Console.WriteLine($"  TinyMlp.Optimizer (the seed's Count-Sketch Adam, Ratio 8): W1's {TinyMlp.Optimizer.W1.Length} entries in {TinyMlp.Optimizer.W1.Buckets} buckets × {TinyMlp.Optimizer.W1.Rows} rows, B1, W2, B2 dense; state {sketchOptimizer.StateBytes} bytes ({(double)sketchOptimizer.DenseAdamWStateBytes / sketchOptimizer.StateBytes:0.00}× smaller)");
Console.WriteLine($"  TinyMlp.Recommended (β1 0, factored v, update clipping, every tensor factored): state {recommendedOptimizer.StateBytes} bytes ({(double)recommendedOptimizer.DenseAdamWStateBytes / recommendedOptimizer.StateBytes:0.00}× smaller)");
Console.WriteLine();
Console.WriteLine(" step   Count-Sketch    Recommended   (training loss)");

const float LearningRate = 3e-3f;
const int Steps = 300;
for (int step = 0; step <= Steps; step++)
{
    double lossSketched = sketched.LossAndGradients(inputs, targets);
    double lossRecommended = recommended.LossAndGradients(inputs, targets);
    if (step % 25 == 0) Console.WriteLine($"{step,5}  {lossSketched,13:0.000E+00}  {lossRecommended,13:0.000E+00}");
    if (step == Steps) break;
    // Cosine decay from LearningRate to a tenth of it, as TinyLm trains (a β1 = 0 step keeps no momentum to average its noise).
    float lr = LearningRate * (0.1f + 0.45f * (1 + MathF.Cos(MathF.PI * step / Steps)));
    var a = sketchOptimizer.Step(lr, sketched.W1, sketched.GW1, sketched.B1, sketched.GB1, sketched.W2, sketched.GW2, sketched.B2, sketched.GB2);
    var b = recommendedOptimizer.Step(lr, recommended.W1, recommended.GW1, recommended.B1, recommended.GB1,
                                      recommended.W2, recommended.GW2, recommended.B2, recommended.GB2);
    if (a != Collins.StepOutcome.Applied) Console.WriteLine($"step {step}: Count-Sketch {a}");
    if (b != Collins.StepOutcome.Applied) Console.WriteLine($"step {step}: Recommended {b}");
}
Console.WriteLine();
Console.WriteLine($"applied steps: {sketchOptimizer.StepCount} and {recommendedOptimizer.StepCount}, skipped: {sketchOptimizer.SkippedSteps} and {recommendedOptimizer.SkippedSteps}");
