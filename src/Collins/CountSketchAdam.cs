namespace Collins;

/// <summary>Placeholder: the run-time (non-specialised) optimizer is implemented by the runtime work item.</summary>
public sealed partial class CountSketchAdam : SketchedOptimizerBase
{
    public CountSketchAdam(OptimizerSettings settings, IReadOnlyList<TensorSpec> tensors, ILGPU.Runtime.Accelerator? accelerator = null)
        : base(settings, tensors.Select(t => new TensorPlan(t, settings)).ToArray(), accelerator) { }
}
