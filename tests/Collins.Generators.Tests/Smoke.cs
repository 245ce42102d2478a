namespace Collins.Generators.Tests;

public class BuildSmoke
{
    [Fact]
    public void Generator_assembly_loads() => Assert.NotNull(typeof(Collins.Generators.Tests.BuildSmoke).Assembly);
}
