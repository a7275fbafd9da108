using BlockAttention.AI;
using BlockAttention.Caching;
using BlockAttention.Generation;
using BlockAttention.Prompts;
using Microsoft.Extensions.AI;
using AIChatMessage = Microsoft.Extensions.AI.ChatMessage;

namespace BlockAttention.Extensions.AI.Tests;

/// <summary>The IChatClient over a session on the tiny Llama 3 fixture (whose chat template is Llama 3's header layout).</summary>
public class ChatClientTests
{
    private const string System = "You answer briefly.";
    private const string PassageA = "- Title: Radium\nRadium is a chemical element with the symbol Ra.\n";
    private const string PassageB = "- Title: Marie Curie\nMarie Curie discovered radium and polonium.\n";

    private static MemoryKvBlockStore NewStore() => new(new MemoryKvBlockStoreOptions { MaxBytes = 64L << 20 });

    private static List<AIChatMessage> Conversation(string question) =>
    [
        new(ChatRole.System, System),
        new(ChatRole.User, [BlockAttentionChatClient.Passage(PassageA), BlockAttentionChatClient.Passage(PassageB), new TextContent(question)]),
    ];

    [Fact]
    public void Messages_become_blocks_in_the_checkpoint_chat_format_passages_alone_and_the_question_last()
    {
        using var session = new BlockSession(Fixtures.Model());
        var client = new BlockAttentionChatClient(session);

        var prompt = client.CreatePrompt(Conversation("Who discovered radium?"));

        client.Format.Should().BeSameAs(ChatFormat.Llama3, "the fixture's chat_template uses Llama 3 headers");
        prompt.Blocks.Select(b => b.Text).Should().Equal(
            "<|start_header_id|>system<|end_header_id|>\n\nYou answer briefly.",
            "<|eot_id|><|start_header_id|>user<|end_header_id|>\n\n",
            PassageA,
            PassageB,
            "Who discovered radium?<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n");
        // What the checkpoint's Hugging Face template renders for the same conversation (without its bos_token).
        string.Concat(prompt.Blocks.Select(b => b.Text)).Should().Be(
            "<|start_header_id|>system<|end_header_id|>\n\nYou answer briefly.<|eot_id|>" +
            "<|start_header_id|>user<|end_header_id|>\n\n" + PassageA + PassageB + "Who discovered radium?<|eot_id|>" +
            "<|start_header_id|>assistant<|end_header_id|>\n\n");
        prompt.StopStrings.Should().NotContain("Question:");
    }

    [Fact]
    public async Task The_second_request_over_the_same_passages_reports_their_tokens_as_cached()
    {
        var model = Fixtures.Model();
        using var store = NewStore();
        using var session = new BlockSession(model, store);
        IChatClient client = session.AsChatClient();
        var options = new ChatOptions { MaxOutputTokens = 4 };

        var first = await client.GetResponseAsync(Conversation("Who discovered radium?"), options);
        var second = await client.GetResponseAsync(Conversation("What is the symbol of radium?"), options);

        // The system turn, the user header and both passages are local blocks shared by the two requests.
        string[] shared =
        [
            "<|start_header_id|>system<|end_header_id|>\n\nYou answer briefly.",
            "<|eot_id|><|start_header_id|>user<|end_header_id|>\n\n", PassageA, PassageB,
        ];
        int sharedTokens = shared.Sum(text => model.Tokenizer!.Encode(text).Count);
        int finalTokens = model.Tokenizer!.Encode("What is the symbol of radium?<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n").Count;
        first.Usage!.CachedInputTokenCount.Should().Be(0);
        second.Usage!.CachedInputTokenCount.Should().Be(sharedTokens);
        second.Usage.InputTokenCount.Should().Be(sharedTokens + finalTokens);
        second.Usage.OutputTokenCount.Should().BeInRange(1, 4);
        second.Usage.TotalTokenCount.Should().Be(second.Usage.InputTokenCount + second.Usage.OutputTokenCount);
        second.ModelId.Should().Be("llama");
    }

    [Fact]
    public async Task Streaming_updates_concatenate_to_the_non_streaming_text_with_usage_and_finish_reason()
    {
        using var session = new BlockSession(Fixtures.Model(), NewStore());
        var client = session.AsChatClient();
        var options = new ChatOptions { MaxOutputTokens = 12 };

        var whole = await client.GetResponseAsync(Conversation("Who discovered radium?"), options);
        var updates = new List<ChatResponseUpdate>();
        await foreach (var update in client.GetStreamingResponseAsync(Conversation("Who discovered radium?"), options))
        {
            updates.Add(update);
        }

        string.Concat(updates.Select(u => u.Text)).Should().Be(whole.Text);
        updates.ToChatResponse().Text.Should().Be(whole.Text);
        updates.Where(u => u.FinishReason is not null).Should().ContainSingle().Which.FinishReason.Should().Be(whole.FinishReason);
        var usage = updates.SelectMany(u => u.Contents).OfType<UsageContent>().Should().ContainSingle().Subject.Details;
        usage.InputTokenCount.Should().Be(whole.Usage!.InputTokenCount);
        usage.OutputTokenCount.Should().Be(whole.Usage.OutputTokenCount);
        usage.CachedInputTokenCount.Should().BeGreaterThan(0, "the streaming request came second and found the passages stored");
    }

    [Fact]
    public async Task Chat_options_reach_the_session_exactly_as_generation_options()
    {
        var model = Fixtures.Model();
        using var session = new BlockSession(model, NewStore());
        var client = new BlockAttentionChatClient(session);
        var messages = Conversation("Who discovered radium?");
        var chat = new ChatOptions
        {
            MaxOutputTokens = 6, Temperature = 1.3f, TopP = 0.9f, TopK = 40, Seed = 7,
            AdditionalProperties = new() { [BlockAttentionChatClient.ModeProperty] = "full" },
        };

        var response = await client.GetResponseAsync(messages, chat);
        var direct = await session.GenerateAsync(client.CreatePrompt(messages), new GenerationOptions
        {
            Mode = AttentionMode.Full, MaxNewTokens = 6, Temperature = 1.3f, TopP = 0.9f, TopK = 40, Seed = 7,
        });

        response.Text.Should().Be(direct.Text);
        response.Usage!.OutputTokenCount.Should().Be(direct.TokenIds.Count);
        response.Usage.CachedInputTokenCount.Should().Be(0, "full attention computes the whole prompt");
        response.FinishReason.Should().Be(direct.FinishReason == FinishReason.Length ? ChatFinishReason.Length : ChatFinishReason.Stop);
    }

    [Fact]
    public async Task Instructions_answer_as_a_system_message_would()
    {
        using var session = new BlockSession(Fixtures.Model());
        var client = session.AsChatClient();
        List<AIChatMessage> question = [new(ChatRole.User, "Who discovered radium?")];

        var instructed = await client.GetResponseAsync(question, new ChatOptions { Instructions = System, MaxOutputTokens = 6 });
        var withSystem = await client.GetResponseAsync([new(ChatRole.System, System), .. question], new ChatOptions { MaxOutputTokens = 6 });

        instructed.Text.Should().Be(withSystem.Text);
        instructed.Usage!.InputTokenCount.Should().Be(withSystem.Usage!.InputTokenCount);
    }

    [Fact]
    public async Task Max_output_tokens_ends_with_finish_reason_length()
    {
        using var session = new BlockSession(Fixtures.Model(), NewStore());
        var client = session.AsChatClient();
        var options = new ChatOptions { MaxOutputTokens = 1, AdditionalProperties = new() { [BlockAttentionChatClient.ModeProperty] = AttentionMode.Block } };

        var response = await client.GetResponseAsync(Conversation("Who?"), options);

        // Either the one allowed token was generated (length) or the model ended at once (stop, no output).
        if (response.Usage!.OutputTokenCount == 1)
        {
            response.FinishReason.Should().Be(ChatFinishReason.Length);
        }
        else
        {
            response.Usage.OutputTokenCount.Should().Be(0);
            response.FinishReason.Should().Be(ChatFinishReason.Stop);
        }
    }

    public static TheoryData<string, ChatOptions> Unsupported => new()
    {
        { "tools", new ChatOptions { Tools = [AIFunctionFactory.Create(() => 1, "one")] } },
        { "response format", new ChatOptions { ResponseFormat = ChatResponseFormat.Json } },
        { "penalties", new ChatOptions { PresencePenalty = 0.5f } },
    };

    [Theory]
    [MemberData(nameof(Unsupported))]
    public async Task Unsupported_options_are_refused_not_ignored(string what, ChatOptions options)
    {
        using var session = new BlockSession(Fixtures.Model());
        var client = session.AsChatClient();

        var act = () => client.GetResponseAsync(Conversation("Who?"), options);

        await act.Should().ThrowAsync<NotSupportedException>(what);
    }

    [Fact]
    public async Task Another_model_id_non_text_content_and_a_bad_mode_are_refused()
    {
        using var session = new BlockSession(Fixtures.Model());
        var client = session.AsChatClient(new BlockAttentionChatClientOptions { ModelId = "tiny" });

        await FluentActions.Awaiting(() => client.GetResponseAsync(Conversation("Who?"), new ChatOptions { ModelId = "gpt-4o" }))
            .Should().ThrowAsync<ArgumentException>().WithMessage("*gpt-4o*tiny*");
        await FluentActions.Awaiting(() => client.GetResponseAsync([new AIChatMessage(ChatRole.User, [new DataContent(new byte[] { 1, 2 }, "image/png")])]))
            .Should().ThrowAsync<NotSupportedException>().WithMessage("*DataContent*");
        await FluentActions.Awaiting(() => client.GetResponseAsync(Conversation("Who?"),
                new ChatOptions { AdditionalProperties = new() { [BlockAttentionChatClient.ModeProperty] = "sideways" } }))
            .Should().ThrowAsync<ArgumentException>().WithMessage("*sideways*");
        await FluentActions.Awaiting(() => client.GetResponseAsync([new AIChatMessage(ChatRole.User, "Hi"), new AIChatMessage(ChatRole.Assistant, "Hello")]))
            .Should().ThrowAsync<ArgumentException>().WithMessage("*last*user*");
    }

    [Fact]
    public void Metadata_and_services_describe_the_client()
    {
        using var session = new BlockSession(Fixtures.Model());
        var client = session.AsChatClient(new BlockAttentionChatClientOptions { ModelId = "tiny" });

        var metadata = client.GetService<ChatClientMetadata>()!;
        metadata.ProviderName.Should().Be("blockattention");
        metadata.DefaultModelId.Should().Be("tiny");
        client.GetService<BlockSession>().Should().BeSameAs(session);
        client.GetService<BlockAttentionChatClient>().Should().BeSameAs(client);
    }
}
