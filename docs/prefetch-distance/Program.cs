// Same-process comparison of builds of src/Collins that differ only in the Rotation prefetch distances.
// Usage: PrefetchHarness MEBI-ENTRIES ROUNDS BETA1 VARIANT... ; VARIANT is a folder under $VARIANTS (default /tmp/tunevar)
// made by make-variants.sh. Each variant's Collins.dll is loaded into its own AssemblyLoadContext, one run-time
// CountSketchAdam (Rotation, Ratio 32, or $RATIO) per variant steps the same buffers, one step per variant per round in rotated
// order; printed: each variant's median step time and the median of its per-round ratio to the first variant.
using System.Diagnostics;
using System.Globalization;
using System.Reflection;
using System.Runtime.Loader;

int n = int.Parse(args[0], CultureInfo.InvariantCulture) << 20;
int rounds = int.Parse(args[1], CultureInfo.InvariantCulture);
double beta1 = double.Parse(args[2], CultureInfo.InvariantCulture);
string[] variants = args[3..];
string root = Environment.GetEnvironmentVariable("VARIANTS") ?? "/tmp/tunevar";
// RATIO (default 32): the optimizer's Ratio; RATIO=1 steps the dense kernel.
int sketchRatio = int.Parse(Environment.GetEnvironmentVariable("RATIO") ?? "32", CultureInfo.InvariantCulture);
float[] p = new float[n], g = new float[n];
var rnd = new Random(1);
for (int i = 0; i < n; i++) { p[i] = (float)(rnd.NextDouble() - 0.5); g[i] = (float)(rnd.NextDouble() - 0.5) * 1e-2f; }
float[][] pp = [p], gg = [g];
var steps = new List<Action>();
foreach (string v in variants)
{
    string dir = Path.Combine(root, v, "samples/Collins.Bench/bin/Release/net10.0");
    var asm = new VariantContext(dir).LoadFromAssemblyPath(Path.Combine(dir, "Collins.dll"));
    Type T(string name) => asm.GetTypes().First(t => t.Name == name);
    var settingsType = T("OptimizerSettings");
    object settings = Activator.CreateInstance(settingsType)!;
    settingsType.GetProperty("Ratio")!.SetValue(settings, sketchRatio);
    settingsType.GetProperty("Beta1")!.SetValue(settings, beta1);
    var specType = T("TensorSpec");
    var specCtor = specType.GetConstructors().First(c => c.GetParameters().Length == 4);
    object spec = specCtor.Invoke(["W", new[] { n }, 0, Enum.ToObject(specCtor.GetParameters()[3].ParameterType, 0)]);
    var specs = Array.CreateInstance(specType, 1);
    specs.SetValue(spec, 0);
    var optType = T("CountSketchAdam");
    object opt = optType.GetConstructors().First(c => c.GetParameters().Length == 3).Invoke([settings, specs, null]);
    optType.GetProperty("MaxThreads")!.SetValue(opt, Environment.ProcessorCount);
    var step = optType.GetMethods().First(m => m.Name == "Step" && m.GetParameters().Length == 3 && m.GetParameters()[1].ParameterType == typeof(float[][]));
    var typed = step.CreateDelegate(typeof(Func<,,,>).MakeGenericType(typeof(float), typeof(float[][]), typeof(float[][]), step.ReturnType), opt);
    steps.Add(Typed.Wrap(typed, step.ReturnType, pp, gg));
}
foreach (var s in steps) for (int w = 0; w < 30; w++) s(); // past tiered compilation
var times = variants.Select(_ => new double[rounds]).ToArray();
for (int r = 0; r < rounds; r++)
    for (int j = 0; j < steps.Count; j++)
    {
        int i = (j + r) % steps.Count;
        long t0 = Stopwatch.GetTimestamp();
        steps[i]();
        times[i][r] = Stopwatch.GetElapsedTime(t0).TotalMilliseconds;
    }
static double Median(IEnumerable<double> x) { var a = x.Order().ToArray(); return a[a.Length / 2]; }
Console.WriteLine(FormattableString.Invariant($"d={n >> 20}M ratio={sketchRatio} beta1={beta1} rounds={rounds} load={File.ReadAllText("/proc/loadavg").Split(' ')[0]}"));
for (int i = 0; i < variants.Length; i++)
{
    double ratio = Median(Enumerable.Range(0, rounds).Select(r => times[i][r] / times[0][r]));
    Console.WriteLine(FormattableString.Invariant($"{variants[i],-6} median {Median(times[i]):F3} ms  ratio-to-{variants[0]} median {ratio:F3}"));
}

internal sealed class VariantContext(string dir) : AssemblyLoadContext(isCollectible: false)
{
    protected override Assembly? Load(AssemblyName assemblyName)
    {
        string file = Path.Combine(dir, assemblyName.Name + ".dll");
        return File.Exists(file) ? LoadFromAssemblyPath(file) : null;
    }
}

internal static class Typed
{
    public static Action Wrap(Delegate step, Type result, float[][] p, float[][] g) =>
        (Action)typeof(Typed).GetMethod(nameof(Make), BindingFlags.NonPublic | BindingFlags.Static)!.MakeGenericMethod(result).Invoke(null, [step, p, g])!;

    private static Action Make<TResult>(Delegate step, float[][] p, float[][] g)
    {
        var f = (Func<float, float[][], float[][], TResult>)step;
        return () => f(1e-4f, p, g);
    }
}
