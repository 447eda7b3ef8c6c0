import Foundation
import SprofServe

// `sprof serve` execs this binary (Sources/sprof/ServeCommand.swift); it also runs on its own.
let status = await ServeMain.run(Array(CommandLine.arguments.dropFirst()))
exit(status)
