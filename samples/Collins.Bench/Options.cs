using System.Globalization;

namespace Collins.Bench;

public sealed record Options(int Length, int Ratio, int Reps, int Threads, string? Filter, bool Gpu, string GpuBackend, double MinSampleMs, int AllocSteps, bool LengthGiven, bool Phases, string? DumpPtx = null, bool WholeModel = false, bool Parts = false, string? Tunings = null, string Model = "gpt2-small")
{
    public static Options? Parse(string[] args)
    {
        int length = 1 << 26, ratio = 32, reps = 7, threads = Environment.ProcessorCount, allocSteps = 0;
        double minMs = 25;
        string? filter = null, dumpPtx = null, tunings = null; string model = "gpt2-small"; bool gpu = false, lengthGiven = false, phases = false, wholeModel = false, parts = false; string backend = "cuda";
        for (int i = 0; i < args.Length; i++)
        {
            string a = args[i];
            string Next() => i + 1 < args.Length ? args[++i] : throw new ArgumentException($"{a} needs a value");
            try
            {
                switch (a)
                {
                    case "--length": case "-d": length = checked((int)Sizes.Parse(Next())); lengthGiven = true; break;
                    case "--ratio": case "-r": ratio = int.Parse(Next(), CultureInfo.InvariantCulture); break;
                    case "--reps": reps = int.Parse(Next(), CultureInfo.InvariantCulture); break;
                    case "--threads": case "-t": threads = int.Parse(Next(), CultureInfo.InvariantCulture); break;
                    case "--filter": filter = Next(); break;
                    case "--min-sample-ms": minMs = double.Parse(Next(), CultureInfo.InvariantCulture); break;
                    case "--alloc-steps": allocSteps = int.Parse(Next(), CultureInfo.InvariantCulture); break;
                    case "--gpu": gpu = true; break;
                    case "--phases": phases = true; break;
                    case "--whole-model": wholeModel = true; break;
                    case "--parts": parts = true; break;
                    case "--tunings": tunings = Next(); break;
                    case "--model": model = Next(); break;
                    case "--gpu-backend": backend = Next(); break;
                    case "--dump-ptx": dumpPtx = Next(); break;
                    case "-h": case "--help": Usage(); return null;
                    default: throw new ArgumentException($"unknown option {a}");
                }
            }
            catch (Exception e) when (e is FormatException or OverflowException or ArgumentException)
            {
                Console.Error.WriteLine($"error: {e.Message}"); Usage(); return null;
            }
        }
        if (length <= 0 || ratio < 1 || reps < 1 || threads < 1) { Console.Error.WriteLine("error: sizes, ratio, reps and threads must be positive"); return null; }
        if (reps < 5) Console.Error.WriteLine("note: fewer than 5 repetitions; medians are fragile");
        if (parts && !wholeModel) { Console.Error.WriteLine("error: --parts goes with --whole-model"); return null; }
        if (model != "gpt2-small" && !(gpu && wholeModel)) { Console.Error.WriteLine("error: --model goes with --gpu --whole-model"); return null; }
        if (parts && gpu) { Console.Error.WriteLine("error: --parts runs on the CPU (not with --gpu)"); return null; }
        if (phases && gpu) { Console.Error.WriteLine("error: --phases runs on the CPU (not with --gpu)"); return null; }
        if (tunings is not null && (wholeModel || gpu || phases)) { Console.Error.WriteLine("error: --tunings runs on its own (not with --whole-model, --gpu or --phases)"); return null; }
        return new Options(length, ratio, reps, threads, filter, gpu, backend, minMs, allocSteps, lengthGiven, phases, dumpPtx, wholeModel, parts, tunings, model);
    }


    public static string FormatSize(long n) =>
        n % (1L << 30) == 0 ? $"{n >> 30}G" : n % (1L << 20) == 0 ? $"{n >> 20}M" : n % (1L << 10) == 0 ? $"{n >> 10}K" : n.ToString(CultureInfo.InvariantCulture);

    private static void Usage() => Console.Error.WriteLine(
        "usage: Collins.Bench [--length 64M] [--ratio 32] [--reps 7] [--threads N] [--filter text] [--min-sample-ms 25] [--alloc-steps N] [--phases] [--tunings \"current;phase1=512;tile=4096,nt=0\"] [--whole-model [--parts]] [--gpu [--gpu-backend cuda|cpu] [--whole-model [--model gpt2-small|tiny]]] [--dump-ptx DIR]");
}
