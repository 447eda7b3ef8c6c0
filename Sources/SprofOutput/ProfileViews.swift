import SprofProfile

extension Profile {
    /// Folded stacks of one measure: what the SVG renderer and the folded text are made from.
    /// - Parameters:
    ///   - valueIndex: the ``Profile/sampleTypes`` entry to sum (nil: ``Profile/defaultSampleType``,
    ///     the type every view shows by default); zero values are left out, so off-CPU intervals
    ///     never show in the CPU view.
    ///   - perThread: root stacks at `process;thread-tid`, as stackcollapse-perf's `--tid` and
    ///     inferno's per-thread mode do.
    ///   - names: the view's function names (``Profile/FunctionNames``: short, full or linkage
    ///     names); nil for this profile's short names.
    public func folded(valueIndex: Int? = nil, perThread: Bool = false, names: FunctionNames? = nil) -> FoldedStacks {
        var out = FoldedStacks()
        for (frames, value) in aggregatedStacks(valueIndex: valueIndex ?? defaultSampleType, perThread: perThread, names: names) where value > 0 {
            out.add(frames, count: UInt64(value))
        }
        return out
    }

    /// The default sample type's values as folded stacks, rooted at the process name.
    public var folded: FoldedStacks { folded() }

    /// The folded text (`a;b;c COUNT` lines, sorted): the input of flamegraph.pl, inferno,
    /// speedscope and `sprof flamegraph`.
    public func foldedText() -> String { folded.serialized() }

    /// The flame graph of the default sample type as a self-contained interactive SVG, with the
    /// profile's provenance as its subtitle.
    public func svg(title: String? = nil) -> String {
        var options = FlameGraphOptions(title: title)
        options.subtitle = metadata.summaryLine
        return svg(options: options)
    }

    /// The flame graph with every drawing option (palette, width, icicle layout…).
    /// The count label is the sample type's (``Profile/valueLabel(_:)``) unless `options` names another.
    public func svg(options: FlameGraphOptions) -> String {
        var options = options
        if options.countName == "samples" { options.countName = valueLabel(defaultSampleType) }
        return FlameGraph.render(folded, options: options)
    }
}
