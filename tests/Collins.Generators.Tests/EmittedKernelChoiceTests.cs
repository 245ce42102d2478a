using Collins.Generators.Tests.Infrastructure;
using Microsoft.CodeAnalysis;

namespace Collins.Generators.Tests;

/// <summary>
/// What a generated file holds since the runtime owns the step: constants and device kernels per tensor, a CPU Step that hands
/// its buffers to the runtime's engine, and device kernels that are not emitted twice. (The CPU kernel choices — tiles, store
/// kind — are the engine's and tested there: Collins.Tests/CpuEngineTests.)
/// </summary>
public class EmittedKernelChoiceTests
{
    private static string Count(string source, string needle, out int n)
    {
        n = 0;
        for (int i = source.IndexOf(needle, StringComparison.Ordinal); i >= 0; i = source.IndexOf(needle, i + needle.Length, StringComparison.Ordinal)) n++;
        return source;
    }

    [Fact]
    public void Cpu_step_is_the_engines_and_dense_device_kernels_are_loaded_once()
    {
        var (result, output, diagnostics) = GeneratorHarness.Run("""
            using Collins;
            namespace N;
            [SketchedOptimizer(Ratio = 32)]
            [SketchedOptimizer(Name = "U", Ratio = 32, Layout = SketchLayout.Universal, Beta1 = 0, SecondMoment = SecondMomentEstimate.Mean)]
            public partial class M
            {
                [Tensor(1024, 1024)] public float[] Big = new float[1 << 20];
                [Tensor(100)] public float[] B1 = new float[100];
                [Tensor(200)] public float[] B2 = new float[200];
                [Tensor(300)] public float[] B3 = new float[300];
            }
            """);
        Assert.Empty(diagnostics);
        Assert.Empty(output.GetDiagnostics().Where(d => d.Severity == DiagnosticSeverity.Error));
        var sources = result.Results.Single().GeneratedSources;
        Assert.Equal(2, sources.Length);
        foreach (var generated in sources)
        {
            string source = generated.SourceText.ToString();
            Assert.Contains("return StepCpu(learningRate, ref buffers);", source);
            Assert.Contains("return StepDevice(learningRate, ref buffers);", source);
            foreach (var cpuKernel in new[] { "RotationCpu.", "UniversalCpu.", "DenseAdamWCpu.", "TileRunner.", "TileBuffers" })
                Assert.DoesNotContain(cpuKernel, source);
            // No kernel bodies: the runtime's specialised kernels run every tensor. Three dense tensors share one dense kernel
            // set, loaded once and handed out three times; the sketched tensor gets its own, specialised to its descriptor.
            Assert.DoesNotContain("__Index", source);
            Assert.DoesNotContain("ILGPU.Atomic", source);
            Count(source, "__Kernels.Dense<__Constants>(accelerator)", out int denseLoads);
            Assert.Equal(1, denseLoads);
            Count(source, "__dense", out int denseNames);
            Assert.Equal(1 + 3, denseNames);   // its declaration, then one entry per dense tensor
        }
    }

    [Fact]
    public void Factored_tensors_get_the_factored_device_kernels_and_a_descriptor()
    {
        var (result, output, diagnostics) = GeneratorHarness.Run("""
            using Collins;
            namespace N;
            [SketchedOptimizer(Beta1 = 0, SecondMoment = SecondMomentEstimate.Factored, DenseThreshold = 10)]
            [SketchedOptimizer(Name = "Q", Beta1 = 0.9, SecondMoment = SecondMomentEstimate.Factored, FirstMoment = FirstMomentStorage.Quantized4,
                               QuantizationBlock = 32, DenseThreshold = 10)]
            public partial class M
            {
                [Tensor(2, 3, 40)] public float[] W = new float[240];
                [Tensor(5)] public float[] B = new float[5];
            }
            """);
        Assert.Empty(diagnostics);
        Assert.Empty(output.GetDiagnostics().Where(d => d.Severity == DiagnosticSeverity.Error));
        var sources = result.Results.Single().GeneratedSources.Select(g => g.SourceText.ToString()).ToArray();
        Assert.Equal(2, sources.Length);
        foreach (var source in sources)
        {
            Assert.DoesNotContain("CpuOnly", source);
            Assert.Contains("__Kernels.Factored<__Constants, W>(accelerator)", source);
            Assert.Contains("public readonly struct W : __FactoredTensor", source);
            Assert.Contains("static int __FactoredTensor.Rows => FactorRows;", source);
            Assert.Contains("static int __FactoredTensor.Columns => FactorColumns;", source);
            Assert.Contains("public const int FactorRows = 6, FactorColumns = 40;", source);
        }
        string plain = sources.Single(s => s.Contains("class Optimizer", StringComparison.Ordinal));
        string quantized = sources.Single(s => s.Contains("class Q", StringComparison.Ordinal));
        Assert.Contains("__FactoredTensor.FirstMoment => global::Collins.FirstMomentStorage.Sketch;", plain);
        Assert.Contains("static int __FactoredTensor.QuantizationBlock => 0;", plain);
        Assert.Contains("__FactoredTensor.FirstMoment => global::Collins.FirstMomentStorage.Quantized4;", quantized);
        Assert.Contains("static int __FactoredTensor.QuantizationBlock => 32;", quantized);
    }
}
