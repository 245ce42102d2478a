using System.Diagnostics;

namespace Collins.Generators.Tests;

/// <summary>
/// Packs the library the way it ships (runtime in lib/, generator in analyzers/dotnet/cs) and
/// builds and runs a fresh project that consumes it from a local folder feed, as a user would.
/// </summary>
public class PackageConsumptionTests
{
#if DEBUG
    private const string Configuration = "Debug";
#else
    private const string Configuration = "Release";
#endif

    [Fact]
    public void Packed_package_generates_and_steps_in_a_fresh_consumer_project()
    {
        string root = RepositoryRoot();
        string work = Directory.CreateTempSubdirectory("collins-pkg-").FullName;
        try
        {
            string feed = Path.Combine(work, "feed");
            // A unique version so that the NuGet cache never serves an older build of the package.
            string version = "0.1.0-t" + DateTime.UtcNow.ToString("yyyyMMddHHmmssfff");
            Run(root, "dotnet", $"pack src/Collins/Collins.csproj -c {Configuration} --no-build -o \"{feed}\" -p:Version={version}");
            string nupkg = Path.Combine(feed, $"Collins.Generators.{version}.nupkg");
            Assert.True(File.Exists(nupkg), "the package was not produced");
            using (var zip = System.IO.Compression.ZipFile.OpenRead(nupkg))
            {
                var names = zip.Entries.Select(e => e.FullName).ToList();
                Assert.Contains("lib/net10.0/Collins.dll", names);
                Assert.Contains("analyzers/dotnet/cs/Collins.Generators.dll", names);
                Assert.DoesNotContain(names, n => n.StartsWith("analyzers/", StringComparison.Ordinal) && n.Contains("CodeAnalysis", StringComparison.Ordinal));
            }

            string app = Path.Combine(work, "app");
            Directory.CreateDirectory(app);
            File.WriteAllText(Path.Combine(app, "nuget.config"), $"""
                <?xml version="1.0" encoding="utf-8"?>
                <configuration>
                  <packageSources>
                    <add key="local-collins" value="{feed}" />
                  </packageSources>
                </configuration>
                """);
            File.WriteAllText(Path.Combine(app, "Consumer.csproj"), $"""
                <Project Sdk="Microsoft.NET.Sdk">
                  <PropertyGroup>
                    <OutputType>Exe</OutputType>
                    <TargetFramework>net10.0</TargetFramework>
                    <Nullable>enable</Nullable>
                    <ImplicitUsings>enable</ImplicitUsings>
                    <ManagePackageVersionsCentrally>false</ManagePackageVersionsCentrally>
                  </PropertyGroup>
                  <ItemGroup>
                    <PackageReference Include="Collins.Generators" Version="{version}" />
                  </ItemGroup>
                </Project>
                """);
            File.WriteAllText(Path.Combine(app, "Program.cs"), """
                using Collins;

                var p = new float[Model.Optimizer.Weights.Length];
                var g = new float[p.Length];
                for (int i = 0; i < g.Length; i++) { p[i] = 1f; g[i] = (i % 7) - 3f; }
                var optimizer = new Model.Optimizer();
                var outcome = optimizer.Step(1e-2f, p, g);
                int changed = p.Count(x => x != 1f);
                Console.WriteLine($"outcome={outcome} changed={changed} state={optimizer.StateBytes} adamw={optimizer.DenseAdamWStateBytes}");
                return outcome == StepOutcome.Applied && changed > 0 && optimizer.StateBytes * 16 <= optimizer.DenseAdamWStateBytes ? 0 : 1;

                [SketchedOptimizer(Ratio = 32)]
                public partial class Model
                {
                    [Tensor(64, 128)] public float[] Weights = [];
                }
                """);
            string output = Run(app, "dotnet", "run -c Release");
            Assert.Contains("outcome=Applied", output);
        }
        finally
        {
            try { Directory.Delete(work, recursive: true); } catch (IOException) { }
        }
    }

    internal static string RepositoryRoot()
    {
        var dir = new DirectoryInfo(AppContext.BaseDirectory);
        while (dir is not null && !File.Exists(Path.Combine(dir.FullName, "Collins.Generators.sln"))) dir = dir.Parent;
        return dir?.FullName ?? throw new InvalidOperationException("Collins.Generators.sln not found above " + AppContext.BaseDirectory);
    }

    private static string Run(string workingDirectory, string file, string arguments)
    {
        var psi = new ProcessStartInfo(file, arguments)
        {
            WorkingDirectory = workingDirectory,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        // The test host sets MSBuild variables for its own build; a child build must not inherit them.
        foreach (var key in psi.Environment.Keys.Where(k => k.StartsWith("MSBuild", StringComparison.OrdinalIgnoreCase)
                                                          || k.StartsWith("VSTEST", StringComparison.OrdinalIgnoreCase)).ToList())
            psi.Environment.Remove(key);
        psi.Environment["DOTNET_CLI_TELEMETRY_OPTOUT"] = "1";
        psi.Environment["DOTNET_NOLOGO"] = "1";
        using var process = Process.Start(psi)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        if (!process.WaitForExit(TimeSpan.FromMinutes(5)))
        {
            process.Kill(entireProcessTree: true);
            throw new TimeoutException($"'{file} {arguments}' did not finish in 5 minutes.");
        }
        string output = stdout.Result + stderr.Result;
        Assert.True(process.ExitCode == 0, $"'{file} {arguments}' exited with {process.ExitCode}:\n{output}");
        return output;
    }
}
