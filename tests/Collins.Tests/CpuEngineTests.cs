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
    public void Rotation_sums_use_non_temporal_stores_from_the_tunings_threshold()
    {
        var tuning = CpuTuning.Default with { NonTemporalMinLength = 1 << 20 };
        var settings = new OptimizerSettings();
        RotationCpuKernel Of(int length) => new(new TensorPlan(new TensorSpec("t", length), settings), settings, tuning);
        Assert.True(Of(1 << 20).NonTemporalSums);
        Assert.False(Of((1 << 20) - 1).NonTemporalSums);
        Assert.Equal(1 << 20, CpuTuning.Default.NonTemporalMinLength);
        Assert.Same(CpuTuning.Current, ((RotationCpuKernel)Kernel(1 << 20)).Tuning);   // an optimizer's kernels take the process's tuning
    }

    [Fact]
    public void Rotation_tiles_follow_the_tunings_tile_size()
    {
        var settings = new OptimizerSettings();
        var plan = new TensorPlan(new TensorSpec("t", 1 << 20), settings);   // k = 32768 buckets
        Assert.Equal(16, new RotationCpuKernel(plan, settings, CpuTuning.Default).Tiles);
        Assert.Equal(128, new RotationCpuKernel(plan, settings, CpuTuning.Default with { TileBuckets = 256 }).Tiles);
        Assert.Equal(1, new RotationCpuKernel(plan, settings, CpuTuning.Default with { TileBuckets = 1 << 16 }).Tiles);
    }

    [Fact]
    public void Tiles_cover_every_bucket_and_entry_exactly()
    {
        Assert.Equal(1, KernelTiles.Tiles(1, 2048));
        Assert.Equal(1, KernelTiles.Tiles(2048, 2048));
        Assert.Equal(2, KernelTiles.Tiles(2049, 2048));
        Assert.Equal(131072, KernelTiles.Tiles(int.MaxValue, KernelTiles.ElementTile));   // no overflow near int.MaxValue
    }
}
