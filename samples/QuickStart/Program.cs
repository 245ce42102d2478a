// QuickStart: train a tiny MLP on a synthetic regression task with the optimizer the Collins source
// generator emitted for it (TinyMlp.Optimizer), and compare its state with dense AdamW's.
using System.Globalization;
using QuickStart;

CultureInfo.CurrentCulture = CultureInfo.InvariantCulture;
var rng = new Random(42);

// A teacher network of the same shape produces the targets; the student starts from another random point.
var teacher = new TinyMlp();
teacher.Initialise(rng);
TinyMlp.Fill(teacher.B1, rng, 0.1f);
var student = new TinyMlp();
student.Initialise(rng);

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

using var optimizer = new TinyMlp.Optimizer();
Console.WriteLine("Collins QuickStart: TinyMlp (128 → 64 → 4) trained with the generated Count-Sketch Adam optimizer");
Console.WriteLine($"  W1: {TinyMlp.Optimizer.W1.Length} entries in {TinyMlp.Optimizer.W1.Buckets} buckets × {TinyMlp.Optimizer.W1.Rows} rows (ratio {TinyMlp.Optimizer.W1.Ratio}); B1, W2, B2 dense");
Console.WriteLine($"  parameters: {optimizer.ParameterCount}");
Console.WriteLine($"  optimizer state: {optimizer.StateBytes} bytes vs dense AdamW {optimizer.DenseAdamWStateBytes} bytes ({(double)optimizer.DenseAdamWStateBytes / optimizer.StateBytes:0.00}× smaller)");
Console.WriteLine();
Console.WriteLine(" step        loss");

const float LearningRate = 3e-3f;
const int Steps = 300;
for (int step = 0; step <= Steps; step++)
{
    double loss = student.LossAndGradients(inputs, targets);
    if (step % 25 == 0) Console.WriteLine($"{step,5}  {loss,10:0.000000}");
    if (step == Steps) break;
    var outcome = optimizer.Step(LearningRate,
        student.W1, student.GW1,
        student.B1, student.GB1,
        student.W2, student.GW2,
        student.B2, student.GB2);
    if (outcome != Collins.StepOutcome.Applied) Console.WriteLine($"step {step}: {outcome}");
}
Console.WriteLine();
Console.WriteLine($"applied steps: {optimizer.StepCount}, skipped: {optimizer.SkippedSteps}");
