namespace Collins.Kernels;

/// <summary>
/// β1, 1 − β1, β2, 1 − β2 and ε as every kernel takes them: the differences formed in double and rounded to float once (for
/// β2 = 0.999 that is 0.001f, not 1f − 0.999f = 0.00099998713). The one place of that rule in the runtime, so the CPU engine,
/// dense AdamW and the run-time device kernels agree to the bit; the generator forms the same literals.
/// </summary>
internal readonly record struct KernelCoefficients(float Beta1, float OneMinusBeta1, float Beta2, float OneMinusBeta2, float Epsilon)
{
    public static KernelCoefficients From(double beta1, double beta2, double epsilon)
        => new((float)beta1, (float)(1.0 - beta1), (float)beta2, (float)(1.0 - beta2), (float)epsilon);

    public static KernelCoefficients From(OptimizerSettings settings) => From(settings.Beta1, settings.Beta2, settings.Epsilon);
}
