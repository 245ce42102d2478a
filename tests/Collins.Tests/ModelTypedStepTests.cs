using Collins.Tests.Generated;
using static Collins.Tests.Generated.GeneratedTestSupport;

namespace Collins.Tests;

/// <summary>
/// The model-typed <c>Step(lr, model, gradients)</c>: it steps the model's own <c>[Tensor]</c> members (fields and properties,
/// renamed tensors included) with the generated <c>Gradients</c> holder, bit for bit as the span overload does, and refuses a
/// null member by name before anything is written.
/// </summary>
public class ModelTypedStepTests
{
    [Fact]
    public void Model_step_matches_the_span_step_bit_for_bit()
    {
        var model = new RaggedRotation();
        using var typed = new RaggedRotation.Optimizer();
        using var spans = new RaggedRotation.Optimizer();
        var specs = RaggedRotation.Optimizer.TensorSpecs;
        var init = Parameters(specs, 8);
        // Fields and one property (Override), in declaration order.
        float[][] members = { model.Prime, model.Tiny, model.Odd, model.One, model.Small, model.Override };
        for (int t = 0; t < members.Length; t++) init[t].CopyTo(members[t], 0);
        var p = Clone(init);
        var grads = new RaggedRotation.Optimizer.Gradients();
        // The ordered view holds the same arrays, in declaration order.
        Assert.Equal(new[] { grads.Prime, grads.Tiny, grads.Odd, grads.One, grads.Small, grads.Override }, grads.Tensors);
        for (int t = 0; t < specs.Count; t++) Assert.Equal(specs[t].Shape.Aggregate(1, (a, b) => a * b), grads.Tensors[t].Length);
        for (int step = 1; step <= 4; step++)
        {
            var g = Gradients(specs, 8, step);
            g[0].CopyTo(grads.Prime, 0); g[1].CopyTo(grads.Tiny, 0); g[2].CopyTo(grads.Odd, 0);
            g[3].CopyTo(grads.One, 0); g[4].CopyTo(grads.Small, 0); g[5].CopyTo(grads.Override, 0);
            Assert.Equal(StepOutcome.Applied, typed.Step(1e-2f, model, grads));
            Assert.Equal(StepOutcome.Applied, spans.Step(1e-2f, p[0], g[0], p[1], g[1], p[2], g[2], p[3], g[3], p[4], g[4], p[5], g[5]));
            AssertBitIdentical(p, members);
            grads.Clear();
            Assert.All(new[] { grads.Prime, grads.Tiny, grads.Odd, grads.One, grads.Small, grads.Override }, a => Assert.All(a, x => Assert.Equal(0f, x)));
        }
        Assert.False(init[0].SequenceEqual(model.Prime));
    }

    [Fact]
    public void Renamed_tensor_is_read_from_its_member_and_named_in_the_holder()
    {
        var model = new Outer.Large();
        using var opt = new Outer.Large.Optimizer();
        var grads = new Outer.Large.Optimizer.Gradients();
        Assert.Equal(Outer.Large.Optimizer.Big.Length, grads.Big.Length);   // tensor "Big", member "Weights"
        grads.Big[5] = 1f;
        Assert.Equal(StepOutcome.Applied, opt.Step(1e-3f, model, grads));
        Assert.NotEqual(0f, model.Weights[5]);
    }

    [Fact]
    public void Null_member_is_refused_by_name_and_nothing_changes()
    {
        var model = new RaggedRotation();
        using var opt = new RaggedRotation.Optimizer();
        var grads = new RaggedRotation.Optimizer.Gradients();
        grads.Prime[0] = 1f;
        var before = (float[])model.Prime.Clone();
        model.Override = null!;
        var e = Assert.Throws<ArgumentException>(() => opt.Step(1e-2f, model, grads));
        Assert.Contains("Tensor 'Override': the model's member 'Override' is null", e.Message);
        Assert.Equal(0, opt.StepCount);
        Assert.Equal(before, model.Prime);
        Assert.Throws<ArgumentNullException>(() => opt.Step(1e-2f, null!, grads));
        Assert.Throws<ArgumentNullException>(() => opt.Step(1e-2f, model, null!));
        // A member of the wrong length gets the span overload's message.
        model.Override = new float[3];
        e = Assert.Throws<ArgumentException>(() => opt.Step(1e-2f, model, grads));
        Assert.Contains("Tensor 'Override': the parameter buffer has 3 elements, expected 2560.", e.Message);
        Assert.Equal(0, opt.StepCount);
    }

    [Fact]
    public void Static_and_keyword_named_members_are_stepped()
    {
        var model = new OddMembers();
        using var opt = new OddMembers.Optimizer();
        var grads = new OddMembers.Optimizer.Gradients();
        grads.Shared[3] = 1f;
        grads.Kw[5] = -1f;
        float shared = OddMembers.Shared[3], kw = model.@event[5];
        Assert.Equal(StepOutcome.Applied, opt.Step(1e-2f, model, grads));
        Assert.True(OddMembers.Shared[3] < shared, "the static member moved against its gradient");
        Assert.True(model.@event[5] > kw, "the keyword-named member moved against its gradient");
    }
}
