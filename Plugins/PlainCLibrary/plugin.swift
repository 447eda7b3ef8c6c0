import Foundation
import PackagePlugin

/// Builds the preload library `sprof run --heap` puts into the profiled command
/// (libsprof-heap.so, from Sources/SprofHeap) with the toolchain's clang, as a plain C shared
/// object that needs only libc and libm.
///
/// Why not a SwiftPM `.dynamic` product: SwiftPM links those with swiftc, which adds the Swift
/// runtime's start-up object and `-lswiftCore` (and, with `-static-stdlib`, `-lstdc++`) ahead of
/// any flag a manifest can pass, so the library would load libswiftCore and libstdc++ into every
/// program it is preloaded into (their initializers run there, and libstdc++ alone allocates a
/// 72 KiB pool that then shows up as a leak). The output is not a source file, so SwiftPM copies
/// it into the target's resource bundle (`sprof_Sprof.resources/`), beside the built binaries.
@main
struct PlainCLibrary: BuildToolPlugin {
    func createBuildCommands(context: PluginContext, target: Target) throws -> [Command] {
        let directory = context.package.directoryURL.appending(path: "Sources/SprofHeap")
        let source = directory.appending(path: "heap.c")
        let header = directory.appending(path: "include/sprof_heap.h")
        let output = context.pluginWorkDirectoryURL.appending(path: "libsprof-heap.so")
        // -O2 whatever the configuration: it runs in every allocation of the profiled command.
        // No sibling calls: a `malloc` that tail-called into the sampler would vanish from the
        // stacks it is the leaf of. Frame pointers: the probed functions then start with
        // `push %rbp` (at -O2 without them sprof_heap_sampled starts with a `lock`-prefixed
        // increment, an instruction x86 uprobes refuse, so the probe never fired), and
        // frame-pointer walks go through the interposed malloc. -g keeps its frames nameable.
        return [.buildCommand(
            displayName: "Compiling libsprof-heap.so (plain C)",
            executable: try context.tool(named: "clang").url,
            arguments: ["-shared", "-fPIC", "-O2", "-g", "-fno-omit-frame-pointer", "-fvisibility=hidden", "-fno-optimize-sibling-calls",
                        "-Wl,--no-undefined", "-I", directory.appending(path: "include").path,
                        "-o", output.path, source.path, "-lm"],
            inputFiles: [source, header],
            outputFiles: [output]
        )]
    }
}
