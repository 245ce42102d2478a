// The GLIBCXX compatibility step for TorchSharp's native glue (README, "TorchSharp").
//
// This one file is compiled twice: into Collins.TorchSharp (which defines COLLINS_TORCHSHARP_ADAPTER, so it holds only
// the ELF reader/editor, public for tests and tools), and by MSBuild's RoslynCodeTaskFactory from
// Collins.Generators.TorchSharp.targets, where the task class at the bottom is included as well. It therefore targets
// what that factory compiles against (netstandard): no spans, no records, explicit usings.
//
// Why: TorchSharp 0.107.0's libLibTorchSharp.so lists GLIBCXX_3.4.32 among the versions it needs from libstdc++.so.6;
// Debian 12's libstdc++ defines versions up to GLIBCXX_3.4.30, so the dynamic loader refuses the library (and TorchSharp
// reports a misleading "no reference to libtorch-cpu"). The only symbol bound to that version is
// std::ios_base_library_init(), and no relocation refers to it: nothing calls it. Marking that one requirement weak
// (VER_FLG_WEAK in the vna_flags of its Elf64_Vernaux entry in .gnu.version_r) lets glibc's loader accept a libstdc++
// without it. The step only ever weakens a requirement that (a) the system libstdc++ does not define and (b) no
// relocation uses; anything else is reported, never patched.
#nullable enable
// This file is also compiled by MSBuild as an inline build task (see the targets file), whose compiler settings are not the
// project's: it keeps a block-scoped namespace.
#pragma warning disable IDE0161
using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using System.Text;

namespace Collins.TorchSharp.Compatibility
{
    /// <summary>One version requirement (an <c>Elf64_Vernaux</c> entry of <c>.gnu.version_r</c>).</summary>
    public sealed class ElfVersionNeed
    {
        internal ElfVersionNeed(string file, string version, ushort flags, ushort index, long flagsOffset, IReadOnlyList<string> symbols, bool referenced)
        {
            File = file; Version = version; Flags = flags; Index = index; FlagsOffset = flagsOffset; Symbols = symbols; ReferencedByRelocation = referenced;
        }

        /// <summary>The library the version is needed from, e.g. <c>libstdc++.so.6</c>.</summary>
        public string File { get; }
        /// <summary>The version name, e.g. <c>GLIBCXX_3.4.32</c>.</summary>
        public string Version { get; }
        /// <summary><c>vna_flags</c>; bit <see cref="ElfVersions.VerFlagWeak"/> marks a weak requirement.</summary>
        public ushort Flags { get; }
        /// <summary><c>vna_other</c>: the index that <c>.gnu.version</c> entries use for this version.</summary>
        public ushort Index { get; }
        /// <summary>File offset of <c>vna_flags</c>.</summary>
        public long FlagsOffset { get; }
        /// <summary>The dynamic symbols bound to this version.</summary>
        public IReadOnlyList<string> Symbols { get; }
        /// <summary>Whether any relocation refers to one of <see cref="Symbols"/> (then the symbol is really used).</summary>
        public bool ReferencedByRelocation { get; }
        /// <summary>Whether the requirement is weak (the loader accepts its absence).</summary>
        public bool IsWeak => (Flags & ElfVersions.VerFlagWeak) != 0;

        /// <inheritdoc/>
        public override string ToString() => File + " " + Version + (IsWeak ? " (weak)" : "");
    }

    /// <summary>
    /// A minimal reader and editor of the symbol-versioning sections of a little-endian ELF64 shared library:
    /// version definitions (<c>.gnu.version_d</c>), version requirements (<c>.gnu.version_r</c>), and which dynamic
    /// symbols and relocations use them. The only edit it makes is setting <see cref="VerFlagWeak"/> on one requirement.
    /// </summary>
    public static class ElfVersions
    {
        /// <summary><c>VER_FLG_WEAK</c> (elf.h): the version requirement is weak.</summary>
        public const ushort VerFlagWeak = 0x2;

        private const uint ShtRela = 4, ShtRel = 9, ShtDynsym = 11;
        private const uint ShtGnuVerdef = 0x6ffffffd, ShtGnuVerneed = 0x6ffffffe, ShtGnuVersym = 0x6fffffff;

        private sealed class Section
        {
            public uint Type; public long Offset; public long Size; public uint Link; public long EntSize;
        }

        private static Section[] Sections(byte[] elf)
        {
            if (elf.Length < 64 || elf[0] != 0x7f || elf[1] != (byte)'E' || elf[2] != (byte)'L' || elf[3] != (byte)'F')
                throw new InvalidDataException("Not an ELF file.");
            if (elf[4] != 2 || elf[5] != 1) throw new InvalidDataException("Only little-endian ELF64 files are supported.");
            long shoff = I64(elf, 0x28);
            int shentsize = U16(elf, 0x3A), shnum = U16(elf, 0x3C);
            if (shoff <= 0 || shentsize < 64 || shoff + (long)shnum * shentsize > elf.Length) throw new InvalidDataException("Bad ELF section header table.");
            var sections = new Section[shnum];
            for (int i = 0; i < shnum; i++)
            {
                long h = shoff + (long)i * shentsize;
                sections[i] = new Section { Type = U32(elf, h + 4), Offset = I64(elf, h + 24), Size = I64(elf, h + 32), Link = U32(elf, h + 40), EntSize = I64(elf, h + 56) };
                if (sections[i].Type != 8 /* NOBITS */ && (sections[i].Offset < 0 || sections[i].Offset + sections[i].Size > elf.Length))
                    throw new InvalidDataException("An ELF section lies outside the file.");
            }
            return sections;
        }

        /// <summary>The version names a library defines (<c>.gnu.version_d</c>), e.g. every <c>GLIBCXX_3.4.x</c> of libstdc++.</summary>
        public static IReadOnlyList<string> ReadDefinedVersions(byte[] elf)
        {
            var sections = Sections(elf);
            var result = new List<string>();
            foreach (var s in sections.Where(s => s.Type == ShtGnuVerdef))
            {
                var strtab = sections[s.Link];
                long vd = s.Offset;
                while (true)
                {
                    int cnt = U16(elf, vd + 6);
                    long aux = vd + U32(elf, vd + 12);
                    for (int j = 0; j < cnt; j++)
                    {
                        if (j == 0) result.Add(Str(elf, strtab, U32(elf, aux))); // the first aux names the version; the rest are parents
                        aux += U32(elf, aux + 4);
                    }
                    uint next = U32(elf, vd + 16);
                    if (next == 0) break;
                    vd += next;
                }
            }
            return result;
        }

        /// <summary>Every version requirement of a library, with the symbols bound to it and whether a relocation uses them.</summary>
        public static IReadOnlyList<ElfVersionNeed> ReadVersionNeeds(byte[] elf)
        {
            var sections = Sections(elf);
            // Symbols and their version indices.
            var dynsym = sections.FirstOrDefault(s => s.Type == ShtDynsym);
            var versym = sections.FirstOrDefault(s => s.Type == ShtGnuVersym);
            var symbolsByIndex = new Dictionary<int, List<int>>();
            var names = new List<string>();
            if (dynsym != null)
            {
                var symstr = sections[dynsym.Link];
                long count = dynsym.Size / 24;
                for (int i = 0; i < count; i++)
                {
                    names.Add(Str(elf, symstr, U32(elf, dynsym.Offset + 24L * i)));
                    if (versym == null) continue;
                    int index = U16(elf, versym.Offset + 2L * i) & 0x7fff;
                    if (!symbolsByIndex.TryGetValue(index, out var list)) symbolsByIndex[index] = list = new List<int>();
                    list.Add(i);
                }
            }
            // Every symbol that a relocation against the dynamic symbol table names.
            var relocated = new HashSet<int>();
            int dynsymIndex = dynsym == null ? -1 : Array.IndexOf(sections, dynsym);
            foreach (var s in sections.Where(s => (s.Type == ShtRela || s.Type == ShtRel) && s.Link == dynsymIndex))
            {
                long entry = s.EntSize > 0 ? s.EntSize : (s.Type == ShtRela ? 24 : 16);
                for (long r = s.Offset; r + entry <= s.Offset + s.Size; r += entry)
                    relocated.Add((int)(U64(elf, r + 8) >> 32));
            }

            var result = new List<ElfVersionNeed>();
            foreach (var s in sections.Where(s => s.Type == ShtGnuVerneed))
            {
                var strtab = sections[s.Link];
                long vn = s.Offset;
                while (true)
                {
                    string file = Str(elf, strtab, U32(elf, vn + 4));
                    int cnt = U16(elf, vn + 2);
                    long aux = vn + U32(elf, vn + 8);
                    for (int j = 0; j < cnt; j++)
                    {
                        ushort flags = (ushort)U16(elf, aux + 4), other = (ushort)U16(elf, aux + 6);
                        string version = Str(elf, strtab, U32(elf, aux + 8));
                        symbolsByIndex.TryGetValue(other, out var syms);
                        syms ??= new List<int>();
                        result.Add(new ElfVersionNeed(file, version, flags, other, aux + 4,
                            syms.Select(i => names[i]).ToArray(), syms.Any(relocated.Contains)));
                        uint nextAux = U32(elf, aux + 12);
                        if (nextAux == 0) break;
                        aux += nextAux;
                    }
                    uint next = U32(elf, vn + 12);
                    if (next == 0) break;
                    vn += next;
                }
            }
            return result;
        }

        /// <summary>
        /// Sets <see cref="VerFlagWeak"/> on the requirement of <paramref name="version"/> from <paramref name="file"/> in
        /// <paramref name="elf"/> (in memory). Returns false when it was weak already.
        /// </summary>
        /// <exception cref="InvalidOperationException">No such requirement, or a relocation uses one of its symbols (weakening it would hide a real dependency).</exception>
        public static bool MarkWeak(byte[] elf, string file, string version)
        {
            var need = ReadVersionNeeds(elf).FirstOrDefault(n => n.File == file && n.Version == version)
                ?? throw new InvalidOperationException("The library has no requirement of " + version + " from " + file + ".");
            if (need.ReferencedByRelocation)
                throw new InvalidOperationException("The library really uses " + version + " (a relocation refers to " + string.Join(", ", need.Symbols) + "); it cannot be made weak.");
            if (need.IsWeak) return false;
            ushort flags = (ushort)(need.Flags | VerFlagWeak);
            elf[need.FlagsOffset] = (byte)flags;
            elf[need.FlagsOffset + 1] = (byte)(flags >> 8);
            return true;
        }

        private static int U16(byte[] b, long o) => b[o] | (b[o + 1] << 8);
        private static uint U32(byte[] b, long o) => (uint)(b[o] | (b[o + 1] << 8) | (b[o + 2] << 16) | (b[o + 3] << 24));
        private static ulong U64(byte[] b, long o) => U32(b, o) | ((ulong)U32(b, o + 4) << 32);
        private static long I64(byte[] b, long o) => (long)U64(b, o);

        private static string Str(byte[] b, Section strtab, uint offset)
        {
            long start = strtab.Offset + offset, end = start;
            while (end < strtab.Offset + strtab.Size && b[end] != 0) end++;
            return Encoding.UTF8.GetString(b, (int)start, (int)(end - start));
        }
    }

    /// <summary>What <see cref="GlibcxxCompat.EnsureLoadable"/> did to one library.</summary>
    public sealed class GlibcxxCompatResult
    {
        internal GlibcxxCompatResult(string? systemLibrary, IReadOnlyList<string> weakened, IReadOnlyList<string> unresolved, IReadOnlyList<string> systemVersions)
        {
            SystemLibrary = systemLibrary; Weakened = weakened; Unresolved = unresolved; SystemVersions = systemVersions;
        }

        /// <summary>The libstdc++ that was checked; null when none was found (then nothing is patched).</summary>
        public string? SystemLibrary { get; }
        /// <summary>The versions that were marked weak by this call (empty when none was needed or all were weak already).</summary>
        public IReadOnlyList<string> Weakened { get; }
        /// <summary>Versions the system library lacks that are really used (left alone: the library will not load).</summary>
        public IReadOnlyList<string> Unresolved { get; }
        /// <summary>The GLIBCXX/CXXABI versions the system library defines.</summary>
        public IReadOnlyList<string> SystemVersions { get; }
        /// <summary>The newest GLIBCXX version the system library defines, for messages.</summary>
        public string NewestSystemGlibcxx => SystemVersions.Where(v => v.StartsWith("GLIBCXX_3.4", StringComparison.Ordinal))
            .OrderBy(v => v.Length).ThenBy(v => v, StringComparer.Ordinal).LastOrDefault() ?? "none";
    }

    /// <summary>The compatibility step: makes a copy of libLibTorchSharp.so loadable with an older system libstdc++.</summary>
    public static class GlibcxxCompat
    {
        /// <summary>The library whose versions are checked.</summary>
        public const string LibStdCxx = "libstdc++.so.6";

        /// <summary>Where the dynamic loader finds the system libstdc++ on common distributions (first that exists wins).</summary>
        public static readonly string[] SystemLibStdCxxPaths =
        {
            "/usr/lib/x86_64-linux-gnu/libstdc++.so.6", "/lib/x86_64-linux-gnu/libstdc++.so.6",
            "/usr/lib/aarch64-linux-gnu/libstdc++.so.6", "/usr/lib64/libstdc++.so.6", "/lib64/libstdc++.so.6", "/usr/lib/libstdc++.so.6",
        };

        /// <summary>The system libstdc++ (see <see cref="SystemLibStdCxxPaths"/>), or null.</summary>
        public static string? FindSystemLibStdCxx() => SystemLibStdCxxPaths.FirstOrDefault(File.Exists);

        /// <summary>
        /// Checks <paramref name="libraryPath"/> (a copy in a build output, never the NuGet cache's file) against the system
        /// libstdc++ and, when the system library lacks a version that the library requires but does not use, marks that
        /// requirement weak and rewrites the file (written to a temporary file and moved over, so a hard link to the
        /// package cache is replaced, not written through). Does nothing when every required version is defined.
        /// </summary>
        public static GlibcxxCompatResult EnsureLoadable(string libraryPath, string? systemLibStdCxx = null)
        {
            systemLibStdCxx ??= FindSystemLibStdCxx();
            if (systemLibStdCxx == null) return new GlibcxxCompatResult(null, Array.Empty<string>(), Array.Empty<string>(), Array.Empty<string>());
            var defined = new HashSet<string>(ElfVersions.ReadDefinedVersions(File.ReadAllBytes(systemLibStdCxx)), StringComparer.Ordinal);
            byte[] elf = File.ReadAllBytes(libraryPath);
            var weakened = new List<string>();
            var unresolved = new List<string>();
            foreach (var need in ElfVersions.ReadVersionNeeds(elf).Where(n => n.File == LibStdCxx && !defined.Contains(n.Version) && !n.IsWeak))
            {
                if (need.ReferencedByRelocation) { unresolved.Add(need.Version); continue; }
                ElfVersions.MarkWeak(elf, need.File, need.Version);
                weakened.Add(need.Version);
            }
            if (weakened.Count > 0)
            {
                string temp = libraryPath + ".collins-tmp";
                File.WriteAllBytes(temp, elf);
                File.Delete(libraryPath); // a new file, so a hard link to the package cache's copy is replaced, not written through
                File.Move(temp, libraryPath);
            }
            return new GlibcxxCompatResult(systemLibStdCxx, weakened, unresolved, defined.Where(v => v.StartsWith("GLIBCXX_", StringComparison.Ordinal) || v.StartsWith("CXXABI_", StringComparison.Ordinal)).ToArray());
        }
    }
}

#if !COLLINS_TORCHSHARP_ADAPTER
/// <summary>The MSBuild task of Collins.Generators.TorchSharp.targets: runs <see cref="Collins.TorchSharp.Compatibility.GlibcxxCompat.EnsureLoadable"/> on each copy.</summary>
public sealed class CollinsTorchSharpGlibcxxCompat : Microsoft.Build.Utilities.Task
{
    /// <summary>Copies of libLibTorchSharp.so in the build or publish output; missing ones are skipped.</summary>
    [Microsoft.Build.Framework.Required]
    public Microsoft.Build.Framework.ITaskItem[] Libraries { get; set; } = new Microsoft.Build.Framework.ITaskItem[0];

    public override bool Execute()
    {
        foreach (var item in Libraries)
        {
            string path = item.GetMetadata("FullPath");
            if (!File.Exists(path)) continue;
            try
            {
                var r = Collins.TorchSharp.Compatibility.GlibcxxCompat.EnsureLoadable(path);
                if (r.SystemLibrary == null)
                    Log.LogMessage(Microsoft.Build.Framework.MessageImportance.Normal, "Collins.TorchSharp: no system libstdc++ found; " + path + " left as it is.");
                else if (r.Weakened.Count > 0)
                    Log.LogMessage(Microsoft.Build.Framework.MessageImportance.High,
                        "Collins.TorchSharp: " + r.SystemLibrary + " defines GLIBCXX up to " + r.NewestSystemGlibcxx + "; marked the unused requirement(s) "
                        + string.Join(", ", r.Weakened) + " weak in " + path + " (README, \"TorchSharp\").");
                else
                    Log.LogMessage(Microsoft.Build.Framework.MessageImportance.Low, "Collins.TorchSharp: " + path + " needs no compatibility step.");
                if (r.Unresolved.Count > 0)
                    Log.LogWarning("Collins.TorchSharp: " + path + " really uses " + string.Join(", ", r.Unresolved) + ", which " + r.SystemLibrary
                        + " lacks; TorchSharp will not load until the system libstdc++ is upgraded.");
            }
            catch (Exception e) when (e is IOException || e is InvalidDataException || e is UnauthorizedAccessException || e is InvalidOperationException)
            {
                Log.LogWarning("Collins.TorchSharp: could not check " + path + ": " + e.Message);
            }
        }
        return !Log.HasLoggedErrors;
    }
}
#endif
