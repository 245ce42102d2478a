using System;
using System.Globalization;
using System.Text;

namespace Collins.Generators
{
    /// <summary>A tiny indented writer for emitted source; every number goes through <see cref="Literal"/>.</summary>
    internal sealed class CodeWriter
    {
        private readonly StringBuilder _sb = new StringBuilder(16 * 1024);
        private int _indent;

        public CodeWriter Line(string text = "")
        {
            if (text.Length == 0) { _sb.Append('\n'); return this; }
            _sb.Append(' ', _indent * 4).Append(text).Append('\n');
            return this;
        }

        public CodeWriter Open(string text)
        {
            Line(text);
            Line("{");
            _indent++;
            return this;
        }

        public CodeWriter Close(string suffix = "")
        {
            _indent--;
            Line("}" + suffix);
            return this;
        }

        public override string ToString() => _sb.ToString();
    }

    /// <summary>Invariant, round-trip literals.</summary>
    internal static class Literal
    {
        private static readonly CultureInfo Invariant = CultureInfo.InvariantCulture;

        public static string Int(int v) => v.ToString(Invariant);
        public static string Long(long v) => v.ToString(Invariant) + "L";
        public static string UInt(uint v) => v.ToString(Invariant) + "U";
        public static string ULong(ulong v) => v.ToString(Invariant) + "UL";

        /// <summary>A float literal that parses back to exactly <paramref name="v"/>.</summary>
        public static string Float(float v)
        {
            if (float.IsNaN(v) || float.IsInfinity(v)) throw new ArgumentException("Non-finite float literal.");
            string s = v.ToString("R", Invariant);
            if (float.Parse(s, NumberStyles.Float, Invariant) != v) s = v.ToString("G9", Invariant);
            return s + "f";
        }

        /// <summary>A double literal that parses back to exactly <paramref name="v"/>.</summary>
        public static string Double(double v)
        {
            if (double.IsNaN(v) || double.IsInfinity(v)) throw new ArgumentException("Non-finite double literal.");
            string s = v.ToString("R", Invariant);
            if (double.Parse(s, NumberStyles.Float, Invariant) != v) s = v.ToString("G17", Invariant);
            return s + "d";
        }

        /// <summary>A float shown in prose (docs), not as code.</summary>
        public static string Prose(double v) => v.ToString("G6", Invariant);
    }
}
