using System.Text;
using System.Text.Json;
using BlockAttention.IO;

namespace BlockAttention.Tests.Inputs;

/// <summary>JSON whose every string can be read: a BOM is fine, broken text fails at parse time as JSON.</summary>
public class StrictJsonTests
{
    [Fact]
    public void A_byte_order_mark_is_accepted()
    {
        using var document = StrictJson.Parse((byte[])[0xEF, 0xBB, 0xBF, .. "[\"a\"]"u8.ToArray()]);

        document.RootElement[0].GetString().Should().Be("a");
    }

    [Theory]
    [InlineData("[\"\\ud800\"]")]
    [InlineData("[\"\\udc00x\"]")]
    [InlineData("{\"\\ud83d\": 1}")]
    [InlineData("[\"\\ud83d\\u0041\"]")]
    public void A_lone_surrogate_escape_is_a_json_error(string json)
    {
        var act = () => StrictJson.Parse(Encoding.ASCII.GetBytes(json));

        act.Should().Throw<JsonException>().WithMessage("*lone surrogate*");
    }

    [Fact]
    public void An_escaped_surrogate_pair_is_accepted()
    {
        using var document = StrictJson.Parse("[\"\\ud83d\\ude00\"]"u8.ToArray());

        document.RootElement[0].GetString().Should().Be("\U0001F600");
    }

    [Theory]
    [InlineData(new byte[] { (byte)'"', 0xFF, (byte)'"' }, 1)]
    [InlineData(new byte[] { (byte)'[', (byte)'"', 0xC3, (byte)'"', (byte)']' }, 2)]
    [InlineData(new byte[] { (byte)'"', 0xED, 0xA0, 0x80, (byte)'"' }, 1)]
    public void Bytes_that_are_not_utf8_are_a_json_error_at_their_offset(byte[] json, int offset)
    {
        var act = () => StrictJson.Parse(json);

        act.Should().Throw<JsonException>().WithMessage($"*not valid UTF-8*offset {offset}*");
    }

    [Fact]
    public void A_string_holding_a_lone_surrogate_is_a_json_error()
    {
        var act = () => StrictJson.Parse("{\"a\": \"\ud800\"}");

        act.Should().Throw<JsonException>().WithMessage("*lone surrogate*");
    }
}
