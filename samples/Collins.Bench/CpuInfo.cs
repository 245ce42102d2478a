using System.Runtime.InteropServices;

namespace Collins.Bench;

/// <summary>Which CPU a figure was measured on: vendor, family, model and name (Linux /proc/cpuinfo; the OS description elsewhere).</summary>
public static class CpuInfo
{
    private static readonly Lazy<string> s_description = new(Read);

    /// <summary>For example <c>AMD EPYC (AuthenticAMD family 26 model 2)</c>.</summary>
    public static string Description => s_description.Value;

    private static string Read()
    {
        try
        {
            if (File.Exists("/proc/cpuinfo"))
            {
                string? vendor = null, family = null, model = null, name = null;
                foreach (var line in File.ReadLines("/proc/cpuinfo"))
                {
                    int colon = line.IndexOf(':');
                    if (colon < 0) { if (vendor is not null) break; continue; }   // first processor only
                    string key = line[..colon].Trim(), value = line[(colon + 1)..].Trim();
                    switch (key)
                    {
                        case "vendor_id": vendor ??= value; break;
                        case "cpu family": family ??= value; break;
                        case "model": model ??= value; break;
                        case "model name": name ??= value; break;
                    }
                }
                if (vendor is not null) return $"{name ?? "unknown"} ({vendor} family {family ?? "?"} model {model ?? "?"})";
            }
        }
        catch (IOException) { }
        catch (UnauthorizedAccessException) { }
        return $"{RuntimeInformation.ProcessArchitecture} ({RuntimeInformation.OSDescription})";
    }
}
