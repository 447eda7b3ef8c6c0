import SprofProfile

extension SampleTypeView {
    /// The flame graph of every view in `table` whose sample type `profile` has, as
    /// `(suffix, SVG bytes)` in table order (`sprof run`'s `PREFIX.wall.svg`, `PREFIX.offcpu.svg`):
    /// `graph` with the view's measure added to the title and the type's label as the count name.
    public static func flameGraphs(_ profile: Profile, graph: FlameGraphOptions, perThread: Bool, fullNames: Bool,
                                   table: [SampleTypeView] = table) -> [(suffix: String, bytes: [UInt8])] {
        views(of: profile, in: table).map { view, index in
            var options = graph
            options.title = (graph.title ?? "sprof") + " (\(view.what))"
            options.countName = profile.valueLabel(index)
            let folded = profile.folded(valueIndex: index, perThread: perThread, names: profile.functionNames(fullNames ? .full : .short))
            return (view.suffix, FlameGraph.renderBytes(folded, options: options))
        }
    }
}
