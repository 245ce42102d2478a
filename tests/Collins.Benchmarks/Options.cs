using System.Globalization;

namespace Collins.Bench;

/// <summary>Size parsing shared with the console bench's option syntax (1M, 16M, 64M, 256M).</summary>
public static class Options
{
    public static long ParseSize(string s)
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
