using TorchSharp;
public class SmokeTests
{
    [Fact]
    public void TorchLoads() => torch.ones(2).sum().item<float>().Should().Be(2f);
}
