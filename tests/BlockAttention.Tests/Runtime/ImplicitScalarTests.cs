using System.Reflection;
using System.Reflection.Emit;
using System.Reflection.Metadata;
using System.Reflection.Metadata.Ecma335;
using System.Reflection.PortableExecutable;
using FluentAssertions;
using Xunit;

namespace BlockAttention.Tests.Runtime;

/// <summary>
/// No product code converts a .NET number to a TorchSharp <c>Scalar</c> implicitly. Such a
/// temporary is unreachable once libtorch has its pointer, so a garbage collection on another
/// thread can free it while libtorch reads it (seen as a garbage scalar under parallel load).
/// The check reads the IL of every product assembly for calls of <c>Scalar.op_Implicit</c>.
/// </summary>
public sealed class ImplicitScalarTests
{
    private static readonly string[] ProductAssemblies =
    [
        "BlockAttention.Core", "BlockAttention.Llama", "BlockAttention.Training", "BlockAttention.Redis", "blockattn",
    ];

    [Fact]
    public void Product_assemblies_pass_no_implicit_scalar_temporaries_to_TorchSharp()
    {
        var offenders = string.Join(Environment.NewLine, ProductAssemblies.SelectMany(ImplicitScalarCallers));

        offenders.Should().BeEmpty("an implicit Scalar can be finalized while libtorch reads it; use Scalars.Of(...) with using, or a static Scalars constant");
    }

    [Fact]
    public void The_IL_reader_finds_an_implicit_scalar_where_there_is_one()
    {
        // This test assembly converts a number implicitly below; the reader must see it,
        // or the check above could pass by finding nothing anywhere.
        ImplicitScalarCallers("BlockAttention.Tests").Should().Contain(m => m.EndsWith(nameof(ConvertsImplicitly), StringComparison.Ordinal));
    }

    private static TorchSharp.Scalar ConvertsImplicitly() => 2.5;

    private static IEnumerable<string> ImplicitScalarCallers(string assemblyName)
    {
        var path = Path.Combine(AppContext.BaseDirectory, assemblyName + ".dll");
        File.Exists(path).Should().BeTrue($"{path} is built beside the tests");

        using var stream = File.OpenRead(path);
        using var pe = new PEReader(stream);
        var metadata = pe.GetMetadataReader();
        var implicitTokens = ScalarImplicitConversionTokens(metadata);
        if (implicitTokens.Count == 0)
        {
            yield break;
        }

        foreach (var handle in metadata.MethodDefinitions)
        {
            var method = metadata.GetMethodDefinition(handle);
            if (method.RelativeVirtualAddress == 0)
            {
                continue;
            }

            var body = pe.GetMethodBody(method.RelativeVirtualAddress);
            if (CallsAny(body.GetILBytes()!, implicitTokens))
            {
                var type = metadata.GetTypeDefinition(method.GetDeclaringType());
                yield return $"{assemblyName}: {metadata.GetString(type.Namespace)}.{metadata.GetString(type.Name)}.{metadata.GetString(method.Name)}";
            }
        }
    }

    private static HashSet<int> ScalarImplicitConversionTokens(MetadataReader metadata)
    {
        var tokens = new HashSet<int>();
        foreach (var handle in metadata.MemberReferences)
        {
            var member = metadata.GetMemberReference(handle);
            if (metadata.GetString(member.Name) != "op_Implicit" || member.Parent.Kind != HandleKind.TypeReference)
            {
                continue;
            }

            var parent = metadata.GetTypeReference((TypeReferenceHandle)member.Parent);
            if (metadata.GetString(parent.Namespace) == "TorchSharp" && metadata.GetString(parent.Name) == "Scalar")
            {
                tokens.Add(MetadataTokens.GetToken(handle));
            }
        }

        return tokens;
    }

    private static bool CallsAny(byte[] il, HashSet<int> tokens)
    {
        var position = 0;
        while (position < il.Length)
        {
            OpCode opCode;
            if (il[position] == 0xFE)
            {
                opCode = TwoByteOpCodes[il[position + 1]];
                position += 2;
            }
            else
            {
                opCode = OneByteOpCodes[il[position]];
                position += 1;
            }

            if (opCode.OperandType == OperandType.InlineMethod && tokens.Contains(BitConverter.ToInt32(il, position)))
            {
                return true;
            }

            position += OperandSize(opCode, il, position);
        }

        return false;
    }

    private static int OperandSize(OpCode opCode, byte[] il, int position) => opCode.OperandType switch
    {
        OperandType.InlineNone => 0,
        OperandType.ShortInlineBrTarget or OperandType.ShortInlineI or OperandType.ShortInlineVar => 1,
        OperandType.InlineVar => 2,
        OperandType.InlineI8 or OperandType.InlineR => 8,
        OperandType.InlineSwitch => 4 + (4 * BitConverter.ToInt32(il, position)),
        _ => 4,
    };

    private static readonly OpCode[] OneByteOpCodes = new OpCode[256];
    private static readonly OpCode[] TwoByteOpCodes = new OpCode[256];

    static ImplicitScalarTests()
    {
        foreach (var field in typeof(OpCodes).GetFields(BindingFlags.Public | BindingFlags.Static))
        {
            var opCode = (OpCode)field.GetValue(null)!;
            var value = (ushort)opCode.Value;
            if (opCode.Size == 1)
            {
                OneByteOpCodes[value] = opCode;
            }
            else
            {
                TwoByteOpCodes[value & 0xFF] = opCode;
            }
        }
    }
}
