namespace Collins.Generators
{
    /// <summary>Names of the incremental pipeline steps (for <c>GeneratorDriverRunResult</c> step tracking in tests).</summary>
    public static class TrackingNames
    {
        /// <summary>ForAttributeWithMetadataName + transform: one <c>ClassResult</c> per annotated class declaration.</summary>
        public const string Transform = "Collins.Transform";
        /// <summary>The diagnostics of a class (data records, no Location).</summary>
        public const string Diagnostics = "Collins.Diagnostics";
        /// <summary>The transform results that carry a model (the filter before <see cref="Models"/>).</summary>
        public const string WithModel = "Collins.WithModel";
        /// <summary>The valid class models (the input of the source output).</summary>
        public const string Models = "Collins.Models";
        /// <summary>COL019 diagnostics: one per [Tensor] member of a type without [SketchedOptimizer] (second pipeline).</summary>
        public const string OrphanTensors = "Collins.OrphanTensors";
    }
}
