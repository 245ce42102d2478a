namespace Collins;

/// <summary>Base of every error <c>Load</c>/<c>LoadFromFile</c> raises for a bad checkpoint. The optimizer is unchanged when it is thrown.</summary>
public abstract class CheckpointException : Exception
{
    protected CheckpointException(string message) : base(message) { }
}

/// <summary>The data is not a readable checkpoint: truncated, corrupt, wrong magic number, bad checksum or inconsistent contents.</summary>
public sealed class CheckpointFormatException : CheckpointException
{
    public CheckpointFormatException(string message) : base(message) { }
}

/// <summary>The checkpoint was written in a format version this library does not read.</summary>
public sealed class CheckpointVersionException : CheckpointException
{
    public CheckpointVersionException(int fileVersion, int supportedVersion)
        : base($"Checkpoint format version {fileVersion} is not supported; this library reads versions 1 to {supportedVersion}.")
    {
        FileVersion = fileVersion;
        SupportedVersion = supportedVersion;
    }

    /// <summary>The version written in the file.</summary>
    public int FileVersion { get; }
    /// <summary>The newest version this library reads and writes (it reads every version from 1 up to it).</summary>
    public int SupportedVersion { get; }
}

/// <summary>
/// The checkpoint is intact but was written by an optimizer with another plan (tensor names,
/// shapes, ratios, dense flags, layout, β1, β2, second-moment estimate or seed).
/// <see cref="Differences"/> lists each difference, e.g. <c>tensor 'W1': ratio 32 in file, 16 in optimizer</c>.
/// </summary>
public sealed class CheckpointMismatchException : CheckpointException
{
    public CheckpointMismatchException(IReadOnlyList<string> differences)
        : base("The checkpoint does not match this optimizer: " + string.Join("; ", differences) + ".")
    {
        Differences = differences;
    }

    /// <summary>One line per difference between the file and the optimizer.</summary>
    public IReadOnlyList<string> Differences { get; }
}
