using System.Diagnostics;

namespace Collins.Generators.Tests;

/// <summary>
/// Packs the library the way it ships (runtime in lib/, generator in analyzers/dotnet/cs), building what it packs, and
/// builds and runs a fresh project that consumes it from a local folder feed, as a user would. Self-contained: the
/// consumer's nuget.config clears inherited sources (keeping this machine's own sources for everything but the package
/// under test), its restore folder lies under the temporary directory and is deleted afterwards, and the user-wide
/// package cache is only read (as a fallback folder, so that it also works offline), never written.
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
        string userCache = UserPackagesFolder(work);
        string cachedCollins = Path.Combine(userCache, "collins.generators");
        var before = Directory.Exists(cachedCollins) ? Directory.GetDirectories(cachedCollins).ToHashSet() : new HashSet<string>();
        try
        {
            string feed = Path.Combine(work, "feed");
            // The test's own unique package version (the assembly version is untouched, so the build stays incremental).
            string version = "0.1.0-t" + DateTime.UtcNow.ToString("yyyyMMddHHmmssfff", System.Globalization.CultureInfo.InvariantCulture);
            Run(root, "dotnet", $"pack src/Collins/Collins.csproj -c {Configuration} -o \"{feed}\" -p:PackageVersion={version}");
            string nupkg = Path.Combine(feed, $"Collins.Generators.{version}.nupkg");
            Assert.True(File.Exists(nupkg), "the package was not produced");
            using (var zip = System.IO.Compression.ZipFile.OpenRead(nupkg))
            {
                var names = zip.Entries.Select(e => e.FullName).ToList();
                Assert.Contains("lib/net10.0/Collins.dll", names);
                Assert.Contains("analyzers/dotnet/cs/Collins.Generators.dll", names);
                Assert.DoesNotContain(names, n => n.StartsWith("analyzers/", StringComparison.Ordinal) && n.Contains("CodeAnalysis", StringComparison.Ordinal));

                // Metadata points at the project's page, the one the diagnostics' help links are anchors of.
                string nuspec = ReadEntry(zip, "Collins.Generators.nuspec");
                Assert.Contains($"<projectUrl>{DiagnosticDescriptors.ProjectUrl}</projectUrl>", nuspec);
                Assert.Contains($"url=\"{DiagnosticDescriptors.ProjectUrl}\"", nuspec);
                Assert.Contains("<readme>README.md</readme>", nuspec);

                // The packed README: no relative link (images above all) that would break on a package page, and an
                // anchor for every diagnostic's help link.
                string readme = ReadEntry(zip, "README.md");
                var relative = System.Text.RegularExpressions.Regex.Matches(readme, @"\]\((?![a-zA-Z][a-zA-Z0-9+.-]*:|#)([^)\s]+)\)").Select(m => m.Value).ToList();
                Assert.True(relative.Count == 0, "relative links in the packed README: " + string.Join(", ", relative));
                Assert.Matches(@"!\[[^\]]*\]\(https://[^)]+\.png\)", readme);
                foreach (var d in DiagnosticDescriptors.ById.Values)
                {
                    Assert.StartsWith(DiagnosticDescriptors.ProjectUrl + "#", d.HelpLinkUri);
                    Assert.Contains("<a id=\"" + d.HelpLinkUri[(d.HelpLinkUri.IndexOf('#') + 1)..] + "\"></a>", readme);
                }
            }

            string app = Path.Combine(work, "app");
            string packages = Path.Combine(work, "packages");
            Directory.CreateDirectory(app);
            // This machine's own enabled sources (a mirror, nuget.org, ...) serve everything but Collins.Generators, which only
            // the local feed may serve; packages already in the user-wide cache are read from there without a request.
            var sources = MachineSources(work);
            File.WriteAllText(Path.Combine(app, "nuget.config"), $"""
                <?xml version="1.0" encoding="utf-8"?>
                <configuration>
                  <config>
                    <add key="globalPackagesFolder" value="{packages}" />
                  </config>
                  <packageSources>
                    <clear />
                    <add key="local-collins" value="{feed}" />
                {string.Concat(sources.Select((u, i) => $"    <add key=\"machine-{i}\" value=\"{System.Security.SecurityElement.Escape(u)}\" />\n"))}  </packageSources>
                  <packageSourceMapping>
                    <clear />
                    <packageSource key="local-collins">
                      <package pattern="Collins.Generators" />
                    </packageSource>
                {string.Concat(sources.Select((_, i) => $"    <packageSource key=\"machine-{i}\">\n      <package pattern=\"*\" />\n    </packageSource>\n"))}  </packageSourceMapping>
                  <fallbackPackageFolders>
                    <clear />
                    <add key="user-cache" value="{userCache}" />
                  </fallbackPackageFolders>
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
                    <RestorePackagesPath>{packages}</RestorePackagesPath>
                    <EmitCompilerGeneratedFiles>true</EmitCompilerGeneratedFiles>
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
            var isolated = new Dictionary<string, string> { ["NUGET_PACKAGES"] = packages };
            string output = Run(app, "dotnet", "run -c Release", isolated);
            Assert.Contains("outcome=Applied", output);
            // Where the README says the generated files land, with the hint name it gives.
            string generated = Path.Combine(app, "obj", "Release", "net10.0", "generated", "Collins.Generators", "Collins.Generators.SketchedOptimizerGenerator", "Model.g.cs");
            Assert.True(File.Exists(generated), "no generated file at " + generated);
            // The package under test was restored into the test's own folder, not into the user-wide cache.
            Assert.True(Directory.Exists(Path.Combine(packages, "collins.generators", version)), "the package was not restored into " + packages);
        }
        finally
        {
            try { Directory.Delete(work, recursive: true); } catch (IOException) { }
        }
        Assert.False(Directory.Exists(work), "the temporary folder was left behind: " + work);
        var after = Directory.Exists(cachedCollins) ? Directory.GetDirectories(cachedCollins).ToHashSet() : new HashSet<string>();
        Assert.True(after.SetEquals(before), "the user-wide package cache gained: " + string.Join(", ", after.Except(before)));
    }

    private static string ReadEntry(System.IO.Compression.ZipArchive zip, string name)
    {
        var entry = zip.GetEntry(name) ?? throw new Xunit.Sdk.XunitException(name + " is not in the package");
        using var reader = new StreamReader(entry.Open());
        return reader.ReadToEnd();
    }

    /// <summary>The user-wide global packages folder, as NuGet resolves it here (NUGET_PACKAGES, config or the default).</summary>
    private static string UserPackagesFolder(string workingDirectory)
    {
        string line = Run(workingDirectory, "dotnet", "nuget locals global-packages --list").Split('\n').First(l => l.Contains("global-packages:", StringComparison.Ordinal));
        return line.Substring(line.IndexOf(':') + 1).Trim().TrimEnd('/', '\\');
    }

    /// <summary>The enabled package sources of this machine's NuGet configuration (outside the repository).</summary>
    private static List<string> MachineSources(string workingDirectory)
        => Run(workingDirectory, "dotnet", "nuget list source --format Short")
            .Split('\n').Select(l => l.Trim()).Where(l => l.StartsWith("E ", StringComparison.Ordinal)).Select(l => l.Substring(2).Trim()).ToList();

    internal static string RepositoryRoot()
    {
        var dir = new DirectoryInfo(AppContext.BaseDirectory);
        while (dir is not null && !File.Exists(Path.Combine(dir.FullName, "Collins.Generators.sln"))) dir = dir.Parent;
        return dir?.FullName ?? throw new InvalidOperationException("Collins.Generators.sln not found above " + AppContext.BaseDirectory);
    }

    private static string Run(string workingDirectory, string file, string arguments, IReadOnlyDictionary<string, string>? environment = null)
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
        foreach (var (key, value) in environment ?? new Dictionary<string, string>()) psi.Environment[key] = value;
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
