namespace Collins.Kernels;

/// <summary>
/// Where the generated CPU step for a Rotation tensor switches design, compiled into both the generator (which emits the kernel
/// calls for each tensor by its length) and the runtime (which allocates the coefficient workspace for those tensors): one number,
/// written once.
/// </summary>
/// <remarks>
/// From <see cref="MinLength"/> entries up, phase 1 forms the new moments and each bucket's update coefficient in registers and
/// streams them to the workspace with non-temporal stores, phase 2 only reads the coefficient, and the new moments become the
/// state by a buffer swap: at d = 64M this measured 3–4 % faster than sums-then-update (the gradient pass flushes the workspace
/// from the cache anyway, so writing it without read-for-ownership is a saving). Below it the sums-then-update design stays:
/// there the workspace is still cached when phase 2 reads it, and the streaming design measured 4–10 % slower at d = 16M and
/// 1M. The threshold sits between the sizes measured on the 2-core development VM (260 MiB L3); see docs/benchmarks.md.
/// </remarks>
internal static class RotationStreaming
{
    /// <summary>Smallest tensor length (entries) that gets the streaming design: 2^25 = 33,554,432 (128 MiB of gradient).</summary>
    public const int MinLength = 1 << 25;
}
