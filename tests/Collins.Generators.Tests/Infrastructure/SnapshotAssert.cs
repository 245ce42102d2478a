using System.Runtime.CompilerServices;
using System.Text;
using DiffPlex.DiffBuilder;
using DiffPlex.DiffBuilder.Model;

namespace Collins.Generators.Tests.Infrastructure;

/// <summary>
/// Compares text with <c>Snapshots/{name}.verified.cs</c> beside the calling test file. On a mismatch it writes
/// <c>{name}.received.cs</c> and fails with a unified diff; with <c>COLLINS_ACCEPT_SNAPSHOTS=1</c> it accepts instead
/// (writes the verified file). Line endings are normalised to \n.
/// </summary>
internal static class SnapshotAssert
{
    public static void Matches(string actual, string name, [CallerFilePath] string callerFile = "")
    {
        string dir = Path.Combine(Path.GetDirectoryName(callerFile)!, "Snapshots");
        string verified = Path.Combine(dir, name + ".verified.cs");
        string received = Path.Combine(dir, name + ".received.cs");
        actual = actual.Replace("\r\n", "\n");
        string? expected = File.Exists(verified) ? File.ReadAllText(verified).Replace("\r\n", "\n") : null;
        if (expected == actual)
        {
            File.Delete(received);
            return;
        }
        if (Environment.GetEnvironmentVariable("COLLINS_ACCEPT_SNAPSHOTS") == "1")
        {
            Directory.CreateDirectory(dir);
            File.WriteAllText(verified, actual);
            File.Delete(received);
            return;
        }
        Directory.CreateDirectory(dir);
        File.WriteAllText(received, actual);
        Assert.Fail(expected is null
            ? $"No snapshot {verified}; wrote {received}. Review it, then rename it or run with COLLINS_ACCEPT_SNAPSHOTS=1."
            : $"Snapshot {name} differs; wrote {received}. Review, then accept with COLLINS_ACCEPT_SNAPSHOTS=1.\n" + UnifiedDiff(expected, actual));
    }

    /// <summary>A unified diff (3 lines of context) of two texts, "-" for verified and "+" for received.</summary>
    internal static string UnifiedDiff(string expected, string actual, int context = 3)
    {
        var lines = InlineDiffBuilder.Diff(expected, actual, ignoreWhiteSpace: false).Lines;
        var sb = new StringBuilder("--- verified\n+++ received\n");
        int lastPrinted = -1;
        for (int i = 0; i < lines.Count; i++)
        {
            if (lines[i].Type == ChangeType.Unchanged) continue;
            int from = Math.Max(lastPrinted + 1, i - context);
            if (from > lastPrinted + 1) sb.Append("@@ line ").Append(lines[from].Position ?? from + 1).Append(" @@\n");
            int to = i;
            while (to + 1 < lines.Count && (lines[to + 1].Type != ChangeType.Unchanged
                                            || Enumerable.Range(to + 1, Math.Min(2 * context, lines.Count - to - 1)).Any(j => lines[j].Type != ChangeType.Unchanged)))
                to++;
            to = Math.Min(lines.Count - 1, to + context);
            for (int j = from; j <= to; j++)
                sb.Append(lines[j].Type switch { ChangeType.Inserted => '+', ChangeType.Deleted => '-', _ => ' ' }).Append(lines[j].Text).Append('\n');
            lastPrinted = to;
            i = to;
        }
        return sb.ToString();
    }
}
