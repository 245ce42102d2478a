using System.Runtime.InteropServices;

namespace Collins;

/// <summary>
/// fsync on a folder, so that a rename inside it is on disk (POSIX only: on Windows the rename's metadata is
/// journaled by the file system and there is no folder handle to flush). Best effort: a file system that cannot
/// open or flush a folder (some network and FUSE mounts) leaves the rename as durable as the OS makes it.
/// </summary>
internal static partial class DirectorySync
{
    /// <summary>Flushes <paramref name="folder"/>; true when the OS confirmed it (false on Windows or when unsupported).</summary>
    public static bool Flush(string folder)
    {
        if (OperatingSystem.IsWindows()) return false;
        try
        {
            int fd = Open(folder, 0 /* O_RDONLY */);
            if (fd < 0) return false;
            try { return FSync(fd) == 0; }
            finally { _ = Close(fd); }
        }
        catch (DllNotFoundException) { return false; }
        catch (EntryPointNotFoundException) { return false; }
    }

    [LibraryImport("libc", EntryPoint = "open", StringMarshalling = StringMarshalling.Utf8)]
    private static partial int Open(string path, int flags);

    [LibraryImport("libc", EntryPoint = "fsync")]
    private static partial int FSync(int fd);

    [LibraryImport("libc", EntryPoint = "close")]
    private static partial int Close(int fd);
}
