namespace BlockAttention.Cli;

/// <summary>
/// The CLI was called correctly but its input is unusable: a missing folder or file, a malformed
/// golden or blocks file, an unavailable device. Printed without the usage text, exit code 2.
/// The message names the file (and the key) at fault.
/// </summary>
internal sealed class InputException(string message, Exception? innerException = null) : Exception(message, innerException);
