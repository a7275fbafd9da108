using System.Runtime.CompilerServices;

[assembly: InternalsVisibleTo("BlockAttention.Tests")]
[assembly: InternalsVisibleTo("BlockAttention.Training")]
