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
}
