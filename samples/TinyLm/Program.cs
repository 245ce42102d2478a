using System.Globalization;
using TinyLm;

// dotnet run -c Release --project samples/TinyLm [-- OPTIONS]; --help lists them (Cli.cs).
CultureInfo.DefaultThreadCurrentCulture = CultureInfo.InvariantCulture;
CultureInfo.CurrentCulture = CultureInfo.InvariantCulture;
return Cli.Run(args);
