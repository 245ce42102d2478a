using System.Globalization;
using Collins.Generators.Tests.Infrastructure;

namespace Collins.Generators.Tests;

/// <summary>
/// Generated code and diagnostic messages must not depend on the machine's culture: a culture with a comma decimal
/// separator and U+2212 as the minus sign must give byte-identical output to the invariant culture.
/// </summary>
public class CultureInvarianceTests
{
    private const string Source = """
        using Collins;
        namespace App;

        [SketchedOptimizer(Ratio = 8, Beta1 = 0.85, Beta2 = 0.9995, Epsilon = 1e-7, WeightDecay = 0.01, Seed = -42, DenseThreshold = 100)]
        [SketchedOptimizer(Name = "Universal", Layout = SketchLayout.Universal, SecondMoment = SecondMomentEstimate.Mean, Ratio = 4, Beta1 = 0.5, Epsilon = 2.5e-9, Seed = -9223372036854775807, DenseThreshold = 100)]
        public partial class Model
        {
            [Tensor(30, 20)] public float[] W = new float[600];
            [Tensor(1000, Ratio = 16)] public float[] Big = new float[1000];
            [Tensor(20)] public float[] B = new float[20];
        }

        [SketchedOptimizer(Beta2 = -0.5, Epsilon = -1.5e-8, WeightDecay = -0.25)]
        public partial class Invalid
        {
            [Tensor(10, -3)] public float[] W = new float[1];
            [Tensor(4, Sketching = TensorSketching.Sketched, Ratio = 7)] public float[] Tiny = new float[4];
        }
        """;

    private static (IReadOnlyDictionary<string, string> Sources, string[] Messages) Generate()
    {
        var run = GeneratorDriverHelper.Run(Source);
        Assert.Null(run.Generator.Exception);
        return (run.Sources, run.GeneratorDiagnostics.Select(d => d.Id + " " + d.GetMessage(CultureInfo.InvariantCulture)).OrderBy(x => x, StringComparer.Ordinal).ToArray());
    }

    private static CultureInfo Hostile(string name)
    {
        var culture = (CultureInfo)CultureInfo.GetCultureInfo(name).Clone();
        culture.NumberFormat.NegativeSign = "\u2212";
        culture.NumberFormat.NumberDecimalSeparator = ",";
        culture.NumberFormat.NumberGroupSeparator = "\u00A0";
        culture.NumberFormat.PositiveInfinitySymbol = "∞";
        culture.NumberFormat.NaNSymbol = "nan";
        return culture;
    }

    [Theory]
    [InlineData("sv-SE")]
    [InlineData("fr-FR")]
    public void Output_is_byte_identical_under_a_comma_decimal_and_unicode_minus_culture(string cultureName)
    {
        var (expectedSources, expectedMessages) = WithCulture(CultureInfo.InvariantCulture, Generate);
        var culture = Hostile(cultureName);
        // The culture really is hostile: the formatting the generator must avoid would differ.
        Assert.Equal("\u22124,5", (-4.5).ToString(culture));
        var (actualSources, actualMessages) = WithCulture(culture, Generate);

        Assert.Equal(2, expectedSources.Count);
        Assert.Contains(expectedMessages, m => m.Contains("-0.5", StringComparison.Ordinal));
        Assert.Contains(expectedSources.Values, s => s.Contains("Seed = -42L", StringComparison.Ordinal));
        Assert.Equal(expectedSources.Keys.Order(StringComparer.Ordinal), actualSources.Keys.Order(StringComparer.Ordinal));
        foreach (var (hint, expected) in expectedSources)
        {
            string actual = actualSources[hint];
            Assert.True(expected == actual, $"{hint} differs under {cultureName}:\n" + SnapshotAssert.UnifiedDiff(expected, actual));
        }
        Assert.Equal(expectedMessages, actualMessages);
    }

    private static T WithCulture<T>(CultureInfo culture, Func<T> action)
    {
        var (oldCulture, oldUi) = (CultureInfo.CurrentCulture, CultureInfo.CurrentUICulture);
        try
        {
            CultureInfo.CurrentCulture = culture;
            CultureInfo.CurrentUICulture = culture;
            return action();
        }
        finally
        {
            CultureInfo.CurrentCulture = oldCulture;
            CultureInfo.CurrentUICulture = oldUi;
        }
    }
}
