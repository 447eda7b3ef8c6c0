import SprofProfile

/// The HTML shells of the pages. They carry no data: the script fills them from the JSON API,
/// setting names with `textContent` only, so no profiled name is ever parsed as HTML.
enum Pages {
    /// `& < > " '` escaped, for the few values the shells contain.
    static func escape(_ s: String) -> String {
        var out = ""
        out.reserveCapacity(s.utf8.count)
        for ch in s {
            switch ch {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\"": out += "&quot;"
            case "'": out += "&#39;"
            default: out.append(ch)
            }
        }
        return out
    }

    static func shell(title: String, page: String, id: String = "", body: String) -> String {
        """
        <!doctype html>
        <html lang="en"><head><meta charset="utf-8">
        <meta name="viewport" content="width=device-width, initial-scale=1">
        <title>\(escape(title))</title>
        <link rel="stylesheet" href="/assets/app.css">
        <link rel="icon" href="data:,">
        </head>
        <body data-page="\(escape(page))" data-job="\(escape(id))">
        <header><a href="/" class="brand">sprof</a> <span class="sub">serve</span><span id="token-warning" class="warn" hidden></span></header>
        <main>
        \(body)
        </main>
        <script src="/assets/flame.js"></script>
        <script src="/assets/transforms.js"></script>
        <script src="/assets/timeline.js"></script>
        <script src="/assets/source.js"></script>
        <script src="/assets/memory.js"></script>
        <script src="/assets/app.js"></script>
        </body></html>
        """
    }

    static func listPage() -> String {
        shell(title: "sprof serve: jobs", page: "list", body: """
        <section class="card">
          <h2>New job</h2>
          <form id="new-job" autocomplete="off">
            <label class="wide">Command <input id="f-command" name="command" placeholder="/path/to/program --arg value" required></label>
            <label>Event <input id="f-event" name="event" placeholder="cpu-clock" list="events"></label>
            <datalist id="events"><option value="cpu-clock"><option value="task-clock"><option value="page-faults"><option value="context-switches"><option value="cycles"><option value="instructions"></datalist>
            <label>Frequency (Hz) <input id="f-frequency" name="frequency" type="number" min="1" placeholder="999"></label>
            <label>or period <input id="f-period" name="period" type="number" min="1" placeholder="events"></label>
            <label>Call graph <select id="f-callgraph" name="call_graph"><option value="">dwarf (default)</option><option value="fp">fp</option><option value="none">none</option></select></label>
            <label class="check"><input id="f-offcpu" name="off_cpu" type="checkbox"> off-CPU and wall time</label>
            <label class="check" title="sprof run --heap: allocations sampled by bytes, in use and leaked at exit (needs a server running as root)"><input id="f-heap" name="heap" type="checkbox"> Heap</label>
            <label>Repeat <input id="f-repeat" name="repeat" type="number" min="1" max="20" value="1"></label>
            <button id="f-submit" type="submit">Run</button>
          </form>
          <p id="form-error" class="error" role="alert" hidden></p>
        </section>
        <section class="card">
          <h2>Jobs</h2>
          <table id="jobs" class="grid"><thead><tr><th></th><th>State</th><th>Command</th><th>Options</th><th>Started</th><th>Duration</th><th>Samples</th></tr></thead><tbody></tbody></table>
          <p id="no-jobs" class="muted" hidden>No jobs yet: run one with the form above.</p>
          <p class="actions"><button id="delete-selected" class="danger" disabled>Delete selected</button></p>
          <p id="list-error" class="error" role="alert" hidden></p>
        </section>
        """)
    }

    static func jobPage(id: String) -> String {
        shell(title: "sprof serve: job \(id)", page: "job", id: id, body: """
        <section class="card">
          <h2 id="job-command"></h2>
          <p><span id="job-state" class="state"></span> <span id="job-progress" class="muted"></span></p>
          <p id="job-options" class="muted"></p>
          <p id="job-error" class="error" hidden></p>
          <ul id="job-notices" class="muted"></ul>
          <p class="actions">Run <select id="run-select"></select>
            <button id="stop" hidden title="End the recording like Ctrl-C (SIGINT): the profile so far is kept">Stop</button>
            <button id="rerun">Re-run</button> <button id="delete" class="danger">Delete</button></p>
          <p id="action-error" class="error" role="alert" hidden></p>
        </section>
        <nav id="tabs" class="tabs">
          <button data-tab="cpu" class="active">CPU</button><button data-tab="inverted">Inverted</button><button data-tab="callers">Callers/callees</button><button data-tab="source">Source</button><button data-tab="timeline">Timeline</button>\(sampleTypeTabs)<button data-tab="memory">Memory</button><button data-tab="top">Top functions</button><button data-tab="threads">Threads</button><button data-tab="system">System info</button><button data-tab="compare">Compare</button><button data-tab="files">Downloads</button>
        </nav>
        <p id="range-bar" class="range-bar" hidden><span id="range-text"></span> <button id="range-clear">Show all</button></p>
        <section id="panel" class="card panel"></section>
        """)
    }

    /// A tab per ``SampleTypeView`` (`Wall`, `Off-CPU`), marked so the script draws its flame
    /// graph from `view/NAME`.
    static var sampleTypeTabs: String {
        SampleTypeView.table.map { "<button data-tab=\"\(escape($0.name))\" data-sample-type=\"\(escape($0.sampleType))\">\(escape($0.tab))</button>" }.joined()
    }

    static func errorPage(_ message: String) -> String {
        shell(title: "sprof serve: error", page: "error", body: """
        <section class="card"><h2>Error</h2><p class="error" id="page-error">\(escape(message))</p><p><a href="/">All jobs</a></p></section>
        """)
    }
}
