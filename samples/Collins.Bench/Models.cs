namespace Collins.Bench;

// One model per benchmark size: sizes are compile-time constants of the generated optimizers.
// Every model gets the same eight variants: {Rotation, Universal} × Ratio {8, 32} × β1 {0.9, 0}.
// The bench finds them by reflection (see GeneratedKernels), so it builds and runs the triad and
// dense AdamW rows even where a variant was not generated.

[SketchedOptimizer(Name = "Rotation_R32", Ratio = 32, Layout = SketchLayout.Rotation)]
[SketchedOptimizer(Name = "Rotation_R32_B0", Ratio = 32, Beta1 = 0, Layout = SketchLayout.Rotation)]
[SketchedOptimizer(Name = "Universal_R32", Ratio = 32, Layout = SketchLayout.Universal)]
[SketchedOptimizer(Name = "Universal_R32_B0", Ratio = 32, Beta1 = 0, Layout = SketchLayout.Universal)]
[SketchedOptimizer(Name = "Rotation_R8", Ratio = 8, Layout = SketchLayout.Rotation)]
[SketchedOptimizer(Name = "Rotation_R8_B0", Ratio = 8, Beta1 = 0, Layout = SketchLayout.Rotation)]
[SketchedOptimizer(Name = "Universal_R8", Ratio = 8, Layout = SketchLayout.Universal)]
[SketchedOptimizer(Name = "Universal_R8_B0", Ratio = 8, Beta1 = 0, Layout = SketchLayout.Universal)]
public partial class Model1M
{
    /// <summary>1024 × 1024 = 1 Mi parameters.</summary>
    [Tensor(1024, 1024)] public float[]? W;
}

[SketchedOptimizer(Name = "Rotation_R32", Ratio = 32, Layout = SketchLayout.Rotation)]
[SketchedOptimizer(Name = "Rotation_R32_B0", Ratio = 32, Beta1 = 0, Layout = SketchLayout.Rotation)]
[SketchedOptimizer(Name = "Universal_R32", Ratio = 32, Layout = SketchLayout.Universal)]
[SketchedOptimizer(Name = "Universal_R32_B0", Ratio = 32, Beta1 = 0, Layout = SketchLayout.Universal)]
[SketchedOptimizer(Name = "Rotation_R8", Ratio = 8, Layout = SketchLayout.Rotation)]
[SketchedOptimizer(Name = "Rotation_R8_B0", Ratio = 8, Beta1 = 0, Layout = SketchLayout.Rotation)]
[SketchedOptimizer(Name = "Universal_R8", Ratio = 8, Layout = SketchLayout.Universal)]
[SketchedOptimizer(Name = "Universal_R8_B0", Ratio = 8, Beta1 = 0, Layout = SketchLayout.Universal)]
public partial class Model16M
{
    /// <summary>4096 × 4096 = 16 Mi parameters.</summary>
    [Tensor(4096, 4096)] public float[]? W;
}

[SketchedOptimizer(Name = "Rotation_R32", Ratio = 32, Layout = SketchLayout.Rotation)]
[SketchedOptimizer(Name = "Rotation_R32_B0", Ratio = 32, Beta1 = 0, Layout = SketchLayout.Rotation)]
[SketchedOptimizer(Name = "Universal_R32", Ratio = 32, Layout = SketchLayout.Universal)]
[SketchedOptimizer(Name = "Universal_R32_B0", Ratio = 32, Beta1 = 0, Layout = SketchLayout.Universal)]
[SketchedOptimizer(Name = "Rotation_R8", Ratio = 8, Layout = SketchLayout.Rotation)]
[SketchedOptimizer(Name = "Rotation_R8_B0", Ratio = 8, Beta1 = 0, Layout = SketchLayout.Rotation)]
[SketchedOptimizer(Name = "Universal_R8", Ratio = 8, Layout = SketchLayout.Universal)]
[SketchedOptimizer(Name = "Universal_R8_B0", Ratio = 8, Beta1 = 0, Layout = SketchLayout.Universal)]
public partial class Model64M
{
    /// <summary>8192 × 8192 = 64 Mi parameters.</summary>
    [Tensor(8192, 8192)] public float[]? W;
}

[SketchedOptimizer(Name = "Rotation_R32", Ratio = 32, Layout = SketchLayout.Rotation)]
[SketchedOptimizer(Name = "Rotation_R32_B0", Ratio = 32, Beta1 = 0, Layout = SketchLayout.Rotation)]
[SketchedOptimizer(Name = "Universal_R32", Ratio = 32, Layout = SketchLayout.Universal)]
[SketchedOptimizer(Name = "Universal_R32_B0", Ratio = 32, Beta1 = 0, Layout = SketchLayout.Universal)]
[SketchedOptimizer(Name = "Rotation_R8", Ratio = 8, Layout = SketchLayout.Rotation)]
[SketchedOptimizer(Name = "Rotation_R8_B0", Ratio = 8, Beta1 = 0, Layout = SketchLayout.Rotation)]
[SketchedOptimizer(Name = "Universal_R8", Ratio = 8, Layout = SketchLayout.Universal)]
[SketchedOptimizer(Name = "Universal_R8_B0", Ratio = 8, Beta1 = 0, Layout = SketchLayout.Universal)]
public partial class Model256M
{
    /// <summary>16384 × 16384 = 256 Mi parameters.</summary>
    [Tensor(16384, 16384)] public float[]? W;
}
