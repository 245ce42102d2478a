using System.Diagnostics;
using System.Globalization;
using System.Numerics;
using System.Runtime.Intrinsics;
using System.Text.RegularExpressions;

namespace Collins.Tests;

/// <summary>
/// The CPU kernels have AVX-512, Vector256 and scalar branches, and an AVX-512 machine only ever runs the first. These tests
/// run every test of category <c>Kernels</c> (the kernel library against the algorithm, the run-time and generated optimizers
/// against the reference and against each other) again in a child process with AVX-512 switched off
/// (<c>DOTNET_EnableAVX512=0</c>: the Vector256 branches; .NET 10 no longer reads the older <c>DOTNET_EnableAVX512F</c>, which
/// <see cref="IsaLegSelfCheck"/> caught) and with every hardware intrinsic switched off
/// (<c>DOTNET_EnableHWIntrinsic=0</c>: the scalar branches), so that <c>dotnet test -c Release</c> covers all three.
/// </summary>
[Trait("Category", "IsaLegs")]
public class IsaLegTests
{
    private const string LegVariable = "COLLINS_ISA_LEG";

    [Theory]
    [InlineData("DOTNET_EnableAVX512")]
    [InlineData("DOTNET_EnableHWIntrinsic")]
    public async Task Kernel_tests_pass_with_the_instruction_set_switched_off(string variable)
    {
        if (Environment.GetEnvironmentVariable(LegVariable) is not null) return;   // never recurse from inside a leg
        string dll = typeof(IsaLegTests).Assembly.Location;
        var start = new ProcessStartInfo("dotnet")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (var a in new[] { "test", dll, "--filter", "Category=Kernels", "--nologo" }) start.ArgumentList.Add(a);
        start.Environment[variable] = "0";
        start.Environment[LegVariable] = variable;
        using var child = Process.Start(start)!;
        // Both streams are drained asynchronously so that the time limit below can fire (a blocking read would wait forever).
        var stdout = child.StandardOutput.ReadToEndAsync();
        var stderr = child.StandardError.ReadToEndAsync();
        using var limit = new CancellationTokenSource(TimeSpan.FromMinutes(5));
        try { await child.WaitForExitAsync(limit.Token); }
        catch (OperationCanceledException)
        {
            child.Kill(entireProcessTree: true);
            Assert.Fail($"the {variable}=0 leg did not finish in 5 minutes");
        }
        string all = await stdout + await stderr;
        Assert.True(child.ExitCode == 0, $"the {variable}=0 leg failed (exit {child.ExitCode}):\n{Tail(all)}");
        var summary = Regex.Match(all, @"Passed!\s+-\s+Failed:\s+(\d+),\s+Passed:\s+(\d+)");
        Assert.True(summary.Success, $"no test summary from the {variable}=0 leg:\n{Tail(all)}");
        Assert.Equal("0", summary.Groups[1].Value);
        // The kernel classes hold well over a hundred tests; a filter that matched almost nothing would be a broken leg.
        Assert.True(int.Parse(summary.Groups[2].Value, CultureInfo.InvariantCulture) > 100, $"the {variable}=0 leg ran only {summary.Groups[2].Value} tests");
    }

    private static string Tail(string s) => s.Length <= 4000 ? s : s[^4000..];
}

/// <summary>Inside an ISA leg, the instruction sets really are off (so the leg tests the branches it claims to).</summary>
[Trait("Category", "Kernels")]
public class IsaLegSelfCheck
{
    [Fact]
    public void The_requested_instruction_sets_are_off()
    {
        switch (Environment.GetEnvironmentVariable("COLLINS_ISA_LEG"))
        {
            case "DOTNET_EnableAVX512":
                Assert.False(Vector512.IsHardwareAccelerated);
                Assert.False(Kernels.UniversalCpu.IsVectorized);
                break;
            case "DOTNET_EnableHWIntrinsic":
                Assert.False(Vector512.IsHardwareAccelerated);
                Assert.False(Vector256.IsHardwareAccelerated);
                Assert.False(Vector.IsHardwareAccelerated);
                break;
            default:
                return;   // the ordinary run: nothing switched off
        }
    }
}
