using System.Text;
using BlockAttention.Tests.Inputs;
using CsCheck;
using Xunit.Sdk;

namespace BlockAttention.Tests.Properties;

/// <summary>
/// The property every reader of user files must keep: for any input, a result or one of its documented
/// exceptions, within a time and an allocation bound.
/// </summary>
internal static class PropertyRun
{
    /// <summary>The longest one read may take before it counts as a hang.</summary>
    public const double SecondsPerInput = 60; // a hang detector, generous because the test machine may be heavily shared

    /// <summary>
    /// Checks <paramref name="read"/> over <paramref name="iterations"/> inputs from <paramref name="inputs"/>.
    /// </summary>
    /// <param name="documented">Whether an exception is one the reader documents (anything else fails, as does a timeout).</param>
    /// <param name="maxAllocatedBytes">The most the read may allocate on its thread: a multiple of the input, far below what a runaway would take.</param>
    public static void Check(Gen<byte[]> inputs, Action<byte[]> read, Func<Exception, bool> documented, long iterations, long maxAllocatedBytes)
    {
        inputs.Sample(
            input =>
            {
                Exception? undocumented = null;
                long allocated = 0;
                SpecialFiles.WithinSeconds(SecondsPerInput, () =>
                {
                    long before = GC.GetAllocatedBytesForCurrentThread();
                    try
                    {
                        read(input);
                    }
                    catch (Exception e) when (documented(e))
                    {
                        // A clear, documented refusal is a correct outcome.
                    }
                    catch (Exception e)
                    {
                        undocumented = e;
                    }

                    allocated = GC.GetAllocatedBytesForCurrentThread() - before;
                });

                if (undocumented is not null)
                {
                    throw new XunitException($"undocumented exception: {undocumented}");
                }

                if (allocated > maxAllocatedBytes)
                {
                    throw new XunitException($"allocated {allocated} bytes for a {input.Length}-byte input (bound {maxAllocatedBytes})");
                }
            },
            iter: iterations,
            threads: 1,
            print: Show);
    }

    /// <summary>The input as CsCheck reports it on failure: text, cut short.</summary>
    public static string Show(byte[] input)
    {
        string text = Encoding.UTF8.GetString(input);
        return text.Length <= 3000 ? text : string.Concat(text.AsSpan(0, 3000), $"... ({input.Length} bytes)");
    }
}
