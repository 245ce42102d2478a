namespace Collins.Tests;

public class HashDerivationTests
{
    [Theory]
    [InlineData(SketchLayout.Rotation)]
    [InlineData(SketchLayout.Universal)]
    public void Plans_are_deterministic_in_seed_and_name(SketchLayout layout)
    {
        var s = new OptimizerSettings { Ratio = 8, Layout = layout };
        static TensorPlan Plan(string name, OptimizerSettings settings)
            => new(new TensorSpec(name, new[] { 1000 }, Sketching: TensorSketching.Sketched), settings);
        static string Constants(TensorPlan p)
            => string.Join(",", p.Rotations.ToArray()) + "|" + string.Join(",", p.Signs.ToArray())
               + $"|{p.UniversalA},{p.UniversalB},{p.UniversalSignA},{p.UniversalSignB}"
               + "|" + string.Join(",", Enumerable.Range(0, p.Length).Select(i => p.Bucket(i) * p.Sign(i)));

        var a = Plan("w", s);
        var b = Plan("w", s);
        var otherSeed = Plan("w", s with { Seed = 1 });
        var otherName = Plan("v", s);
        var swapped = Plan("W", s);    // case matters: the name is hashed as UTF-16 code units
        // Same seed and name: same constants and the same hash of every entry.
        Assert.Equal(Constants(a), Constants(b));
        // Changing either the seed or the name changes the constants and the entries' buckets.
        foreach (var other in new[] { otherSeed, otherName, swapped })
        {
            Assert.NotEqual(Constants(a), Constants(other));
            Assert.Contains(Enumerable.Range(0, a.Length), i => a.Bucket(i) != other.Bucket(i));
        }
        // The name does not alias with the seed: ("v", 0) and ("w", 1) differ too.
        Assert.NotEqual(Constants(otherName), Constants(otherSeed));
    }
}
