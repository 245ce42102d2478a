// This file is compiled into BOTH the runtime (src/Collins) and the source generator
// (generator/, netstandard2.0) through a <Compile Link> item. It is the single definition of how
// hash constants are derived; never copy it. Keep it free of APIs newer than netstandard2.0.
using System;

namespace Collins.Hashing
{
    /// <summary>
    /// Deterministic derivation of every Count-Sketch hash constant from the optimizer's seed and a
    /// tensor's name. Nothing per parameter is ever stored: a tensor's whole hash is a handful of
    /// integers computed here, at compile time by the generator and at run time by the runtime.
    /// </summary>
    internal static class HashDerivation
    {
        /// <summary>The Mersenne prime p = 2^31 − 1 used by the Carter–Wegman family.</summary>
        public const ulong MersennePrime = 2147483647UL;

        /// <summary>Largest tensor length the kernels index (32-bit signed indices, below p).</summary>
        public const long MaxTensorLength = 2147483646L;

        /// <summary>Number of buckets k = ceil(d / ratio) (at least 1).</summary>
        public static int Buckets(long length, int ratio)
        {
            if (length <= 0 || ratio <= 0) return 1;
            long k = (length + ratio - 1) / ratio;
            return (int)(k < 1 ? 1 : k);
        }

        /// <summary>Rows of the Rotation view: ceil(d / k) (at most ratio).</summary>
        public static int Rows(long length, int buckets)
        {
            if (length <= 0 || buckets <= 0) return 1;
            return (int)((length + buckets - 1) / buckets);
        }

        /// <summary>A 64-bit key for one tensor: FNV-1a over the name's UTF-16 code units, mixed with the seed.</summary>
        public static ulong TensorKey(long seed, string name)
        {
            ulong h = 14695981039346656037UL;
            for (int i = 0; i < name.Length; i++)
            {
                char c = name[i];
                h ^= (byte)c;
                h *= 1099511628211UL;
                h ^= (byte)(c >> 8);
                h *= 1099511628211UL;
            }
            ulong state = unchecked((ulong)seed) ^ 0x9E3779B97F4A7C15UL;
            return SplitMix64(ref state) ^ Mix(h);
        }

        /// <summary>One step of the SplitMix64 generator.</summary>
        public static ulong SplitMix64(ref ulong state)
        {
            state = unchecked(state + 0x9E3779B97F4A7C15UL);
            return Mix(state);
        }

        private static ulong Mix(ulong z)
        {
            unchecked
            {
                z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
                z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
                return z ^ (z >> 31);
            }
        }

        /// <summary>
        /// Rotation layout constants: for each row r a rotation ρ_r in [0, k) and a sign σ_r in {−1, +1}.
        /// Entry i = r·k + c lands in bucket (c + ρ_r) mod k with sign σ_r.
        /// </summary>
        public static void Rotation(long seed, string name, int rows, int buckets, int[] rotations, int[] signs)
        {
            if (rotations.Length < rows || signs.Length < rows) throw new ArgumentException("Arrays shorter than the row count.");
            ulong state = TensorKey(seed, name) ^ 0x526F746174696F6EUL; // "Rotation"
            for (int r = 0; r < rows; r++)
            {
                ulong x = SplitMix64(ref state);
                rotations[r] = (int)((x >> 1) % (ulong)buckets);
                signs[r] = (x & 1UL) == 0 ? 1 : -1;
            }
        }

        /// <summary>
        /// Universal layout constants: bucket hash ((a·i + b) mod p) mod k and sign hash
        /// 1 − 2·(((c·i + d) mod p) &amp; 1), with a, c in [1, p) and b, d in [0, p).
        /// </summary>
        public static void Universal(long seed, string name, out uint a, out uint b, out uint signA, out uint signB)
        {
            ulong state = TensorKey(seed, name) ^ 0x556E69766572736CUL; // "Universl"
            a = (uint)(1UL + SplitMix64(ref state) % (MersennePrime - 1UL));
            b = (uint)(SplitMix64(ref state) % MersennePrime);
            signA = (uint)(1UL + SplitMix64(ref state) % (MersennePrime - 1UL));
            signB = (uint)(SplitMix64(ref state) % MersennePrime);
        }

        /// <summary>x mod (2^31 − 1) for x &lt; 2^63, without a division.</summary>
        public static ulong ModMersenne(ulong x)
        {
            x = (x & MersennePrime) + (x >> 31);
            x = (x & MersennePrime) + (x >> 31);
            return x >= MersennePrime ? x - MersennePrime : x;
        }

        /// <summary>Carter–Wegman bucket of entry i.</summary>
        public static int UniversalBucket(uint a, uint b, int buckets, int i)
            => (int)(ModMersenne((ulong)a * (uint)i + b) % (ulong)buckets);

        /// <summary>Carter–Wegman sign (±1) of entry i.</summary>
        public static int UniversalSign(uint signA, uint signB, int i)
            => (ModMersenne((ulong)signA * (uint)i + signB) & 1UL) == 0 ? 1 : -1;
    }
}
