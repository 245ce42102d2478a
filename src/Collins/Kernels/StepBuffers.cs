using System.ComponentModel;

namespace Collins.Kernels;

/// <summary>
/// One step's CPU buffers, tensor by tensor, as <see cref="SketchedOptimizerBase"/> validates them. Generated optimizers implement
/// it with a <c>ref struct</c> over their <c>Step</c> parameters, so validation is written once, in the runtime, and allocates nothing.
/// Not meant for user code.
/// </summary>
[EditorBrowsable(EditorBrowsableState.Never)]
public interface IStepBuffers
{
    /// <summary>Number of parameter buffers passed.</summary>
    int ParameterCount { get; }
    /// <summary>Number of gradient buffers passed.</summary>
    int GradientCount { get; }
    /// <summary>Tensor <paramref name="tensor"/>'s parameters.</summary>
    Span<float> Parameters(int tensor);
    /// <summary>Tensor <paramref name="tensor"/>'s gradient.</summary>
    ReadOnlySpan<float> Gradient(int tensor);
}

/// <summary>The device counterpart of <see cref="IStepBuffers"/>. Not meant for user code.</summary>
[EditorBrowsable(EditorBrowsableState.Never)]
public interface IDeviceStepBuffers
{
    /// <summary>Number of parameter views passed.</summary>
    int ParameterCount { get; }
    /// <summary>Number of gradient views passed.</summary>
    int GradientCount { get; }
    /// <summary>Tensor <paramref name="tensor"/>'s parameters.</summary>
    ILGPU.ArrayView<float> Parameters(int tensor);
    /// <summary>Tensor <paramref name="tensor"/>'s gradient.</summary>
    ILGPU.ArrayView<float> Gradient(int tensor);
}
