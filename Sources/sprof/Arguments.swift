#if canImport(Glibc)
import Glibc
#endif
import ArgumentParser
import Foundation
import Sprof

/// sprof's exit statuses, the same for every subcommand (README "Exit statuses", `sprof --help`).
enum ExitStatusCode {
    /// A runtime failure of sprof itself: the kernel refused the events, an output could not be
    /// written, the input could not be read.
    static let runtimeError: Int32 = 1
    /// A usage error: unknown option, bad value, missing command. Nothing was run.
    static let usage: Int32 = 2
    /// A CI gate failed (`stat --baseline`: a counter regressed; `diff --fail-above`: a function's
    /// total or self share grew, significantly when both sides hold repeated runs; `--min-samples`: too few samples). 2, as the gate issues and earlier
    /// releases promised; it shares the value with usage errors, which the stderr line tells apart.
    static let gateFailed: Int32 = 2
    /// The command could not be executed (not executable, a directory), as shells report it.
    static let cannotExecute: Int32 = 126
    /// The command was not found.
    static let notFound: Int32 = 127
}

/// Why main.swift rewrites argv before swift-argument-parser sees it: `run` and `stat` end with
/// a command captured verbatim, and the parser's own rules made three kinds of input misbehave:
/// - an unknown option before the command (`--frq 99 -- ./prog`) was taken as the command
///   ("--frq: command not found", 127);
/// - a value that starts with `-` (`-F -5`, `-c -5`) was taken for an option ("Missing value",
///   status 64, four lines of usage);
/// - perf's joined short forms (`-x,`, `-F999`, `-eCYCLES`, `-oPREFIX`) were unknown options.
/// So, for subcommands that capture a command: every word before the command must be a known
/// option (or `--`); the first other word starts the command; an option's value is always the
/// next word (or the rest of a joined short option), handed on as `--long=value`; and a `--` is
/// placed before the command so nothing after it is parsed. The option table comes from the
/// parser's own description of the commands, so options added later are known without a list here.
struct ArgumentRewriter {
    /// One subcommand's named arguments.
    struct Spec {
        var name: String
        /// Long name (or short when there is none) → takes a value.
        var long: [String: Bool] = [:]
        /// Short letter → (takes a value, long name if any).
        var short: [Character: (value: Bool, long: String?)] = [:]
        /// Whether the subcommand ends with a verbatim command.
        var capturesCommand = false
    }

    /// A usage error found while rewriting: one line, exit 2.
    struct UsageError: Error { var message: String }

    private var specs: [String: Spec] = [:]

    /// The table, from swift-argument-parser's JSON description of `SprofCLI`.
    init(dump: String) {
        struct Tool: Decodable { var command: Command }
        struct Command: Decodable {
            var commandName: String
            var aliases: [String]?
            var subcommands: [Command]?
            var arguments: [Argument]?
        }
        struct Argument: Decodable {
            var kind: String
            var parsingStrategy: String?
            var names: [Name]?
        }
        struct Name: Decodable { var kind: String; var name: String }
        guard let tool = try? JSONDecoder().decode(Tool.self, from: Data(dump.utf8)) else { return }
        for command in tool.command.subcommands ?? [] {
            var spec = Spec(name: command.commandName)
            for argument in command.arguments ?? [] {
                if argument.kind == "positional" {
                    if argument.parsingStrategy == "allRemainingInput" || argument.parsingStrategy == "allUnrecognized" {
                        spec.capturesCommand = true
                    }
                    continue
                }
                let takesValue = argument.kind == "option"
                let names = argument.names ?? []
                let long = names.first { $0.kind == "long" }?.name
                for name in names {
                    switch name.kind {
                    case "short": if let c = name.name.first { spec.short[c] = (takesValue, long) }
                    default: spec.long[name.name] = takesValue
                    }
                }
            }
            for alias in [command.commandName] + (command.aliases ?? []) { specs[alias] = spec }
        }
    }

    /// `arguments` without the program name, rewritten for the parser. Subcommands that do not
    /// capture a command are left to the parser.
    func rewrite(_ arguments: [String]) throws(UsageError) -> [String] {
        // `perf -v` and `perf --version` print the version; `-V` is the other common spelling.
        if arguments == ["-v"] || arguments == ["-V"] { return ["--version"] }
        if let first = arguments.first, first.hasPrefix("-"), specs[first] == nil,
           !["--help", "-h", "--version", "--generate-completion-script"].contains(first) {
            // A mistyped top-level option: name the closest, as for a subcommand's options.
            let names = ["--help", "--version"]
            let typed = String(first.prefix { $0 != "=" })
            if let best = names.min(by: { Self.editDistance(typed, $0) < Self.editDistance(typed, $1) }),
               Self.editDistance(typed, best) <= 2 {
                throw UsageError(message: "unknown option '\(typed)' (did you mean '\(best)'?) (see sprof --help)")
            }
        }
        guard let sub = arguments.first, let spec = specs[sub] else { return arguments }
        guard spec.capturesCommand else { return Self.joiningNegativeValues(arguments, spec: spec) }
        var out = [sub]
        var i = 1
        func value(for option: String) throws(UsageError) -> String {
            guard i + 1 < arguments.count else { throw UsageError(message: "\(option) needs a value (see sprof \(sub) --help)") }
            i += 1
            return arguments[i]
        }
        while i < arguments.count {
            let word = arguments[i]
            if word == "--" {
                out += arguments[i...]
                return out
            }
            if word.hasPrefix("--") {
                let body = word.dropFirst(2)
                let name = String(body.prefix { $0 != "=" })
                // The parser lists `--version` for every subcommand but honours it only before
                // the subcommand; here it would be taken for the command to run.
                if name == "version" && body == "version" { return ["--version"] }
                guard let takesValue = spec.long[name] else {
                    throw UsageError(message: unknown("--" + name, spec: spec))
                }
                if takesValue {
                    out.append(body.contains("=") ? word : "--\(name)=" + (try value(for: "--" + name)))
                } else {
                    if body.contains("=") { throw UsageError(message: "--\(name) takes no value (see sprof \(sub) --help)") }
                    out.append(word)
                }
            } else if word.hasPrefix("-") && word.count > 1 {
                // A cluster: flags (-gq), then at most one option whose value is the rest or the next word.
                var rest = Substring(word.dropFirst())
                while let letter = rest.first {
                    rest = rest.dropFirst()
                    guard let option = spec.short[letter] else {
                        throw UsageError(message: unknown("-" + String(letter), spec: spec, whole: word))
                    }
                    if !option.value {
                        out.append(option.long.map { "--" + $0 } ?? "-" + String(letter))
                        continue
                    }
                    var v = rest.isEmpty ? try value(for: "-" + String(letter)) : String(rest)
                    // `-F=-5`: the parser's own spelling of a joined value.
                    if !rest.isEmpty && v.hasPrefix("=") { v.removeFirst() }
                    out.append((option.long.map { "--" + $0 } ?? "-" + String(letter)) + "=" + v)
                    break
                }
            } else {
                out.append("--")
                out += arguments[i...]
                return out
            }
            i += 1
        }
        return out
    }

    /// For subcommands without a command: an option that takes a value followed by a negative
    /// number (`--limit -1`) gets it joined (`--limit=-1`), so that the subcommand's own check
    /// says what is wrong with the value instead of the parser reporting it missing.
    static func joiningNegativeValues(_ arguments: [String], spec: Spec) -> [String] {
        var out: [String] = []
        var i = 0
        while i < arguments.count {
            let word = arguments[i]
            if word == "--" {
                out += arguments[i...]
                break
            }
            let takesValue = word.hasPrefix("--") ? spec.long[String(word.dropFirst(2))] == true
                : word.count == 2 && word.hasPrefix("-") && spec.short[word.last!]?.value == true
            if takesValue, i + 1 < arguments.count, Double(arguments[i + 1]) != nil, arguments[i + 1].hasPrefix("-") {
                out.append(word + "=" + arguments[i + 1])
                i += 2
                continue
            }
            out.append(word)
            i += 1
        }
        return out
    }

    /// "unknown option '--frq' (did you mean '--freq'?) …", perf's message with the closest name.
    private func unknown(_ option: String, spec: Spec, whole: String? = nil) -> String {
        let candidates = spec.long.keys.map { "--" + $0 } + spec.short.keys.map { "-" + String($0) }
        let typed = whole ?? option
        let best = candidates
            .map { (name: $0, distance: Self.editDistance(typed, $0)) }
            .min { $0.distance != $1.distance ? $0.distance < $1.distance : $0.name < $1.name }
        var message = "unknown option '\(typed)'"
        // A single mistyped letter is as close to every short option: no suggestion for those.
        if typed.hasPrefix("--"), let best, best.distance <= Swift.max(2, typed.count / 3) {
            message += " (did you mean '\(best.name)'?)"
        }
        return message + "; options go before the command (see sprof \(spec.name) --help)"
    }

    /// Levenshtein distance.
    static func editDistance(_ a: String, _ b: String) -> Int {
        let a = Array(a), b = Array(b)
        if a.isEmpty { return b.count }
        var previous = Array(0 ... b.count)
        for i in 1 ... a.count {
            var current = [i] + Array(repeating: 0, count: b.count)
            for j in 1 ... Swift.max(1, b.count) where j <= b.count {
                current[j] = Swift.min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1))
            }
            previous = current
        }
        return previous[b.count]
    }
}

/// Makes sprof independent of what its parent left behind, before anything else runs.
enum ProcessSetup {
    static func prepare() {
        // A closed 0, 1 or 2 would be reused by the first file sprof opens, and notices written
        // to "stderr" would land in a profile. /dev/null read-only keeps the slot: writing to it
        // still fails (EBADF) as writing to the closed descriptor would, so `sprof report >&-`
        // says it cannot write instead of succeeding with the output gone.
        for fd: Int32 in 0 ... 2 where fcntl(fd, F_GETFD) < 0 {
            let null = open("/dev/null", O_RDONLY)
            if null >= 0 && null != fd { dup2(null, fd); close(null) }
        }
        // An inherited SIG_IGN for SIGCHLD makes the kernel reap the command at once, so waitpid
        // fails with ECHILD and its exit status is lost; a blocked signal mask would keep Ctrl-C
        // from reaching sprof's forwarding handler.
        signal(SIGCHLD, SIG_DFL)
        var none = sigset_t()
        sigemptyset(&none)
        sigprocmask(SIG_SETMASK, &none, nil)
        // Writing a notice to a closed pipe must fail with EPIPE, not kill sprof before the
        // profile is written. The command gets SIGPIPE's default back (csprof_spawn_waiting).
        signal(SIGPIPE, SIG_IGN)
    }

    /// argv as Strings without losing bytes that are not UTF-8 (see `ArgumentBytes`).
    static func arguments() -> [String] {
        (0 ..< Int(CommandLine.argc)).map { i in
            guard let p = CommandLine.unsafeArgv[i] else { return "" }
            return ArgumentBytes.string(UnsafeBufferPointer(start: UnsafeRawPointer(p).assumingMemoryBound(to: UInt8.self), count: strlen(p)))
        }
    }
}

extension SprofCLI {
    /// Parses and runs with sprof's conventions: one line and status 2 for any usage error
    /// (the parser's own would print usage and exit 64), help and the command's status as usual.
    static func runMain() -> Never {
        ProcessSetup.prepare()
        let rewriter = ArgumentRewriter(dump: SprofCLI._dumpHelp())
        let arguments: [String]
        do {
            arguments = try rewriter.rewrite(Array(ProcessSetup.arguments().dropFirst()))
        } catch {
            printError(error.message)
            Glibc.exit(ExitStatusCode.usage)
        }
        var command: ParsableCommand
        do {
            command = try parseAsRoot(arguments)
        } catch {
            let code = exitCode(for: error)
            if code == .success || error is CleanExit { exit(withError: error) }  // --help and friends
            let first = message(for: error).split(separator: "\n").first.map(String.init) ?? "invalid arguments"
            // Point at the subcommand's help only when the first word is one (not `sprof -V`).
            let subcommands = SprofCLI.configuration.subcommands.flatMap { [$0.configuration.commandName ?? ""] + $0.configuration.aliases }
            let sub = arguments.first.flatMap { subcommands.contains($0) ? " " + $0 : nil } ?? ""
            var line = first.replacingOccurrences(of: "Error: ", with: "")
            if let c = line.first, c.isUppercase { line = c.lowercased() + line.dropFirst() }  // as the rewriter's: "unknown option …"
            printError(line + " (see sprof\(sub) --help)")
            Glibc.exit(ExitStatusCode.usage)
        }
        currentSubcommand = type(of: command).configuration.commandName ?? ""
        do {
            try command.run()
            Glibc.exit(0)
        } catch let code as ExitCode {
            Glibc.exit(code.rawValue)
        } catch {
            exit(withError: error)
        }
    }
}
