namespace Collins.Kernels;

/// <summary>
/// Steps many small tensors in one parallel run: each tile of the run is one whole tensor, whose phase (<see cref="CpuTensorKernel.Accumulate"/>
/// or <see cref="CpuTensorKernel.Apply"/>) runs on one thread with its own fixed tiles, instead of one fork and join of the pool per
/// tensor and phase, in which a tensor's serial parts (a factored tensor's column sums and EMAs, the last tile of a ragged partition)
/// leave the other threads idle. A kernel's result never depends on the thread count or on the thread that runs it, and tensors share
/// no state, so a step is bit-identical whether a tensor is batched or not (<see cref="SketchedOptimizerBase"/> adds the verdicts and
/// Σ g² in tensor order afterwards).
/// </summary>
/// <remarks>
/// Which tensors are batched (<see cref="Prepare"/>) follows the shapes and the thread count T only: tensors of at most
/// <see cref="KernelTiles.BatchedTensorMaxLength"/> entries, largest first, except that the largest are left to their own parallel run
/// while one of them has more than 1 / (4·T) of the entries that would remain in the batch (a tensor is a tile here, so that bounds
/// the imbalance of the run's last tiles). With T = 1, fewer than two such tensors, or fewer than
/// <see cref="KernelTiles.BatchMinLength"/> entries in them together, nothing is batched. The buffers of a run are
/// pinned by a recursion (one frame per tensor, at most <see cref="MaxTensorsPerRun"/> per run) and handed to the workers as
/// pointers. Allocates nothing per step: every array is sized at construction, and <see cref="Prepare"/> only rewrites them when T changes.
/// </remarks>
internal sealed unsafe class TensorBatch
{
    /// <summary>The most tensors of one run (the depth of the pinning recursion); more batched tensors take several runs.</summary>
    internal const int MaxTensorsPerRun = 128;

    private readonly CpuTensorKernel[] _kernels;
    private readonly IReadOnlyList<TensorPlan> _plans;
    private readonly float[][] _firstMoments, _secondMoments;
    private readonly AlignedFloats[] _sumM, _sumV;
    private readonly int[] _bySize;          // candidates (length ≤ BatchedTensorMaxLength), largest first, ties in tensor order
    private readonly bool[] _batched;        // per tensor, for the thread count of the last Prepare
    private readonly int[] _runTensors;      // the tensors of this step's batch, in run order
    private int _runCount;                   // how many of _runTensors are batched
    private int _preparedThreads;            // the thread count _batched and _runTensors were formed for (0: none yet)

    // The current run (written by the owner before TileRunner.Run, read by the participants).
    private readonly nint[] _p, _g;
    private int _runStart;
    private readonly TileKernel _accumulate, _apply;

    /// <summary>Per tensor: phase 1's verdict of this step, for the tensors batched in it.</summary>
    public bool[] Verdicts { get; }

    public TensorBatch(CpuTensorKernel[] kernels, IReadOnlyList<TensorPlan> plans, float[][] firstMoments, float[][] secondMoments,
                       AlignedFloats[] sumM, AlignedFloats[] sumV)
    {
        _kernels = kernels;
        _plans = plans;
        _firstMoments = firstMoments;
        _secondMoments = secondMoments;
        _sumM = sumM;
        _sumV = sumV;
        int n = kernels.Length;
        _bySize = Enumerable.Range(0, n).Where(i => plans[i].Length <= KernelTiles.BatchedTensorMaxLength)
                            .OrderByDescending(i => plans[i].Length).ThenBy(i => i).ToArray();
        _batched = new bool[n];
        _runTensors = new int[_bySize.Length];
        Verdicts = new bool[n];
        _p = new nint[Math.Min(MaxTensorsPerRun, Math.Max(1, _bySize.Length))];
        _g = new nint[_p.Length];
        _accumulate = AccumulateTensor;
        _apply = ApplyTensor;
    }

    /// <summary>Whether tensor <paramref name="tensor"/> is stepped in the batch (as of the last <see cref="Prepare"/>).</summary>
    public bool IsBatched(int tensor) => _batched[tensor];

    /// <summary>Chooses the batched tensors for <paramref name="threads"/> threads (a no-op when the count is unchanged).</summary>
    public void Prepare(int threads)
    {
        if (threads == _preparedThreads) return;
        _preparedThreads = threads;
        Array.Clear(_batched);
        _runCount = 0;
        if (threads <= 1) return;
        long remaining = 0;
        foreach (int i in _bySize) remaining += _plans[i].Length;
        int first = 0;
        // Leave out the largest while one holds more than 1 / (4·T) of what would remain batched.
        while (first < _bySize.Length && (long)_plans[_bySize[first]].Length * 4 * threads > remaining)
            remaining -= _plans[_bySize[first++]].Length;
        if (_bySize.Length - first < 2 || remaining < KernelTiles.BatchMinLength) return;
        for (int j = first; j < _bySize.Length; j++)
        {
            _batched[_bySize[j]] = true;
            _runTensors[_runCount++] = _bySize[j];
        }
    }

    /// <summary>Phase 1 of every batched tensor; each verdict goes to <see cref="Verdicts"/>.</summary>
    public void Accumulate<TBuffers>(scoped ref TBuffers buffers, int threads, in StepScalars scalars) where TBuffers : IStepBuffers, allows ref struct
        => RunAll(ref buffers, threads, _accumulate, in scalars);

    /// <summary>Phase 2 of every batched tensor.</summary>
    public void Apply<TBuffers>(scoped ref TBuffers buffers, int threads, in StepScalars scalars) where TBuffers : IStepBuffers, allows ref struct
        => RunAll(ref buffers, threads, _apply, in scalars);

    private void RunAll<TBuffers>(scoped ref TBuffers buffers, int threads, TileKernel kernel, in StepScalars scalars) where TBuffers : IStepBuffers, allows ref struct
    {
        for (int start = 0; start < _runCount; start += MaxTensorsPerRun)
        {
            _runStart = start;
            Pin(ref buffers, 0, Math.Min(MaxTensorsPerRun, _runCount - start), threads, kernel, in scalars);
        }
    }

    // Pins the buffers of the run's tensors j.. (one frame each), then runs the batch with every buffer pinned.
    private void Pin<TBuffers>(scoped ref TBuffers buffers, int j, int count, int threads, TileKernel kernel, in StepScalars scalars) where TBuffers : IStepBuffers, allows ref struct
    {
        if (j == count)
        {
            TileRunner.Run(count, threads, kernel, default, default, default, default, default, default, in scalars);
            return;
        }
        int tensor = _runTensors[_runStart + j];
        fixed (float* p = buffers.Parameters(tensor))
        fixed (float* g = buffers.Gradient(tensor))
        {
            _p[j] = (nint)p;
            _g[j] = (nint)g;
            Pin(ref buffers, j + 1, count, threads, kernel, in scalars);
            _p[j] = 0;
            _g[j] = 0;
        }
    }

    // One whole tensor per tile, on the thread that claimed it: its own tiles run inline (a nested TileRunner run, or one thread).
    private bool AccumulateTensor(int tile, in TileBuffers unused, in StepScalars s)
    {
        int i = _runTensors[_runStart + tile], d = _plans[i].Length;
        bool finite = _kernels[i].Accumulate(1, new Span<float>((float*)_p[tile], d), new ReadOnlySpan<float>((float*)_g[tile], d),
                                             _firstMoments[i], _secondMoments[i], _sumM[i], _sumV[i], in s);
        Verdicts[i] = finite;
        return finite;
    }

    private bool ApplyTensor(int tile, in TileBuffers unused, in StepScalars s)
    {
        int i = _runTensors[_runStart + tile], d = _plans[i].Length;
        _kernels[i].Apply(1, new Span<float>((float*)_p[tile], d), new ReadOnlySpan<float>((float*)_g[tile], d),
                          _firstMoments[i], _secondMoments[i], _sumM[i], _sumV[i], in s);
        return true;
    }
}
