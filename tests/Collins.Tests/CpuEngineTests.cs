using Collins.Kernels;

namespace Collins.Tests;

/// <summary>The CPU engine's per-tensor choices (kind, tiles, store kind), read from the kernels it builds, not from generated text.</summary>
public class CpuEngineTests
{
    private static CpuTensorKernel Kernel(int length, SketchLayout layout = SketchLayout.Rotation, TensorSketching sketching = TensorSketching.Auto)
        => CpuTensorKernel.Create(new TensorPlan(new TensorSpec("t", new[] { length }, Sketching: sketching), new OptimizerSettings { Layout = layout }),
                                  new OptimizerSettings { Layout = layout });

    [Fact]
    public void Each_plan_gets_the_kernel_of_its_kind()
    {
        Assert.IsType<DenseCpuKernel>(Kernel(100));
        Assert.IsType<RotationCpuKernel>(Kernel(100_000));
        Assert.IsType<UniversalCpuKernel>(Kernel(100_000, SketchLayout.Universal));
        Assert.IsType<DenseCpuKernel>(Kernel(100_000, sketching: TensorSketching.Dense));
    }

    [Fact]
    public void Rotation_sums_use_non_temporal_stores_from_2_pow_20_entries()
    {
        Assert.True(((RotationCpuKernel)Kernel(1 << 20)).NonTemporalSums);
        Assert.False(((RotationCpuKernel)Kernel((1 << 20) - 1)).NonTemporalSums);
        Assert.Equal(1 << 20, KernelTiles.NonTemporalSumsMinLength);
    }

    [Fact]
    public void Tiles_cover_every_bucket_and_entry_exactly()
    {
        Assert.Equal(1, KernelTiles.Tiles(1, KernelTiles.RotationTileBuckets));
        Assert.Equal(1, KernelTiles.Tiles(2048, KernelTiles.RotationTileBuckets));
        Assert.Equal(2, KernelTiles.Tiles(2049, KernelTiles.RotationTileBuckets));
        Assert.Equal(131072, KernelTiles.Tiles(int.MaxValue, KernelTiles.ElementTile));   // no overflow near int.MaxValue
    }
}
