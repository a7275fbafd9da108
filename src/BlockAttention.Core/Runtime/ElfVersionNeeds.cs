using System.Buffers.Binary;
using System.Text;

namespace BlockAttention.Runtime;

/// <summary>
/// Reads and edits the symbol-version requirements (<c>.gnu.version_r</c>) of a 64-bit
/// little-endian ELF shared library held in memory.
/// </summary>
/// <remarks>
/// Only one edit is offered: setting <c>VER_FLG_WEAK</c> on a required version. The dynamic
/// linker then loads the library even when the named version is missing, instead of failing
/// with "version `GLIBCXX_3.4.32' not found". The layout follows the System V gABI and the
/// LSB's description of <c>Elf64_Verneed</c>/<c>Elf64_Vernaux</c>.
/// </remarks>
internal static class ElfVersionNeeds
{
    private const uint SectionTypeVersionNeeds = 0x6ffffffe; // SHT_GNU_verneed
    private const ushort VersionFlagWeak = 0x2;              // VER_FLG_WEAK

    /// <summary>One required version: the library it is required from, its name and its flags.</summary>
    internal readonly record struct Requirement(string File, string Version, ushort Flags, int FlagsOffset)
    {
        public bool IsWeak => (Flags & VersionFlagWeak) != 0;
    }

    /// <summary>Lists every version the library requires, in file order.</summary>
    /// <exception cref="InvalidDataException">The bytes are not a 64-bit little-endian ELF file, or its tables run past its end.</exception>
    public static IReadOnlyList<Requirement> Read(ReadOnlySpan<byte> elf)
    {
        var requirements = new List<Requirement>();
        if (!TryFindVersionNeeds(elf, out int tableOffset, out int count, out int stringsOffset, out int stringsSize))
        {
            return requirements;
        }

        int needOffset = tableOffset;
        for (int i = 0; i < count; i++)
        {
            ushort auxCount = U16(elf, needOffset + 2);
            string file = ReadString(elf, stringsOffset, stringsSize, U32(elf, needOffset + 4));
            int auxOffset = needOffset + checked((int)U32(elf, needOffset + 8));
            for (int j = 0; j < auxCount; j++)
            {
                ushort flags = U16(elf, auxOffset + 4);
                string version = ReadString(elf, stringsOffset, stringsSize, U32(elf, auxOffset + 8));
                requirements.Add(new Requirement(file, version, flags, auxOffset + 4));
                auxOffset += checked((int)U32(elf, auxOffset + 12));
            }

            uint next = U32(elf, needOffset + 12);
            if (next == 0)
            {
                break;
            }

            needOffset += checked((int)next);
        }

        return requirements;
    }

    /// <summary>
    /// Marks the requirement of <paramref name="version"/> from <paramref name="file"/> weak.
    /// Returns false when the library does not require that version (nothing is changed).
    /// </summary>
    public static bool MarkWeak(Span<byte> elf, string file, string version)
    {
        bool found = false;
        foreach (var requirement in Read(elf))
        {
            if (requirement.File == file && requirement.Version == version)
            {
                BinaryPrimitives.WriteUInt16LittleEndian(elf[requirement.FlagsOffset..], (ushort)(requirement.Flags | VersionFlagWeak));
                found = true;
            }
        }

        return found;
    }

    private static bool TryFindVersionNeeds(ReadOnlySpan<byte> elf, out int tableOffset, out int count, out int stringsOffset, out int stringsSize)
    {
        tableOffset = count = stringsOffset = stringsSize = 0;
        if (elf.Length < 64 || elf[0] != 0x7f || elf[1] != (byte)'E' || elf[2] != (byte)'L' || elf[3] != (byte)'F')
        {
            throw new InvalidDataException("not an ELF file (bad magic)");
        }

        if (elf[4] != 2 || elf[5] != 1)
        {
            throw new InvalidDataException("only 64-bit little-endian ELF files are supported");
        }

        long sectionHeaders = checked((long)U64(elf, 0x28));
        int headerSize = U16(elf, 0x3A);
        int headerCount = U16(elf, 0x3C);
        if (headerSize < 64 || sectionHeaders < 0 || sectionHeaders + (long)headerSize * headerCount > elf.Length)
        {
            throw new InvalidDataException("ELF section headers lie outside the file");
        }

        for (int i = 0; i < headerCount; i++)
        {
            int header = checked((int)sectionHeaders + i * headerSize);
            if (U32(elf, header + 4) != SectionTypeVersionNeeds)
            {
                continue;
            }

            tableOffset = checked((int)U64(elf, header + 0x18));
            count = checked((int)U32(elf, header + 0x2C));
            int stringsHeader = checked((int)sectionHeaders + (int)U32(elf, header + 0x28) * headerSize);
            stringsOffset = checked((int)U64(elf, stringsHeader + 0x18));
            stringsSize = checked((int)U64(elf, stringsHeader + 0x20));
            if (stringsOffset < 0 || stringsOffset + (long)stringsSize > elf.Length)
            {
                throw new InvalidDataException("ELF string table lies outside the file");
            }

            return true;
        }

        return false;
    }

    private static string ReadString(ReadOnlySpan<byte> elf, int stringsOffset, int stringsSize, uint index)
    {
        if (index >= stringsSize)
        {
            throw new InvalidDataException($"ELF string index {index} is outside its table");
        }

        var rest = elf.Slice(stringsOffset + (int)index, stringsSize - (int)index);
        int end = rest.IndexOf((byte)0);
        return Encoding.ASCII.GetString(end < 0 ? rest : rest[..end]);
    }

    private static ushort U16(ReadOnlySpan<byte> elf, int offset) => BinaryPrimitives.ReadUInt16LittleEndian(Slice(elf, offset, 2));

    private static uint U32(ReadOnlySpan<byte> elf, int offset) => BinaryPrimitives.ReadUInt32LittleEndian(Slice(elf, offset, 4));

    private static ulong U64(ReadOnlySpan<byte> elf, int offset) => BinaryPrimitives.ReadUInt64LittleEndian(Slice(elf, offset, 8));

    private static ReadOnlySpan<byte> Slice(ReadOnlySpan<byte> elf, int offset, int length) =>
        offset >= 0 && offset + length <= elf.Length
            ? elf.Slice(offset, length)
            : throw new InvalidDataException($"ELF structure at offset {offset} runs past the end of the file");
}
