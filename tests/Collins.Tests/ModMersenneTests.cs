using CsCheck;
using Collins.Hashing;

namespace Collins.Tests;

/// <summary>
/// <see cref="HashDerivation.ModMersenne"/> (x mod 2^31 − 1 by folding, no division) against the
/// plain remainder, computed in <see cref="UInt128"/> so the oracle shares nothing with the folding.
/// Contract: x &lt; 2^63. The hashes call it with a·i + b &lt; (p − 1)·(2^31 − 1) + p &lt; 2^62, and
/// with 16·a &lt; 2^35.
/// </summary>
public class ModMersenneTests
{
    private const ulong P = 2147483647UL;
    private static ulong Oracle(ulong x) => (ulong)((UInt128)x % (UInt128)P);

    [Fact]
    public void Matches_the_remainder_over_the_whole_contract()
    {
        // Uniform over [0, 2^63), fixed seed so a failure reproduces.
        Gen.ULong[0, (1UL << 63) - 1].Sample(x => Assert.Equal(Oracle(x), HashDerivation.ModMersenne(x)), iter: 200_000, seed: "0N0XIzNsQ0O2");
    }

    [Fact]
    public void Matches_the_remainder_for_every_magnitude()
    {
        // Uniform in the exponent: x = (random bits) >> shift, so small values and every bit length get as many cases.
        Gen.Select(Gen.ULong, Gen.Int[1, 63]).Sample((bits, shift) =>
        {
            ulong x = bits >> shift;
            Assert.Equal(Oracle(x), HashDerivation.ModMersenne(x));
        }, iter: 200_000, seed: "0N0XIzNsQ0O2");
    }

    public static TheoryData<ulong> Edges()
    {
        var data = new TheoryData<ulong>();
        var centres = new List<ulong> { 0, P, 2 * P, P * P, 1UL << 31, 1UL << 32, 1UL << 62, 1UL << 63 };
        // Multiples of p and their neighbours near the top of the range (where one fold leaves the most).
        ulong topMultiple = ((1UL << 63) - 1) / P * P;
        centres.Add(topMultiple);
        ulong quarterMultiple = (1UL << 62) / P * P;
        centres.Add(quarterMultiple);
        // The largest a·i + b the Universal hash forms: a = p − 1, i = 2^31 − 2 (MaxTensorLength − 1), b = p − 1.
        centres.Add((P - 1) * (P - 1) + (P - 1));
        foreach (ulong c in centres)
            for (long delta = -3; delta <= 3; delta++)
            {
                ulong x = unchecked(c + (ulong)delta);
                if (c == 0 && delta < 0) continue;
                if (x >= 1UL << 63) continue;   // outside the contract
                data.Add(x);
            }
        data.Add((1UL << 63) - 1);
        return data;
    }

    [Theory]
    [MemberData(nameof(Edges))]
    public void Matches_the_remainder_at_the_edges(ulong x) => Assert.Equal(Oracle(x), HashDerivation.ModMersenne(x));

    [Fact]
    public void Result_is_reduced()
    {
        // x ≡ x mod p is not enough: the result must lie in [0, p) (p itself maps to 0, not p).
        Assert.Equal(0UL, HashDerivation.ModMersenne(P));
        Assert.Equal(0UL, HashDerivation.ModMersenne(2 * P));
        Assert.Equal(P - 1, HashDerivation.ModMersenne(P - 1));
        Assert.Equal(1UL, HashDerivation.ModMersenne(1UL << 31));
    }
}
