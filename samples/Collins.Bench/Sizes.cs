using System.Globalization;

namespace Collins.Bench;

/// <summary>Size syntax shared by the console bench and the BenchmarkDotNet project (which links this file).</summary>
public static class Sizes
{
    /// <summary>Parses 1048576, 1M, 16M, 64M, 256M, 512K, 1G (binary multiples).</summary>
    public static long Parse(string s)
    {
        s = s.Trim();
        long mult = 1;
        char last = char.ToUpperInvariant(s[^1]);
        if (last is 'K' or 'M' or 'G')
        {
            mult = last switch { 'K' => 1L << 10, 'M' => 1L << 20, _ => 1L << 30 };
            s = s[..^1];
        }
        return checked(long.Parse(s, CultureInfo.InvariantCulture) * mult);
    }
}
