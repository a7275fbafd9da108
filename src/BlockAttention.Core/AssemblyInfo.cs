using System.Runtime.CompilerServices;

[assembly: InternalsVisibleTo("BlockAttention.Llama")]
[assembly: InternalsVisibleTo("BlockAttention.Tests")]
