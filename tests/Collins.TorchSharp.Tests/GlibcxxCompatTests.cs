using System.Reflection;
using Collins.TorchSharp.Compatibility;
using static TorchSharp.torch;

namespace Collins.TorchSharp.Tests;

/// <summary>The GLIBCXX compatibility step (README, "TorchSharp").</summary>
public class GlibcxxCompatTests
{
    private static string CacheCopy => typeof(GlibcxxCompatTests).Assembly.GetCustomAttributes<AssemblyMetadataAttribute>()
        .Single(a => a.Key == "LibTorchSharpInPackageCache").Value!;

    private static ElfVersionNeed Need(byte[] elf, string version) => ElfVersions.ReadVersionNeeds(elf).Single(n => n.File == "libstdc++.so.6" && n.Version == version);

    [Fact]
    public void TheOnlyGlibcxx3_4_32SymbolIsUnusedAndMarkingItWeakChangesOneByte()
    {
        if (!(OperatingSystem.IsLinux())) return;   // Linux-only facts
        byte[] original = File.ReadAllBytes(CacheCopy);
        var need = Need(original, "GLIBCXX_3.4.32");
        Assert.False(need.IsWeak);
        Assert.Equal(["_ZSt21ios_base_library_initv"], need.Symbols);   // std::ios_base_library_init()
        Assert.False(need.ReferencedByRelocation);

        byte[] patched = (byte[])original.Clone();
        Assert.True(ElfVersions.MarkWeak(patched, "libstdc++.so.6", "GLIBCXX_3.4.32"));
        Assert.False(ElfVersions.MarkWeak(patched, "libstdc++.so.6", "GLIBCXX_3.4.32"));   // already weak
        Assert.True(Need(patched, "GLIBCXX_3.4.32").IsWeak);
        Assert.Equal(ElfVersions.VerFlagWeak, Need(patched, "GLIBCXX_3.4.32").Flags & ElfVersions.VerFlagWeak);
        var changed = Enumerable.Range(0, original.Length).Where(i => original[i] != patched[i]).ToArray();
        Assert.Equal([need.FlagsOffset], changed.Select(i => (long)i));
        // Every other requirement is as it was.
        Assert.Equal(ElfVersions.ReadVersionNeeds(original).Where(n => n.Version != "GLIBCXX_3.4.32").Select(n => (n.File, n.Version, n.Flags)),
                     ElfVersions.ReadVersionNeeds(patched).Where(n => n.Version != "GLIBCXX_3.4.32").Select(n => (n.File, n.Version, n.Flags)));
    }

    [Fact]
    public void AVersionThatIsReallyUsedIsNeverWeakened()
    {
        if (!(OperatingSystem.IsLinux())) return;   // Linux-only facts
        byte[] elf = File.ReadAllBytes(CacheCopy);
        Assert.True(Need(elf, "GLIBCXX_3.4").ReferencedByRelocation);
        var e = Assert.Throws<InvalidOperationException>(() => ElfVersions.MarkWeak(elf, "libstdc++.so.6", "GLIBCXX_3.4"));
        Assert.Contains("really uses GLIBCXX_3.4", e.Message);
    }

    [Fact]
    public void EnsureLoadablePatchesACopyOnlyWhereTheSystemLacksTheVersionAndNeverTheCache()
    {
        if (!(OperatingSystem.IsLinux() && GlibcxxCompat.FindSystemLibStdCxx() is not null)) return;   // Linux-only facts
        string dir = Path.Combine(Path.GetTempPath(), "collins-glibcxx-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(dir);
        try
        {
            string copy = Path.Combine(dir, "libLibTorchSharp.so");
            File.Copy(CacheCopy, copy);
            var result = GlibcxxCompat.EnsureLoadable(copy);
            Assert.Contains("GLIBCXX_3.4", result.SystemVersions);
            bool systemHasIt = result.SystemVersions.Contains("GLIBCXX_3.4.32");
            Assert.Empty(result.Unresolved);
            Assert.Equal(systemHasIt ? [] : ["GLIBCXX_3.4.32"], result.Weakened);
            Assert.Equal(!systemHasIt, Need(File.ReadAllBytes(copy), "GLIBCXX_3.4.32").IsWeak);
            Assert.Empty(GlibcxxCompat.EnsureLoadable(copy).Weakened);   // idempotent
            Assert.False(Need(File.ReadAllBytes(CacheCopy), "GLIBCXX_3.4.32").IsWeak);   // the package cache is untouched
        }
        finally { Directory.Delete(dir, true); }
    }

    [Fact]
    public void TheBuildOutputsCopyLoads()
    {
        // The build's compatibility step ran on this test's output copy; loading TorchSharp proves it is enough.
        using var sum = ones(3).sum();
        Assert.Equal(3f, sum.item<float>());
    }
}
