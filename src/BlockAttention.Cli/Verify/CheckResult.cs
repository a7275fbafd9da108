namespace BlockAttention.Cli.Verify;

/// <summary>One line of a verification report: a check of one case, passed or not, with the numbers that decided it.</summary>
/// <param name="Case">The case name.</param>
/// <param name="Check">What was checked: <c>full</c>, <c>block</c>, <c>keys</c>, or a mode through the session.</param>
/// <param name="Passed">Whether every number was within its limit.</param>
/// <param name="Detail">The observed numbers and their limits.</param>
/// <param name="Elapsed">How long the check's model work took, when it ran the model.</param>
internal sealed record CheckResult(string Case, string Check, bool Passed, string Detail, TimeSpan? Elapsed = null);
