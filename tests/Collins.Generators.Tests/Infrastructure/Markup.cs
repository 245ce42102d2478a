using System.Text;
using Microsoft.CodeAnalysis.Text;

namespace Collins.Generators.Tests.Infrastructure;

/// <summary>Test markup: <c>[|text|]</c> marks an expected diagnostic span. Spans may not nest.</summary>
internal static class Markup
{
    public static (string Source, IReadOnlyList<TextSpan> Spans) Parse(string markup)
    {
        var sb = new StringBuilder(markup.Length);
        var spans = new List<TextSpan>();
        int start = -1;
        for (int i = 0; i < markup.Length; i++)
        {
            if (string.CompareOrdinal(markup, i, "[|", 0, 2) == 0)
            {
                if (start >= 0) throw new FormatException("Nested [| in markup.");
                start = sb.Length;
                i++;
            }
            else if (string.CompareOrdinal(markup, i, "|]", 0, 2) == 0)
            {
                if (start < 0) throw new FormatException("|] without [| in markup.");
                spans.Add(TextSpan.FromBounds(start, sb.Length));
                start = -1;
                i++;
            }
            else sb.Append(markup[i]);
        }
        if (start >= 0) throw new FormatException("Unclosed [| in markup.");
        return (sb.ToString(), spans);
    }
}
