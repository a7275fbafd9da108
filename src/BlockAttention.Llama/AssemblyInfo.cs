using System.Runtime.CompilerServices;

[assembly: InternalsVisibleTo("BlockAttention.Tests")]
