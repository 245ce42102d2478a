using TorchSharp;
using TorchSharpLm;

namespace Collins.TorchSharp.Tests;

/// <summary>The sample's comparison is apples to apples: libtorch's AdamW and this project's dense AdamW give the same curve.</summary>
public class PeerTests
{
    [Fact]
    public void TorchAdamWAndCollinsDenseAdamWGiveTheSameLossCurveOver50Steps()
    {
        var corpus = Corpus.Load();
        var config = new ModelConfig(corpus.Alphabet.Length, Context: 16, DModel: 32, Heads: 2, Layers: 1, FeedForward: 64);
        var o = new TrainOptions { Steps = 50, Batch = 8, EvalEvery = 1000, EvalWindows = 16, WarmupSteps = 5 };
        var torchRun = Trainer.Train(Trainer.Choices.Single(c => c.Name == "torch AdamW"), config, corpus, o);
        var denseRun = Trainer.Train(Trainer.Choices.Single(c => c.Name == "Collins dense AdamW"), config, corpus, o);
        Assert.Equal(50, torchRun.TrainLosses.Count);
        for (int i = 0; i < 50; i++)
        {
            double a = torchRun.TrainLosses[i], b = denseRun.TrainLosses[i];
            Assert.True(Math.Abs(a - b) <= 1e-4 * Math.Abs(a), $"step {i}: torch AdamW {a:R}, Collins dense AdamW {b:R}");
        }
        Assert.True(torchRun.TrainLosses[^1] < torchRun.TrainLosses[0] - 0.3, "the model learns");
        Assert.Equal(torchRun.StateBytes, denseRun.StateBytes);   // 8 B per parameter both
    }

    [Fact]
    public void The_specified_and_recommended_rows_run_the_generated_optimizers_on_the_declared_model()
    {
        var corpus = Corpus.Load();
        Assert.Equal(CharTransformer.DeclaredConfig, new ModelConfig(corpus.Alphabet.Length));   // the default run's configuration
        foreach (var name in new[] { "Collins C32", "Collins C32 Mean β1=0" })
        {
            var choice = Trainer.Choices.Single(c => c.Name == name);
            using var model = new CharTransformer(CharTransformer.DeclaredConfig);
            using var stepper = choice.Create(model, choice.LearningRate);
            var generated = Assert.IsType<GeneratedStepper>(stepper);
            Assert.Equal(30, generated.Optimizer.Tensors.Count);                                       // every parameter declared
            Assert.Equal(model.parameters().Sum(p => p.numel()), generated.Optimizer.ParameterCount);  // and nothing else
            using var before = model.parameters().First().clone();
            using var x = torch.randint(0, CharTransformer.Vocab, new long[] { 2, 16 });
            using var logits = model.forward(x);
            using var loss = logits.pow(2).mean();
            loss.backward();
            stepper.Step();
            Assert.Equal(1, generated.Optimizer.StepCount);
            Assert.False(before.allclose(model.parameters().First(), rtol: 0, atol: 0), name + ": the module's own parameter moved");
        }
        // Another configuration has other shapes: the run-time adapter with the same settings.
        using var small = new CharTransformer(new ModelConfig(corpus.Alphabet.Length, Context: 16, DModel: 32, Heads: 2, Layers: 1, FeedForward: 64));
        using var other = Trainer.Choices.Single(c => c.Name == "Collins C32").Create(small, 1e-2);
        Assert.IsType<CollinsStepper>(other);
    }
}
