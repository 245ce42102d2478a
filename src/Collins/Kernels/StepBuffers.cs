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

/// <summary>
/// A step's CPU buffers as two lists of arrays, tensor by tensor (a generated model-typed <c>Step</c> passes its model's members
/// and its gradient holder's as stack-allocated spans, so the step allocates nothing). Not meant for user code.
/// </summary>
[EditorBrowsable(EditorBrowsableState.Never)]
public readonly ref struct TensorArrays : IStepBuffers
{
    private readonly ReadOnlySpan<float[]> _parameters, _gradients;

    /// <summary>The arrays, one per tensor in declaration order; a null array is refused by validation, naming its tensor.</summary>
    public TensorArrays(ReadOnlySpan<float[]> parameters, ReadOnlySpan<float[]> gradients)
    {
        _parameters = parameters;
        _gradients = gradients;
    }

    /// <inheritdoc/>
    public int ParameterCount => _parameters.Length;
    /// <inheritdoc/>
    public int GradientCount => _gradients.Length;
    /// <inheritdoc/>
    public Span<float> Parameters(int tensor) => _parameters[tensor];
    /// <inheritdoc/>
    public ReadOnlySpan<float> Gradient(int tensor) => _gradients[tensor];
}

/// <summary>
/// A device step's views as two spans, tensor by tensor (a generated device <c>Step</c> passes its parameters as
/// stack-allocated spans). Not meant for user code.
/// </summary>
[EditorBrowsable(EditorBrowsableState.Never)]
public readonly ref struct DeviceViews : IDeviceStepBuffers
{
    private readonly ReadOnlySpan<ILGPU.ArrayView<float>> _parameters, _gradients;

    /// <summary>The views, one per tensor in declaration order.</summary>
    public DeviceViews(ReadOnlySpan<ILGPU.ArrayView<float>> parameters, ReadOnlySpan<ILGPU.ArrayView<float>> gradients)
    {
        _parameters = parameters;
        _gradients = gradients;
    }

    /// <inheritdoc/>
    public int ParameterCount => _parameters.Length;
    /// <inheritdoc/>
    public int GradientCount => _gradients.Length;
    /// <inheritdoc/>
    public ILGPU.ArrayView<float> Parameters(int tensor) => _parameters[tensor];
    /// <inheritdoc/>
    public ILGPU.ArrayView<float> Gradient(int tensor) => _gradients[tensor];
}
