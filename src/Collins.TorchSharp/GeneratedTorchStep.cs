using System.ComponentModel;
using TorchSharp;
using static TorchSharp.torch;

namespace Collins.TorchSharp;

/// <summary>
/// What a generated optimizer's <c>Step(learningRate, module)</c> calls for each <c>[Tensor]</c> member that is a TorchSharp
/// tensor: it validates the member and views its storage (or its gradient's) as floats, in place, without a copy. The
/// generated code evaluates every view before the span <c>Step</c> runs, so a refusal changes nothing. Not for user code.
/// </summary>
[EditorBrowsable(EditorBrowsableState.Never)]
public static class GeneratedTorchStep
{
    /// <summary>The member's storage, after checking it is a contiguous float32 CPU tensor of the declared shape.</summary>
    /// <exception cref="ArgumentException">The member is null, not float32, not contiguous, or of another shape.</exception>
    /// <exception cref="NotSupportedException">The member is not on the CPU.</exception>
    public static Span<float> Parameter(Tensor? tensor, string name, params ReadOnlySpan<long> shape)
    {
        if (tensor is null) throw NullMember(name);
        CollinsOptimizer.Check(name, "tensor", tensor, shape);
        return View(tensor);
    }

    /// <summary>The member's gradient storage, after checking it exists and is a contiguous float32 CPU tensor of the declared shape.</summary>
    /// <exception cref="ArgumentException">The member is null, has no gradient, or its gradient is not float32, contiguous, or of the shape.</exception>
    /// <exception cref="NotSupportedException">The gradient is not on the CPU.</exception>
    public static ReadOnlySpan<float> Gradient(Tensor? tensor, string name, params ReadOnlySpan<long> shape)
    {
        if (tensor is null) throw NullMember(name);
        // The handle .grad returns is ours to dispose; the storage belongs to the parameter's gradient and stays.
        using var gradient = tensor.grad;
        if (gradient is null)
            throw new ArgumentException($"Tensor '{name}' has no gradient (.grad is null): call loss.backward() before Step, and declare only parameters that take part in the loss.", name);
        CollinsOptimizer.Check(name, "gradient", gradient, shape);
        return View(gradient);
    }

    private static ArgumentException NullMember(string name)
        => new($"Tensor '{name}': the model's member is null; create the parameter before stepping.", name);

    private static unsafe Span<float> View(Tensor t) => new((void*)CollinsOptimizer.DataPointer(t), checked((int)t.numel()));
}
