using Collins.Generators.Tests.Infrastructure;
using Microsoft.CodeAnalysis;

namespace Collins.Generators.Tests;

/// <summary>Choices the emitter makes per tensor from its size, checked in the generated text (the snapshots hold small models only).</summary>
public class EmittedKernelChoiceTests
{
    /// <summary>The generated text of tensor class <paramref name="name"/> (up to the next tensor class).</summary>
    private static string TensorClass(string source, string name)
    {
        int start = source.IndexOf("public static class " + name + "\n", StringComparison.Ordinal);
        if (start < 0) start = source.IndexOf("public static class " + name + "\r\n", StringComparison.Ordinal);
        Assert.True(start >= 0, $"tensor class {name} not found");
        int end = source.IndexOf("public static class ", start + 20, StringComparison.Ordinal);
        return end < 0 ? source[start..] : source[start..end];
    }

    [Fact]
    public void Rotation_sums_use_non_temporal_stores_from_2_pow_20_entries_and_phase_2_is_fused()
    {
        var (result, output, diagnostics) = GeneratorHarness.Run("""
            using Collins;
            namespace N;
            [SketchedOptimizer(Ratio = 32)]
            [SketchedOptimizer(Name = "MeanNoMomentum", Ratio = 32, Beta1 = 0, SecondMoment = SecondMomentEstimate.Mean)]
            public partial class M
            {
                [Tensor(1024, 1024)] public float[] Big = new float[1 << 20];
                [Tensor(1023, 1024)] public float[] Under = new float[1023 * 1024];
            }
            """);
        Assert.Empty(diagnostics);
        Assert.Empty(output.GetDiagnostics().Where(d => d.Severity == DiagnosticSeverity.Error));
        var sources = result.Results.Single().GeneratedSources;
        Assert.Equal(2, sources.Length);
        foreach (var generated in sources)
        {
            string source = generated.SourceText.ToString();
            string big = TensorClass(source, "Big"), under = TensorClass(source, "Under");
            Assert.Contains("AccumulateTile(", big);
            Assert.Contains(", nonTemporal: true);", big);
            Assert.Contains("non-temporal stores", big);
            Assert.Contains("AccumulateTile(", under);
            Assert.DoesNotContain("nonTemporal", under);
            foreach (var tensor in new[] { big, under })
            {
                Assert.Contains("RotationCpu.UpdateApplyTile(", tensor);
                Assert.DoesNotContain("RotationCpu.UpdateBuckets", tensor);
                Assert.DoesNotContain("RotationCpu.ApplyTile(", tensor);
            }
            bool mean = generated.HintName.Contains("MeanNoMomentum");
            Assert.Equal(mean, big.Contains("meanSecondMoment: true", StringComparison.Ordinal));
            Assert.Equal(mean, big.Contains("UpdateApplyTile(buffers.Parameters, buffers.Gradient,", StringComparison.Ordinal)); // β1 = 0 reads g in phase 2
        }
    }
}
