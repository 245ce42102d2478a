using ILGPU;
using ILGPU.Runtime;
using System.Buffers.Binary;
using System.Globalization;
using System.IO.Hashing;
using System.Runtime.InteropServices;
using System.Text;

namespace Collins;

/// <summary>Checkpoints: see docs/reliability.md for the format.</summary>
public abstract partial class SketchedOptimizerBase
{
    /// <summary>The 8-byte magic number that starts every checkpoint: ASCII "CLNSCKPT".</summary>
    internal static ReadOnlySpan<byte> CheckpointMagic => "CLNSCKPT"u8;

    /// <summary>
    /// The newest checkpoint format version this library writes and reads: 2, which adds a quantised first moment's storage,
    /// block and codes. An optimizer without a quantised first moment writes version 1, which every release reads; both load.
    /// </summary>
    public const int CheckpointFormatVersion = 2;

    /// <summary>
    /// The version a checkpoint of this optimizer is written in: 2 when its settings quantise the first moment (even if every
    /// tensor is dense, so that the file records the storage it is compared against), 1 otherwise.
    /// </summary>
    private int WrittenVersion => Settings.FirstMoment != FirstMomentStorage.Sketch ? 2 : 1;

    /// <summary>magic (8) + version (4) + total length (8).</summary>
    internal const int CheckpointHeaderBytes = 20;
    /// <summary>XxHash64 of everything before it.</summary>
    internal const int CheckpointChecksumBytes = 8;

    /// <summary>
    /// Test seam: wraps the file stream <see cref="SaveToFile"/> writes through (to simulate a crash
    /// mid-write). Null in production.
    /// </summary>
    internal Func<Stream, Stream>? CheckpointStreamWrapper { get; set; }

    /// <summary>
    /// Writes the optimizer's state (plan fingerprint, step counter, skipped-step count, moments,
    /// checksum) to <paramref name="stream"/>. The snapshot is taken under the step guard, so it
    /// never observes half a step; a concurrent <c>Step</c> is refused while it is taken.
    /// </summary>
    /// <exception cref="InvalidOperationException">A step is running on this optimizer.</exception>
    public void Save(Stream stream)
    {
        ArgumentNullException.ThrowIfNull(stream);
        byte[] data = SerializeCheckpoint();
        stream.Write(data);
        stream.Flush();
    }

    /// <summary>
    /// Saves atomically: writes a temporary file in the same folder, flushes it to disk, then
    /// renames it over <paramref name="path"/> and, on Linux and macOS, flushes the folder so the
    /// rename survives a power loss too. A crash at any point leaves either the old file or the new
    /// one, never a mixture.
    /// </summary>
    public void SaveToFile(string path)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        string full = Path.GetFullPath(path);
        string folder = Path.GetDirectoryName(full) ?? ".";
        byte[] data = SerializeCheckpoint();
        string temp = Path.Combine(folder, "." + Path.GetFileName(full) + "." + Guid.NewGuid().ToString("N") + ".tmp");
        try
        {
            using (var file = new FileStream(temp, FileMode.CreateNew, FileAccess.Write, FileShare.None))
            {
                Stream target = CheckpointStreamWrapper?.Invoke(file) ?? file;
                target.Write(data);
                target.Flush();
                file.Flush(flushToDisk: true);
            }
            File.Move(temp, full, overwrite: true);
            _ = DirectorySync.Flush(folder);   // make the rename itself durable (Linux, macOS)
        }
        catch
        {
            try { File.Delete(temp); } catch (IOException) { } catch (UnauthorizedAccessException) { }
            throw;
        }
    }

    /// <summary>
    /// Reads a checkpoint written by <see cref="Save"/>. The whole stream is read and validated
    /// (magic number, version, length, checksum, plan fingerprint, sizes, and values: step counter in
    /// [0, int.MaxValue − 1], skipped-step count ≥ 0, every moment finite, every second moment ≥ 0; for a quantised first moment
    /// every block scale ≥ 0 and every code one a step writes, the last block's padding 0)
    /// before the optimizer is touched: on any error the optimizer is unchanged.
    /// </summary>
    /// <exception cref="CheckpointFormatException">Truncated, corrupt, wrong magic number or checksum, or a value no step can produce (the message names the tensor, the moment and the index).</exception>
    /// <exception cref="CheckpointVersionException">Written in an unsupported format version.</exception>
    /// <exception cref="CheckpointMismatchException">Written by an optimizer with a different plan.</exception>
    /// <exception cref="InvalidOperationException">A step is running on this optimizer.</exception>
    public void Load(Stream stream)
    {
        ArgumentNullException.ThrowIfNull(stream);
        using var buffer = new MemoryStream();
        stream.CopyTo(buffer);
        LoadCheckpoint(buffer.GetBuffer().AsSpan(0, (int)buffer.Length));
    }

    /// <summary>Reads a checkpoint file written by <see cref="SaveToFile"/> (see <see cref="Load"/>).</summary>
    public void LoadFromFile(string path)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        LoadCheckpoint(File.ReadAllBytes(path));
    }

    // ------------------------------------------------------------------------------ writing

    private byte[] SerializeCheckpoint()
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        TakeGuard("save a checkpoint");
        try
        {
            using var w = new CheckpointWriter();
            int version = WrittenVersion;
            w.Bytes(CheckpointMagic);
            w.Int32(version);
            w.Int64(0); // total length, patched below
            // Plan fingerprint.
            w.Byte((byte)Settings.Layout);
            w.Byte((byte)Settings.SecondMoment);
            w.Double(Settings.Beta1);
            w.Double(Settings.Beta2);
            w.Int64(Settings.Seed);
            if (version >= 2)
            {
                w.Byte((byte)Settings.FirstMoment);
                w.Int32(Settings.QuantizationBlock);
            }
            w.Int32(Tensors.Count);
            foreach (var t in Tensors)
            {
                w.String(t.Name);
                w.Int32(t.Shape.Count);
                foreach (int dim in t.Shape) w.Int32(dim);
                w.Int32(t.Ratio);
                w.Byte(t.IsDense ? (byte)1 : (byte)0);
                w.Int32(t.Buckets);
                w.Byte(t.HasFirstMoment ? (byte)1 : (byte)0);
            }
            // Counters and moments.
            w.Int32(StepCount);
            w.Int64(SkippedSteps);
            for (int i = 0; i < Tensors.Count; i++)
            {
                w.Floats(Tensors[i].HasFirstMoment ? ReadFirstMomentState(i) : Array.Empty<float>());
                w.Floats(ReadSecondMomentState(i));
                if (version >= 2) w.ByteArray(ReadCodes(i, copy: false));
            }
            return w.Finish();
        }
        finally { ReleaseGuard(); }
    }

    private float[] ReadFirstMomentState(int i)
        => DeviceFirstMoments is null ? FirstMoments[i] : DeviceFirstMoments[i].GetAsArray1D();

    private float[] ReadSecondMomentState(int i)
        => DeviceSecondMoments is null ? SecondMoments[i] : DeviceSecondMoments[i].GetAsArray1D();

    private sealed class CheckpointWriter : IDisposable
    {
        private readonly MemoryStream _s = new();
        private readonly byte[] _scratch = new byte[8];

        public void Bytes(ReadOnlySpan<byte> b) => _s.Write(b);
        public void Byte(byte b) => _s.WriteByte(b);
        public void Int32(int v) { BinaryPrimitives.WriteInt32LittleEndian(_scratch, v); _s.Write(_scratch, 0, 4); }
        public void Int64(long v) { BinaryPrimitives.WriteInt64LittleEndian(_scratch, v); _s.Write(_scratch, 0, 8); }
        public void Double(double v) { BinaryPrimitives.WriteDoubleLittleEndian(_scratch, v); _s.Write(_scratch, 0, 8); }
        public void String(string s) { var b = Encoding.UTF8.GetBytes(s); Int32(b.Length); _s.Write(b); }
        public void ByteArray(ReadOnlySpan<byte> b) { Int32(b.Length); _s.Write(b); }

        public void Floats(ReadOnlySpan<float> values)
        {
            Int32(values.Length);
            if (BitConverter.IsLittleEndian) _s.Write(MemoryMarshal.AsBytes(values));
            else foreach (float f in values) { BinaryPrimitives.WriteSingleLittleEndian(_scratch, f); _s.Write(_scratch, 0, 4); }
        }

        public byte[] Finish()
        {
            long total = _s.Length + CheckpointChecksumBytes;
            _s.Position = 12;
            Int64(total);
            _s.Position = _s.Length;
            byte[] body = _s.ToArray();
            var result = new byte[total];
            body.CopyTo(result, 0);
            BinaryPrimitives.WriteUInt64LittleEndian(result.AsSpan(body.Length), XxHash64.HashToUInt64(body));
            return result;
        }

        public void Dispose() => _s.Dispose();
    }

    // ------------------------------------------------------------------------------ reading

    private void LoadCheckpoint(ReadOnlySpan<byte> data)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);

        // 1. Envelope: magic, version, length, checksum.
        if (data.Length < CheckpointMagic.Length || !data[..CheckpointMagic.Length].SequenceEqual(CheckpointMagic))
            throw new CheckpointFormatException("Not a Collins optimizer checkpoint: the magic number is missing.");
        if (data.Length < CheckpointHeaderBytes + CheckpointChecksumBytes)
            throw new CheckpointFormatException($"The checkpoint is truncated: {data.Length} bytes, shorter than its header.");
        int version = BinaryPrimitives.ReadInt32LittleEndian(data[8..]);
        if (version is not (1 or 2)) throw new CheckpointVersionException(version, CheckpointFormatVersion);
        long declared = BinaryPrimitives.ReadInt64LittleEndian(data[12..]);
        if (declared != data.Length)
            throw new CheckpointFormatException(declared > data.Length
                ? $"The checkpoint is truncated: the header declares {declared} bytes, {data.Length} were read."
                : $"The checkpoint has trailing data: the header declares {declared} bytes, {data.Length} were read.");
        int bodyLength = data.Length - CheckpointChecksumBytes;
        ulong stored = BinaryPrimitives.ReadUInt64LittleEndian(data[bodyLength..]);
        ulong actual = XxHash64.HashToUInt64(data[..bodyLength]);
        if (stored != actual)
            throw new CheckpointFormatException($"The checkpoint is corrupt: checksum {actual:X16} does not match the stored {stored:X16}.");

        // 2. Contents (the checksum only proves the bytes are what a writer wrote; check them anyway).
        var r = new CheckpointReader(data[..bodyLength], CheckpointHeaderBytes);
        var differences = new List<string>();
        var layout = (SketchLayout)r.Byte();
        var estimate = (SecondMomentEstimate)r.Byte();
        double beta1 = r.Double(), beta2 = r.Double();
        long seed = r.Int64();
        // Version 1 predates the quantised first moment: its files are of the Count-Sketch storage.
        var storage = version >= 2 ? (FirstMomentStorage)r.Byte() : FirstMomentStorage.Sketch;
        int block = version >= 2 ? r.Int32() : Settings.QuantizationBlock;
        int count = r.Count(minBytesEach: 18);
        if (layout != Settings.Layout) differences.Add($"layout {layout} in file, {Settings.Layout} in optimizer");
        if (estimate != Settings.SecondMoment) differences.Add($"second-moment estimate {estimate} in file, {Settings.SecondMoment} in optimizer");
        if (BitConverter.DoubleToInt64Bits(beta1) != BitConverter.DoubleToInt64Bits(Settings.Beta1)) differences.Add($"Beta1 {F(beta1)} in file, {F(Settings.Beta1)} in optimizer");
        if (BitConverter.DoubleToInt64Bits(beta2) != BitConverter.DoubleToInt64Bits(Settings.Beta2)) differences.Add($"Beta2 {F(beta2)} in file, {F(Settings.Beta2)} in optimizer");
        if (seed != Settings.Seed) differences.Add($"seed {seed} in file, {Settings.Seed} in optimizer");
        if (storage != Settings.FirstMoment) differences.Add($"first-moment storage {storage} in file, {Settings.FirstMoment} in optimizer");
        else if (storage != FirstMomentStorage.Sketch && block != Settings.QuantizationBlock)
            differences.Add($"quantisation block {block} in file, {Settings.QuantizationBlock} in optimizer");

        var fileNames = new string[count];
        var fileBuckets = new int[count];
        var fileHasM = new bool[count];
        for (int i = 0; i < count; i++)
        {
            string name = r.String();
            int rank = r.Count(minBytesEach: 4);
            var shape = new int[rank];
            for (int j = 0; j < rank; j++) shape[j] = r.Int32();
            int ratio = r.Int32();
            bool dense = r.Bool();
            fileBuckets[i] = r.Int32();
            fileHasM[i] = r.Bool();
            fileNames[i] = name;
            if (i >= Tensors.Count) continue;
            var t = Tensors[i];
            if (name != t.Name) { differences.Add($"tensor #{i}: name '{name}' in file, '{t.Name}' in optimizer"); continue; }
            if (!shape.SequenceEqual(t.Shape)) differences.Add($"tensor '{t.Name}': shape [{string.Join(", ", shape)}] in file, [{string.Join(", ", t.Shape)}] in optimizer");
            if (dense != t.IsDense) differences.Add($"tensor '{t.Name}': {(dense ? "dense" : "sketched")} in file, {(t.IsDense ? "dense" : "sketched")} in optimizer");
            else if (ratio != t.Ratio) differences.Add($"tensor '{t.Name}': ratio {ratio} in file, {t.Ratio} in optimizer");
        }
        if (count != Tensors.Count)
        {
            var missing = Tensors.Select(t => t.Name).Except(fileNames).ToArray();
            var extra = fileNames.Except(Tensors.Select(t => t.Name)).ToArray();
            string detail = (missing.Length > 0 ? $"; not in file: {string.Join(", ", missing.Select(n => $"'{n}'"))}" : "")
                          + (extra.Length > 0 ? $"; not in optimizer: {string.Join(", ", extra.Select(n => $"'{n}'"))}" : "");
            differences.Add($"{count} tensors in file, {Tensors.Count} in optimizer{detail}");
        }

        int stepCount = r.Int32();
        long skipped = r.Int64();
        if (differences.Count > 0) throw new CheckpointMismatchException(differences);
        if (stepCount < 0 || skipped < 0)
            throw new CheckpointFormatException($"The checkpoint is corrupt: negative counters (step {stepCount}, skipped {skipped}).");
        // Step refuses to run once StepCount is int.MaxValue (the counter could not advance), so a
        // checkpoint at int.MaxValue could never be stepped: no writer can have produced it.
        if (stepCount == int.MaxValue)
            throw new CheckpointFormatException($"The checkpoint is corrupt: step counter {stepCount} is past the last steppable value {int.MaxValue - 1}.");

        var m = new float[count][];
        var v = new float[count][];
        var codes = new byte[count][];
        for (int i = 0; i < count; i++)
        {
            var t = Tensors[i];
            if (fileBuckets[i] != t.Buckets || fileHasM[i] != t.HasFirstMoment)
                throw new CheckpointFormatException($"The checkpoint is corrupt: tensor '{t.Name}' records {fileBuckets[i]} buckets, its plan has {t.Buckets}.");
            m[i] = r.Floats();
            v[i] = r.Floats();
            codes[i] = version >= 2 ? r.ByteArray() : [];
            int expectM = t.FirstMomentFloats, expectV = t.SecondMomentFloats;   // v: R + C floats when factored; m: block scales when quantised
            if (m[i].Length != expectM || v[i].Length != expectV)
                throw new CheckpointFormatException($"The checkpoint is corrupt: tensor '{t.Name}' has {m[i].Length} and {v[i].Length} moment values, expected {expectM} and {expectV}.");
            if (codes[i].Length != t.FirstMomentCodeBytes)
                throw new CheckpointFormatException($"The checkpoint is corrupt: tensor '{t.Name}' has {codes[i].Length} bytes of first-moment codes, expected {t.FirstMomentCodeBytes}.");
            if (t.IsQuantized && (!Kernels.BlockQuantizer.CodesAreValid(codes[i], t.FirstMoment == FirstMomentStorage.Quantized4)
                                  || !Kernels.BlockQuantizer.PaddingIsZero(codes[i], t.FirstMoment == FirstMomentStorage.Quantized4, t.QuantizationBlock, t.Length)))
                throw new CheckpointFormatException($"The checkpoint is corrupt: tensor '{t.Name}' first-moment codes hold a value outside [-{t.QuantizationLevels}, {t.QuantizationLevels}], or a padding code of the last block that is not 0.");
            if (t.IsQuantized)
                for (int j = 0; j < m[i].Length; j++)
                    if (m[i][j] < 0f)
                        throw new CheckpointFormatException($"The checkpoint is corrupt: tensor '{t.Name}' first-moment scale [{j}] is {F(m[i][j])}; a block's absmax is ≥ 0.");
            // Values a step can produce: every moment finite, and v (a decayed sum of squares) not negative.
            for (int j = 0; j < m[i].Length; j++)
                if (!float.IsFinite(m[i][j]))
                    throw new CheckpointFormatException($"The checkpoint is corrupt: tensor '{t.Name}' first moment (m) [{j}] is {F(m[i][j])}; it must be finite.");
            for (int j = 0; j < v[i].Length; j++)
                if (!float.IsFinite(v[i][j]) || v[i][j] < 0f)
                    throw new CheckpointFormatException($"The checkpoint is corrupt: tensor '{t.Name}' second moment (v) [{j}] is {F(v[i][j])}; it must be finite and ≥ 0.");
        }
        if (r.Remaining != 0) throw new CheckpointFormatException($"The checkpoint is corrupt: {r.Remaining} unexpected bytes after the moments.");

        // 3. Everything is valid: now, and only now, touch the optimizer.
        TakeGuard("load a checkpoint");
        try
        {
            for (int i = 0; i < count; i++)
            {
                if (DeviceSecondMoments is null)
                {
                    m[i].CopyTo(FirstMoments[i], 0);
                    v[i].CopyTo(SecondMoments[i], 0);
                    codes[i].CopyTo(FirstMomentCodes[i], 0);
                }
                else
                {
                    if (m[i].Length > 0) DeviceFirstMoments![i].View.SubView(0, m[i].Length).CopyFromCPU(m[i]);
                    DeviceSecondMoments[i].View.CopyFromCPU(v[i]);
                    if (codes[i].Length > 0) DeviceFirstMomentCodes![i].View.SubView(0, codes[i].Length).CopyFromCPU(codes[i]);
                }
            }
            Accelerator?.Synchronize();
            StepCount = stepCount;
            SkippedSteps = skipped;
        }
        finally { ReleaseGuard(); }
    }

    private static string F(double x) => x.ToString("R", CultureInfo.InvariantCulture);
    private static string F(float x) => x.ToString("R", CultureInfo.InvariantCulture);

    private void TakeGuard(string what)
    {
        if (Interlocked.CompareExchange(ref _busy, Environment.CurrentManagedThreadId, 0) != 0)
            throw new InvalidOperationException($"Cannot {what} while a step (or another checkpoint operation) is running on this optimizer.");
    }

    /// <summary>Bounds-checked little-endian reader: any overrun is a <see cref="CheckpointFormatException"/>.</summary>
    private ref struct CheckpointReader
    {
        private readonly ReadOnlySpan<byte> _data;
        private int _pos;

        public CheckpointReader(ReadOnlySpan<byte> data, int start) { _data = data; _pos = start; }

        public int Remaining => _data.Length - _pos;

        private ReadOnlySpan<byte> Take(int n)
        {
            if (n < 0 || n > Remaining)
                throw new CheckpointFormatException($"The checkpoint is corrupt: a field at byte {_pos} needs {n} bytes, {Remaining} remain.");
            var s = _data.Slice(_pos, n);
            _pos += n;
            return s;
        }

        public byte Byte() => Take(1)[0];
        public bool Bool() => Byte() switch
        {
            0 => false,
            1 => true,
            var b => throw new CheckpointFormatException($"The checkpoint is corrupt: flag byte {b} at {_pos - 1}."),
        };
        public int Int32() => BinaryPrimitives.ReadInt32LittleEndian(Take(4));
        public long Int64() => BinaryPrimitives.ReadInt64LittleEndian(Take(8));
        public double Double() => BinaryPrimitives.ReadDoubleLittleEndian(Take(8));

        /// <summary>A non-negative count whose items (at least <paramref name="minBytesEach"/> bytes each) fit in what remains.</summary>
        public int Count(int minBytesEach)
        {
            int n = Int32();
            if (n < 0 || (long)n * minBytesEach > Remaining)
                throw new CheckpointFormatException($"The checkpoint is corrupt: count {n} at byte {_pos - 4} does not fit in the remaining {Remaining} bytes.");
            return n;
        }

        public string String()
        {
            int n = Count(1);
            try { return new UTF8Encoding(false, throwOnInvalidBytes: true).GetString(Take(n)); }
            catch (DecoderFallbackException) { throw new CheckpointFormatException("The checkpoint is corrupt: a tensor name is not valid UTF-8."); }
        }

        public byte[] ByteArray() => Take(Count(1)).ToArray();

        public float[] Floats()
        {
            int n = Count(4);
            var bytes = Take(n * 4);
            var result = new float[n];
            if (BitConverter.IsLittleEndian) bytes.CopyTo(MemoryMarshal.AsBytes(result.AsSpan()));
            else for (int i = 0; i < n; i++) result[i] = BinaryPrimitives.ReadSingleLittleEndian(bytes[(4 * i)..]);
            return result;
        }
    }
}
