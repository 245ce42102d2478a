using System;
using System.Globalization;
using System.Text;

namespace Collins.Generators
{
    /// <summary>A tiny indented writer for emitted source; every number goes through <see cref="Lit"/>.</summary>
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
    internal static class Lit
    {
        private static readonly CultureInfo Inv = CultureInfo.InvariantCulture;

        public static string I(int v) => v.ToString(Inv);
        public static string L(long v) => v.ToString(Inv) + "L";
        public static string U(uint v) => v.ToString(Inv) + "U";
        public static string UL(ulong v) => v.ToString(Inv) + "UL";

        /// <summary>A float literal that parses back to exactly <paramref name="v"/>.</summary>
        public static string F(float v)
        {
            if (float.IsNaN(v) || float.IsInfinity(v)) throw new ArgumentException("Non-finite float literal.");
            string s = v.ToString("R", Inv);
            if (float.Parse(s, NumberStyles.Float, Inv) != v) s = v.ToString("G9", Inv);
            return s + "f";
        }

        /// <summary>A double literal that parses back to exactly <paramref name="v"/>.</summary>
        public static string D(double v)
        {
            if (double.IsNaN(v) || double.IsInfinity(v)) throw new ArgumentException("Non-finite double literal.");
            string s = v.ToString("R", Inv);
            if (double.Parse(s, NumberStyles.Float, Inv) != v) s = v.ToString("G17", Inv);
            return s + "d";
        }

        /// <summary>A float shown in prose (docs), not as code.</summary>
        public static string Text(double v) => v.ToString("G6", Inv);
    }
}
