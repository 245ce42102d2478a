namespace Collins.Tests;

public class HashDerivationTests
{
    [Fact]
    public void Plans_are_deterministic_in_seed_and_name()
    {
        var s = new OptimizerSettings { Ratio = 8 };
        var a = new TensorPlan(new TensorSpec("w", new[] { 1000 }, Sketching: TensorSketching.Sketched), s);
        var b = new TensorPlan(new TensorSpec("w", new[] { 1000 }, Sketching: TensorSketching.Sketched), s);
        var c = new TensorPlan(new TensorSpec("w", new[] { 1000 }, Sketching: TensorSketching.Sketched), s with { Seed = 1 });
        Assert.Equal(a.Rotations.ToArray(), b.Rotations.ToArray());
        Assert.NotEqual(a.Rotations.ToArray(), c.Rotations.ToArray());
    }
}
