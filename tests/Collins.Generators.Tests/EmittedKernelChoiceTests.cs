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
    public void Cpu_step_is_the_engines_and_dense_device_kernels_are_emitted_once()
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
            // Three dense tensors, one pair of dense kernels.
            Count(source, "internal static void CheckKernel(__Index index", out int checks);
            Count(source, "internal static void ApplyKernel(__Index index", out int applies);
            Assert.Equal(1, checks);
            Assert.Equal(1, applies);
            Count(source, "__DenseCheck!(", out int launches);
            Assert.Equal(3, launches);
        }
    }
}
