namespace BlockAttention.PackageTests;

/// <summary>
/// Tests that build projects of this repository (with <c>dotnet build</c>, <c>pack</c>, <c>run</c>) run one
/// after the other: two builds of one project at once would trip over each other's files.
/// </summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class RepositoryBuilds
{
    public const string Name = "builds in the repository";
}
