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

        /// <summary>Indents the following lines one level deeper (a continued expression), until <see cref="Outdent"/>.</summary>
        public CodeWriter Indent() { _indent++; return this; }

        /// <summary>Ends an <see cref="Indent"/>.</summary>
        public CodeWriter Outdent() { _indent--; return this; }

        public CodeWriter Close(string suffix = "")
        {
            _indent--;
            Line("}" + suffix);
            return this;
        }

        /// <summary>
        /// <paramref name="head"/>, then <paramref name="items"/> joined by ", ", then <paramref name="tail"/>, wrapped so that no line
        /// runs far past <paramref name="width"/> characters; continuation lines are indented one level deeper.
        /// </summary>
        public CodeWriter Wrapped(string head, System.Collections.Generic.IEnumerable<string> items, string tail, int width = 120)
        {
            var line = new StringBuilder(head);
            bool first = true, continued = false;
            foreach (var item in items)
            {
                string piece = first ? item : ", " + item;
                if (!first && _indent * 4 + (continued ? 4 : 0) + line.Length + piece.Length > width)
                {
                    line.Append(',');
                    if (continued) _indent++;
                    Line(line.ToString().TrimEnd());
                    if (continued) _indent--;
                    continued = true;
                    line.Clear().Append(item);
                }
                else line.Append(piece);
                first = false;
            }
            line.Append(tail);
            if (continued) _indent++;
            Line(line.ToString());
            if (continued) _indent--;
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
