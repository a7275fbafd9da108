using System.Runtime.CompilerServices;

[assembly: InternalsVisibleTo("BlockAttention.Llama")]
[assembly: InternalsVisibleTo("BlockAttention.Tests")]

// Training computes with the same scalar helpers as inference (Runtime/Scalars).
[assembly: InternalsVisibleTo("BlockAttention.Training")]
