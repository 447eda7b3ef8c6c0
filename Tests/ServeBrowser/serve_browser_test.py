#!/usr/bin/python3
"""End-to-end test of `sprof serve` in headless Chromium, driven by Selenium (Debian's chromium,
chromium-driver and python3-selenium).

  serve_browser_test.py BIN_DIR                  the test (scripts/test.sh runs it)
  serve_browser_test.py BIN_DIR --screenshot F   also save a screenshot of the job page to F
  serve_browser_test.py BIN_DIR --bench          time the flame graph on 100k distinct stacks
  serve_browser_test.py BIN_DIR --bench30k [--reps N] [--think MS]
                                                 time first view, transforms, range and Compare on 30,000
                                                 stacks (pprof + timeline), medians of N (5) repetitions
  serve_browser_test.py BIN_DIR --heap-only      only the heap job (the Memory tab of a --heap job)
  serve_browser_test.py BIN_DIR --ux-only [--keep-going]
                                                 only the page's behaviour on synthetic jobs (empty results under
                                                 transforms, the job list kept in place, permalinks of fn/run/base,
                                                 history, a restarted server; about a minute); --keep-going runs
                                                 every part and lists the failed ones

It creates a job from the form and watches it finish through live updates (the page is never
reloaded), opens every tab, hovers a frame and reads the tooltip, clicks to zoom, searches,
compares two jobs and two runs of one job, stops a job, restarts the server and finds the job
again, picks up the profile of a recording that outlived a killed server, keeps seven tabs open,
checks the Memory tab of a job run with Heap checked (skipped, saying why, without CAP_SYS_ADMIN),
checks the security rules (Host names, the token for reads), and what a new user ran into (ux_checks:
empty results of transforms and ranges, the job list's polls, permalinks of fn/run/base, Back, a
restarted server). It skips (exit 0, with the
reason) only when Chromium cannot start.
"""
import http.client
import json
import re
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

try:
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.actions.action_builder import ActionBuilder
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait
except ImportError as e:  # a missing tool: skip, saying why
    print(f"SKIP serve browser test: python3-selenium is not installed ({e})")
    sys.exit(0)

ROW = 18  # flame.js row height


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Server:
    def __init__(self, bin_dir, data, port):
        # SPROF_SERVE: a sprof-serve to run directly (e.g. a release build for --bench).
        direct = os.environ.get("SPROF_SERVE")
        cmd = [direct, "--sprof", os.path.join(bin_dir, "sprof")] if direct else [os.path.join(bin_dir, "sprof"), "serve"]
        self.proc = subprocess.Popen(cmd + ["--data", data, "--port", str(port)],
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        line = self.proc.stdout.readline()
        if "token=" not in line:
            rest = self.proc.stdout.read() if self.proc.poll() is not None else ""
            raise AssertionError(f"sprof serve did not print its URL: {line!r} {rest!r}")
        self.url = line.split("sprof serve: ", 1)[1].strip()
        self.base = self.url.split("/?", 1)[0]
        self.token = self.url.split("token=", 1)[1]

    def kill(self):
        """A crash: SIGKILL, nothing cleaned up."""
        self.proc.kill()
        self.proc.wait()

    def stop(self):
        if self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            raise AssertionError("sprof serve did not stop within 30 s of Ctrl-C")
        assert self.proc.returncode == 0, f"sprof serve exited with {self.proc.returncode}"

    def api(self, path, method="GET", body=None):
        req = urllib.request.Request(self.base + path, method=method,
                                     data=None if body is None else json.dumps(body).encode(),
                                     headers={"Authorization": "Bearer " + self.token, "Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=30) as r:
            return json.loads(r.read())


def raw_get(server, path, host=None, token=True):
    """A GET with a chosen Host header (urllib always sends the URL's); returns (status, body)."""
    port = int(server.base.rsplit(":", 1)[1])
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    headers = {"Host": host or f"127.0.0.1:{port}"}
    if token:
        headers["Authorization"] = "Bearer " + server.token
    conn.request("GET", path, headers=headers)
    r = conn.getresponse()
    body = r.read().decode("utf-8", "replace")
    conn.close()
    return r.status, body


def security_checks(server, job_id):
    """DNS rebinding: only loopback addresses and localhost are answered; reads need the token."""
    port = int(server.base.rsplit(":", 1)[1])
    for name in ["127.evil.example", "127.0.0.1.nip.io", "evil.example"]:
        for path in ["/api/jobs", f"/api/jobs/{job_id}/runs/1/files/output.log"]:
            status, body = raw_get(server, path, host=f"{name}:{port}")
            assert status == 403, f"Host {name} {path}: {status} {body[:200]}"
    for name in ["127.0.0.1", "[::1]", "localhost"]:
        status, body = raw_get(server, "/api/jobs", host=f"{name}:{port}")
        assert status == 200 and job_id in body, f"Host {name}: {status} {body[:200]}"
    for path in ["/api/jobs", f"/api/jobs/{job_id}", f"/api/jobs/{job_id}/runs/1/files/output.log", f"/api/jobs/{job_id}/runs/1/view/cpu"]:
        status, body = raw_get(server, path, token=False)
        assert status == 401, f"{path} without the token: {status} {body[:200]}"
    print("security: rebinding names refused (403), loopback answered, reads without the token refused (401)")


def write_job(data, job, folded, command, options=None, state="done"):
    """A job as the server leaves it on disk, with a folded profile (synthetic names and shapes)."""
    run = os.path.join(data, "jobs", job, "runs", "1")
    os.makedirs(run)
    if folded is not None:
        with open(os.path.join(run, "profile.folded"), "w") as f:
            f.write(folded)
    samples = sum(int(line.rsplit(" ", 1)[1]) for line in (folded or "").splitlines() if line)
    st = {"id": job, "command": command, "options": options or {"repeat": 1}, "state": state, "created_ms": 1577836800000,
          "started_ms": 1577836800000, "finished_ms": 1577836801000, "runs_done": 1 if state == "done" else 0,
          "samples": samples, "notices": []}
    with open(os.path.join(data, "jobs", job, "state.json"), "w") as f:
        json.dump(st, f)


def tip_in_viewport(driver):
    return driver.execute_script("""
        const t = document.querySelector('#panel .flame-tip'), r = t.getBoundingClientRect();
        return {fixed: getComputedStyle(t).position === 'fixed', left: r.left, top: r.top, right: r.right, bottom: r.bottom,
                vw: document.documentElement.clientWidth, vh: window.innerHeight, text: t.textContent};""")


def assert_tip_inside(driver, what):
    t = tip_in_viewport(driver)
    assert t["fixed"] and t["left"] >= 0 and t["top"] >= 0 and t["right"] <= t["vw"] and t["bottom"] <= t["vh"], f"{what}: tooltip {t}"
    return t


def start_browser():
    options = Options()
    for arg in ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1400,1000"]:
        options.add_argument(arg)
    options.binary_location = shutil.which("chromium") or "/usr/bin/chromium"
    driver_path = shutil.which("chromedriver") or "/usr/bin/chromedriver"
    try:
        return webdriver.Chrome(service=Service(driver_path), options=options)
    except Exception as e:  # Chromium cannot start here: the one reason to skip
        print(f"SKIP serve browser test: Chromium cannot start ({str(e).splitlines()[0]})")
        sys.exit(0)


def wait(driver, what, cond, timeout=120):
    def attempt(d):
        try:
            return cond(d)
        except Exception:  # the page is navigating: elements go stale
            return False
    try:
        return WebDriverWait(driver, timeout, poll_frequency=0.2).until(attempt)
    except Exception:
        raise AssertionError(f"timed out waiting for {what}; page text: {driver.find_element(By.TAG_NAME, 'body').text[:800]!r}")


def open_tab(driver, name):
    driver.find_element(By.CSS_SELECTOR, f'#tabs button[data-tab="{name}"]').click()
    wait(driver, f"tab {name}", lambda d: d.find_element(By.ID, "panel").get_attribute("data-tab") == name
         and "loading" not in d.find_element(By.ID, "panel").text
         # A long table shows its first rows at once and adds the rest when the page is idle.
         and not d.find_elements(By.CSS_SELECTOR, "#panel tbody[data-filling]"))


def flame_ready(driver):
    return driver.execute_script("return !!(window.sprofFlame && window.sprofFlame.drawn > 0)")


def hover_frame(driver, depth, frac=0.5):
    """Moves the mouse over the flame graph at row `depth`, `frac` of the way across; returns the tooltip."""
    for attempt in range(6):
        canvas = driver.find_element(By.CSS_SELECTOR, "#panel canvas.flame-canvas")
        # Viewport coordinates from the canvas's own rectangle, scrolling only when the row is out
        # of view. An element-relative move is measured from the centre of the element's *visible*
        # part, which is not the canvas's centre when a deep stack makes it taller than the window.
        left, top, width = driver.execute_script("""
            const c = arguments[0], y = arguments[1];
            let r = c.getBoundingClientRect();
            if (r.top + y < 0 || r.top + y >= window.innerHeight - 2) {
              window.scrollBy(0, r.top + y - window.innerHeight / 2);
              r = c.getBoundingClientRect();
            }
            return [r.left, r.top, r.width];""", canvas, depth * ROW + ROW / 2)
        # Each attempt moves a little, so a mousemove fires even when a redraw came between.
        x = int(left + width * frac) + [0, 3, -3, 6, -6, 9][attempt]
        y = int(top + depth * ROW + ROW / 2)
        actions = ActionBuilder(driver)
        actions.pointer_action.move_to_location(x, y)
        actions.perform()
        tip = driver.find_element(By.CSS_SELECTOR, "#panel .flame-tip")
        try:
            wait(driver, "the tooltip", lambda d: tip.is_displayed() and tip.text.strip() != "", timeout=5)
            return tip.text
        except AssertionError:
            if attempt == 5:
                raise


def run_job_from_form(driver, server, command, off_cpu, heap=False):
    driver.get(server.url)
    wait(driver, "the form", lambda d: d.find_element(By.ID, "f-command"))
    driver.find_element(By.ID, "f-command").send_keys(command)
    driver.find_element(By.ID, "f-frequency").send_keys("1999")
    if off_cpu:
        driver.find_element(By.ID, "f-offcpu").click()
    if heap:
        driver.find_element(By.ID, "f-heap").click()
    driver.find_element(By.ID, "f-submit").click()
    wait(driver, "the job page", lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-page") == "job")
    # A marker that a reload would erase: the page must finish through the event stream alone.
    driver.execute_script("window.__notReloaded = true;")
    seen = set()

    def finished(d):
        state = d.find_element(By.ID, "job-state").get_attribute("data-state")
        seen.add(state)
        return state in ("done", "failed", "interrupted")
    wait(driver, "the job to finish", finished, timeout=300)
    state = driver.find_element(By.ID, "job-state").get_attribute("data-state")
    assert state == "done", f"job ended {state}: {driver.find_element(By.ID, 'job-error').text}"
    assert driver.execute_script("return window.__notReloaded === true"), "the page was reloaded instead of updated live"
    return driver.current_url.split("/jobs/", 1)[1].split("#", 1)[0], seen


def e2e(bin_dir, screenshot):
    data = tempfile.mkdtemp(prefix="sprof-serve-e2e-")
    driver = start_browser()
    server = Server(bin_dir, data, free_port())
    try:
        bench = os.path.join(bin_dir, "qsl-bench")
        # Off-CPU stacks need root or perf_event_paranoid <= 1 (switch-out samples are kernel context).
        paranoid = int(open("/proc/sys/kernel/perf_event_paranoid").read())
        off_cpu = os.geteuid() == 0 or paranoid <= 1
        job_id, seen = run_job_from_form(driver, server, f"{bench} --messages 300000 --repeat 1", off_cpu)
        print(f"job {job_id}: states seen on the page {sorted(seen)}")
        progress = driver.find_element(By.ID, "job-progress").text
        assert "samples" in progress, progress
        options = driver.find_element(By.ID, "job-options").text
        assert "-F 1999" in options, f"the job's options are shown in its header: {options!r}"
        security_checks(server, job_id)

        # CPU: hover, zoom, search.
        wait(driver, "the CPU flame graph", flame_ready)
        tip = hover_frame(driver, 0)
        assert "qsl-bench" in tip and "%" in tip and "samples" in tip, f"tooltip: {tip!r}"
        print(f"tooltip on the root: {tip.splitlines()[0]!r} / {tip.splitlines()[1]!r}")
        tip_main = hover_frame(driver, 3)
        assert driver.execute_script("return window.sprofFlame.focus") == -1
        canvas = driver.find_element(By.CSS_SELECTOR, "#panel canvas.flame-canvas")
        ActionChains(driver).click().perform()
        focus = driver.execute_script("return window.sprofFlame.focus")
        assert focus >= 0, "a click zooms"
        zoomed = driver.execute_script("const f = window.sprofFlame; return f.data.names[f.data.name[f.focus]]")
        assert zoomed and zoomed in tip_main, (zoomed, tip_main)
        assert driver.find_element(By.CSS_SELECTOR, "#panel .flame-reset").is_enabled()
        driver.find_element(By.CSS_SELECTOR, "#panel .flame-reset").click()
        assert driver.execute_script("return window.sprofFlame.focus") == -1, "reset zoom"
        search = driver.find_element(By.CSS_SELECTOR, "#panel .flame-search")
        search.send_keys("OrderBook")
        matched = driver.find_element(By.CSS_SELECTOR, "#panel .flame-matched").text
        pct = float(matched.split(":")[1].strip().rstrip("%"))
        assert 0 < pct <= 100, matched
        print(f"search 'OrderBook': {matched}; zoomed into {zoomed!r}")

        # Every other tab shows data or says why not.
        for name in ["wall", "offcpu"]:
            open_tab(driver, name)
            if off_cpu:
                wait(driver, f"the {name} flame graph", lambda d: d.find_elements(By.CSS_SELECTOR, "#panel canvas") and flame_ready(d))
                info = driver.find_element(By.CSS_SELECTOR, "#panel .flame-info").text
                assert re.match(r"^[0-9.]+ (s|ms|µs|ns) in total in ", info), f"time in human units: {info!r}"
                tip = hover_frame(driver, 0)
                assert re.search(r"\n[0-9.]+ (s|ms|µs|ns) \(", tip), f"time in human units: {tip!r}"
            else:
                assert "not recorded" in driver.find_element(By.ID, "panel").text
        open_tab(driver, "memory")
        text = driver.find_element(By.ID, "panel").text
        charts = driver.find_elements(By.CSS_SELECTOR, "svg.memory-chart polyline")
        assert charts, f"sprof samples RSS while recording: a memory chart is expected; panel: {text!r}"
        assert "peak" in text and "MB" in text, text
        link = driver.find_element(By.ID, "memory-download").get_attribute("href")
        with urllib.request.urlopen(link, timeout=30) as r:
            first = r.read().decode().splitlines()[0]
        assert first.startswith("# sprof memory timeline"), f"the memory timeline downloads: {first!r}"
        print(f"memory: {text.splitlines()[-2] if len(text.splitlines()) > 1 else text!r}")
        # A tab named in the URL is shown, also when only the #fragment changes.
        driver.execute_script("location.hash = '#top'")
        wait(driver, "the tab named in the URL", lambda d: d.find_element(By.ID, "panel").get_attribute("data-tab") == "top"
             and d.find_elements(By.CSS_SELECTOR, "#top-table tbody tr"))
        open_tab(driver, "top")
        rows = driver.find_elements(By.CSS_SELECTOR, "#top-table tbody tr")
        assert len(rows) > 5, len(rows)
        driver.find_element(By.CSS_SELECTOR, '#top-table th[data-key="name"]').click()
        assert driver.find_element(By.CSS_SELECTOR, '#top-table th[data-key="name"]').get_attribute("data-sort") == "asc"
        driver.find_element(By.CSS_SELECTOR, '#top-table th[data-key="total"]').click()
        totals = [int(r.find_elements(By.TAG_NAME, "td")[2].text.replace(",", "")) for r in driver.find_elements(By.CSS_SELECTOR, "#top-table tbody tr")]
        assert totals == sorted(totals, reverse=True), "sorted by total, largest first"
        analyzer_checks(driver, bin_dir, data, job_id)
        transform_checks(driver, bin_dir, data, job_id)
        permalink_checks(driver, bin_dir, data, job_id)
        timeline_checks(driver, server, bin_dir, data, job_id)
        source_checks(driver, bin_dir, data, job_id)
        open_tab(driver, "threads")
        trs = driver.find_elements(By.CSS_SELECTOR, "#threads-table tbody tr")
        assert trs, "one thread at least"
        trs[0].click()
        wait(driver, "the thread's flame graph", lambda d: d.find_elements(By.CSS_SELECTOR, "#thread-flame canvas"))
        open_tab(driver, "system")
        text = driver.find_element(By.ID, "system-table").text
        assert "Kernel" in text and "perf_event_paranoid" in text and "Hardware PMU" in text, text
        open_tab(driver, "files")
        links = [a.text for a in driver.find_elements(By.CSS_SELECTOR, "#downloads a")]
        assert "profile.folded" in links and "profile.svg" in links and "profile.memory.tsv" in links, links

        # Compare: a second job (the Re-run button), then the first as its base.
        open_tab(driver, "compare")
        assert "nothing to compare with" in driver.find_element(By.ID, "panel").text
        driver.find_element(By.ID, "rerun").click()
        wait(driver, "the re-run's page", lambda d: job_id not in d.current_url)
        wait(driver, "the re-run to finish", lambda d: d.find_element(By.ID, "job-state").get_attribute("data-state") == "done", timeout=300)
        open_tab(driver, "compare")
        driver.find_element(By.CSS_SELECTOR, f'#compare-base option[value="{job_id}:1"]').click()
        wait(driver, "the diff table", lambda d: d.find_elements(By.CSS_SELECTOR, "#diff-table tbody tr"))
        wait(driver, "the differential flame graph", flame_ready)
        heads = [th.text for th in driver.find_elements(By.CSS_SELECTOR, "#diff-table th")]
        assert "Δ self" in heads and "Δ total" in heads, heads
        base_text = driver.find_element(By.CSS_SELECTOR, f'#compare-base option[value="{job_id}:1"]').text
        assert "-F 1999" in base_text, f"the base list shows the options: {base_text!r}"
        print(f"compare: {len(driver.find_elements(By.CSS_SELECTOR, '#diff-table tbody tr'))} rows in the delta table")

        repeat_job = repeat_job_checks(driver, server)
        compare_anything_checks(driver, server, bin_dir, data, job_id, repeat_job)
        stop_and_delete_checks(driver, server)
        seven_tabs_check(driver, server)
        form_refuses_a_directory(driver, server)
        heap_job_checks(driver, server, bin_dir, data)

        # Restart the server: the job is still there, done, with its views.
        server.stop()
        write_synthetic_jobs(data)
        write_ux_jobs(data)
        wide = make_bench_pprof(data, WIDE_JOB, stacks=8000)
        server = Server(bin_dir, data, free_port())
        driver.get(server.url)
        wait(driver, "the job list after restart", lambda d: d.find_elements(By.CSS_SELECTOR, f'#jobs tr[data-id="{job_id}"]'))
        row = driver.find_element(By.CSS_SELECTOR, f'#jobs tr[data-id="{job_id}"]')
        assert row.get_attribute("data-state") == "done", row.text
        assert "-F 1999" in row.text, f"the list shows the options: {row.text!r}"
        row.find_element(By.TAG_NAME, "a").click()
        wait(driver, "the job's flame graph after restart", flame_ready)
        if screenshot:
            driver.set_window_size(1400, 900)
            open_tab(driver, "cpu")
            wait(driver, "the flame graph", flame_ready)
            for depth, frac in [(9, 0.62), (8, 0.6), (7, 0.55), (5, 0.5)]:
                try:
                    hover_frame(driver, depth, frac)
                    break
                except AssertionError:
                    continue
            driver.save_screenshot(screenshot)
            print(f"screenshot: {screenshot}")
            # The transform bar and a frame's menu: focus on the hottest function below main.
            shot2 = screenshot[:-4] + "-transforms.png" if screenshot.endswith(".png") else screenshot + "-transforms.png"
            mark_flame(driver)
            driver.execute_script("window.sprofTransforms.add('focus:replayDay(_:)')")
            new_flame(driver, "the focused flame graph")
            canvas = driver.find_element(By.CSS_SELECTOR, "#panel canvas.flame-canvas")
            r = driver.execute_script("const r = arguments[0].getBoundingClientRect(); return [r.left, r.top, r.width];", canvas)
            actions = ActionBuilder(driver)
            actions.pointer_action.move_to_location(int(r[0] + r[2] * 0.3), int(r[1] + 2 * ROW + ROW / 2))
            actions.pointer_action.context_click()
            actions.perform()
            wait(driver, "the frame's menu", lambda d: d.find_elements(By.CSS_SELECTOR, ".flame-menu"))
            driver.save_screenshot(shot2)
            driver.find_element(By.TAG_NAME, "h2").click()
            clear_transforms(driver)
            print(f"screenshot: {shot2}")
        synthetic_checks(driver, server)
        server = ux_checks(driver, server, bin_dir, data)
        driver.get(server.url)
        drawn_tree_checks(driver, server, wide)
        recursion_check(driver, server, bin_dir, data)
        bulk_delete_check(driver, server)
        server = orphan_check(driver, server, bin_dir, data)
        print("serve browser test: OK")
    finally:
        driver.quit()
        try:
            server.stop()
        except Exception as e:
            print(f"stopping the server: {e}")
        shutil.rmtree(data, ignore_errors=True)


def cap_sys_admin():
    for line in open("/proc/self/status"):
        if line.startswith("CapEff:"):
            return int(line.split()[1], 16) & (1 << 21) != 0
    return False


def heap_job_checks(driver, server, bin_dir, data):
    """A job created with Heap checked: its Memory tab draws the allocation and in-use flame
    graphs in bytes, whose totals are what `sprof report --sample-type alloc_space/inuse_space`
    gives on the run's profile.heap.pb.gz; the in-use timeline beside RSS; and the leaks table,
    whose rows are heap_split.c's three leak sites. Skipped, saying why, without CAP_SYS_ADMIN."""
    if not cap_sys_admin():
        print("SKIP heap job: heap profiles put uprobes on the allocator, which needs CAP_SYS_ADMIN (run the test as root)")
        return
    # The PlainCLibrary plugin builds the preload library into sprof's resource bundle (sprof looks
    # there first, then beside itself).
    library = os.path.join(bin_dir, "sprof_Sprof.resources", "libsprof-heap.so")
    assert os.path.exists(library), f"{library} is not built (swift build builds it with sprof)"
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    binary = os.path.join(data, "heap_split")
    subprocess.run(["gcc", "-O1", "-g", "-fno-omit-frame-pointer", "-fno-inline", "-o", binary,
                    os.path.join(root, "Tests", "Fixtures", "c", "heap_split.c")], check=True)
    job, _ = run_job_from_form(driver, server, f"{binary} 5", False, heap=True)
    assert "--heap" in driver.find_element(By.ID, "job-options").text, driver.find_element(By.ID, "job-options").text
    open_tab(driver, "memory")
    wait(driver, "the heap flame graphs and the leaks", lambda d: d.find_elements(By.CSS_SELECTOR, "#leaks-table tbody tr")
         and d.execute_script("const f = window.sprofHeapFlames; return !!(f['heap-alloc'] && f['heap-inuse'] && f['heap-alloc'].drawn > 0)"))
    heap_file = os.path.join(data, "jobs", job, "runs", "1", "profile.heap.pb.gz")
    drawn = {}
    for view, sample_type in [("heap-alloc", "alloc_space"), ("heap-inuse", "inuse_space")]:
        report = json.loads(subprocess.run([os.path.join(bin_dir, "sprof"), "report", "--sample-type", sample_type, "--format", "json", heap_file],
                                           check=True, capture_output=True, text=True).stdout)
        assert report["unit"] == "bytes", report["unit"]
        drawn[view] = driver.execute_script(f"return window.sprofHeapFlames['{view}'].total")
        assert drawn[view] == report["total"] and drawn[view] > 0, f"{view}: drawn {drawn[view]} bytes, report --sample-type {sample_type} says {report['total']}"
        info = driver.find_element(By.CSS_SELECTOR, f"#flame-{view} .flame-info").text
        # In binary units (15.0 MiB), not as a raw count (15,765,056 bytes).
        assert re.match(r"^\d+(\.\d)? (bytes|KiB|MiB|GiB) in total", info), f"the {view} flame graph counts bytes in KiB/MiB: {info!r}"
    leaks = [r.find_elements(By.TAG_NAME, "td")[0].text for r in driver.find_elements(By.CSS_SELECTOR, "#leaks-table tbody tr")]
    # At the default rate (one sample per 512 KiB on average) a 1 MiB leak site goes unsampled in
    # about one run in seven, so the sites the table must show are the ones the profile holds.
    inuse = json.loads(subprocess.run([os.path.join(bin_dir, "sprof"), "report", "--sample-type", "inuse_space", "--format", "json", heap_file],
                                      check=True, capture_output=True, text=True).stdout)
    sampled = {f["key"][0] for f in inuse["functions"] if f["key"][0] in {"leak_three", "leak_two", "leak_one"} and f["totalValue"] > 0}
    assert sampled, f"no leak site of heap_split.c was sampled: {inuse['functions'][:5]}"
    assert sampled <= set(leaks), f"the sampled leak sites {sorted(sampled)} lead the leaks table: {leaks}"
    legend = driver.find_element(By.CSS_SELECTOR, "#heap-chart .legend").text
    lines = driver.find_elements(By.CSS_SELECTOR, "#heap-chart polyline")
    assert "heap in use" in legend and len(lines) >= 2, f"in-use bytes beside RSS: {len(lines)} lines, legend {legend!r}"
    summary = driver.find_element(By.ID, "heap-summary").text
    print(f"heap job: drawn alloc {drawn['heap-alloc']:,} / in use {drawn['heap-inuse']:,} bytes = sprof report; leaks {leaks[:3]}; {summary}")


def analyzer_checks(driver, bin_dir, data, job_id):
    """The inverted tree and callers/callees, against `sprof report` on the same profile."""
    prof = os.path.join(data, "jobs", job_id, "runs", "1", "profile.pb.gz")
    report = json.loads(subprocess.check_output([os.path.join(bin_dir, "sprof"), "report", "--format", "json", "--limit", "0", prof]))
    rows = {r["key"][0]: r for r in report["functions"]}
    open_tab(driver, "inverted")
    wait(driver, "the inverted tree", flame_ready)
    roots = driver.execute_script("""const d = window.sprofFlame.data, o = {};
        d.parent.forEach((p, i) => { if (p < 0) o[d.names[d.name[i]]] = d.value[i]; }); return o;""")
    same = [n for n in roots if n in rows]
    assert len(same) >= 3, (list(roots)[:10], list(rows)[:10])
    for n in same:
        assert roots[n] == rows[n]["selfValue"], f"inverted root {n}: {roots[n]} vs report self {rows[n]['selfValue']}"
    names = set(driver.execute_script("return window.sprofFlame.data.names"))
    # The largest by total below the entry chain (_start, main…), so both lists have rows.
    picks = [r["key"][0] for r in sorted(report["functions"], key=lambda r: -r["totalValue"])
             if r["key"][0] in names and r["totalValue"] < 0.9 * report["total"]][:3]
    assert picks, "functions of the report are in the tree"
    open_tab(driver, "callers")
    for n in picks:
        # The old summary is marked; the tab renders a new one for the new function.
        driver.execute_script("""document.getElementById('callers-summary').dataset.stale = '1';
            const i = document.getElementById('callers-fn'); i.value = arguments[0]; i.dispatchEvent(new Event('change'));""", n)
        wait(driver, f"callers of {n}", lambda d: d.find_elements(By.CSS_SELECTOR, "#callers-summary:not([data-stale])")
             and d.find_element(By.ID, "callers-fn").get_attribute("value") == n)
        summary = driver.find_element(By.ID, "callers-summary")
        got = (int(summary.get_attribute("data-self")), int(summary.get_attribute("data-total")))
        want = (rows[n]["selfValue"], rows[n]["totalValue"])
        assert got == want, f"callers/callees of {n}: self/total {got}, sprof report {want}"
        callers = driver.find_elements(By.CSS_SELECTOR, "#callers-table tbody tr")
        callees = driver.find_elements(By.CSS_SELECTOR, "#callees-table tbody tr")
        assert callers or callees, n
    # A row of the Top table opens its function.
    open_tab(driver, "top")
    first = driver.find_element(By.CSS_SELECTOR, "#top-table tbody tr")
    fn = first.find_elements(By.TAG_NAME, "td")[-1].text
    first.click()
    wait(driver, "the callers tab from Top", lambda d: d.find_element(By.ID, "panel").get_attribute("data-tab") == "callers"
         and d.find_element(By.ID, "callers-fn").get_attribute("value") == fn)
    print(f"analyzer: inverted roots = report self for {len(same)} functions; callers/callees self/total = report for {picks}")


def report_json(bin_dir, prof, *args):
    return json.loads(subprocess.check_output([os.path.join(bin_dir, "sprof"), "report", "--format", "json", "--limit", "0", prof, *args]))


def mark_flame(driver):
    driver.execute_script("if (window.sprofFlame) window.sprofFlame.__old = true;")


def new_flame(driver, what):
    wait(driver, what, lambda d: d.execute_script("const f = window.sprofFlame; return !!(f && !f.__old && f.drawn > 0)")
         and "loading" not in d.find_element(By.ID, "panel").text)
    return driver.execute_script("return window.sprofFlame.total")


def chips(driver):
    return [c.get_attribute("data-transform") for c in driver.find_elements(By.CSS_SELECTOR, "#transform-bar .transform")]


def clear_transforms(driver):
    if chips(driver):
        driver.find_element(By.ID, "transform-clear").click()
        wait(driver, "no transforms", lambda d: not chips(d))


def callers_button(driver, fn, kind):
    """Opens the Callers/callees tab on `fn` and clicks its transform button `kind`."""
    open_tab(driver, "callers")
    driver.execute_script("""document.getElementById('callers-summary').dataset.stale = '1';
        const i = document.getElementById('callers-fn'); i.value = arguments[0]; i.dispatchEvent(new Event('change'));""", fn)
    wait(driver, f"callers of {fn}", lambda d: d.find_elements(By.CSS_SELECTOR, "#callers-summary:not([data-stale])")
         and d.find_element(By.ID, "callers-fn").get_attribute("value") == fn)
    driver.find_element(By.CSS_SELECTOR, f'#panel .transform-buttons button[data-kind="{kind}"]').click()
    wait(driver, f"the {kind} transform", lambda d: f"{kind}:{fn}" in chips(d))


def transform_checks(driver, bin_dir, data, job_id):
    """Focus, merge, ignore, subtree and thread transforms, each checked against `sprof report`
    on the same profile; every view applies them."""
    prof = os.path.join(data, "jobs", job_id, "runs", "1", "profile.pb.gz")
    report = report_json(bin_dir, prof)
    rows = {r["key"][0]: r for r in report["functions"]}
    open_tab(driver, "cpu")
    wait(driver, "the CPU flame graph", flame_ready)
    names = set(driver.execute_script("return window.sprofFlame.data.names"))
    fn = [r["key"][0] for r in sorted(report["functions"], key=lambda r: -r["totalValue"])
          if r["key"][0] in names and 0 < r["totalValue"] < 0.9 * report["total"]][0]
    want = rows[fn]["totalValue"]
    # Focus on a function: every view shows only its samples, with it as the root.
    callers_button(driver, fn, "focus")
    assert f"#callers&tf=focus%3A" in driver.current_url, driver.current_url
    mark_flame(driver)
    open_tab(driver, "cpu")
    total = new_flame(driver, "the focused flame graph")
    assert total == want, f"focus:{fn}: flame graph total {total}, sprof report total {want}"
    roots = driver.execute_script("const f = window.sprofFlame; return [...f.kids.subarray(0, f.roots)].map((i) => [...f.kids.subarray(f.start[i], f.start[i + 1])].map((k) => f.data.names[f.data.name[k]]))")
    assert all(r == [fn] for r in roots), f"{fn} is the root below each process: {roots}"
    mark_flame(driver)
    open_tab(driver, "inverted")
    total = new_flame(driver, "the focused inverted tree")
    assert total == want, f"focus:{fn}: inverted total {total}, report {want}"
    open_tab(driver, "top")
    top = {r.find_elements(By.TAG_NAME, "td")[-1].text: int(r.find_elements(By.TAG_NAME, "td")[2].text.replace(",", ""))
           for r in driver.find_elements(By.CSS_SELECTOR, "#top-table tbody tr")}
    assert top.get(fn) == want, f"focus:{fn}: Top's total {top.get(fn)}, report {want}"
    focused = report_json(bin_dir, prof, "--transform", f"focus:{fn}")
    assert focused["total"] == want, (focused["total"], want)
    clear_transforms(driver)

    # Drop the samples with it: every total drops by its total.
    callers_button(driver, fn, "ignore")
    mark_flame(driver)
    open_tab(driver, "cpu")
    total = new_flame(driver, "the flame graph without the function")
    assert total == report["total"] - want, f"ignore:{fn}: {total}, report {report['total']} - {want}"
    assert fn not in driver.execute_script("return window.sprofFlame.data.names"), fn
    clear_transforms(driver)

    # Merge a function with self time into its callers, from the flame graph's context menu:
    # the total stays, the function is gone, the self values move to the callers.
    leafy = [r["key"][0] for r in report["functions"] if r["key"][0] in names and r["selfValue"] > 0 and not r["key"][0].startswith("[")]
    victim = leafy[0]
    mark_flame(driver)
    open_tab(driver, "cpu")
    new_flame(driver, "the flame graph")
    node = driver.execute_script("""const f = window.sprofFlame, want = arguments[0];
        let best = -1; for (let i = 0; i < f.n; i++) if (f.data.names[f.data.name[i]].replace(/_\\[[kij]\\]$/, '') === want && (best < 0 || f.value[i] > f.value[best])) best = i;
        return [best, f.depth[best], (f.x[best] + f.value[best] / 2) / f.total];""", victim)
    canvas = driver.find_element(By.CSS_SELECTOR, "#panel canvas.flame-canvas")
    left, top_px, width = driver.execute_script("""const c = arguments[0], y = arguments[1];
        let r = c.getBoundingClientRect(); if (r.top + y < 0 || r.top + y >= window.innerHeight - 2) { window.scrollBy(0, r.top + y - window.innerHeight / 2); r = c.getBoundingClientRect(); }
        return [r.left, r.top, r.width];""", canvas, node[1] * ROW + ROW / 2)
    actions = ActionBuilder(driver)
    actions.pointer_action.move_to_location(int(left + width * node[2]), int(top_px + node[1] * ROW + ROW / 2))
    actions.pointer_action.context_click()
    actions.perform()
    wait(driver, "the frame's menu", lambda d: d.find_elements(By.CSS_SELECTOR, ".flame-menu button[data-kind=merge]"))
    mark_flame(driver)
    driver.find_element(By.CSS_SELECTOR, ".flame-menu button[data-kind=merge]").click()
    total = new_flame(driver, "the merged flame graph")
    assert chips(driver) == [f"merge:{victim}"], chips(driver)
    assert total == report["total"], f"merge:{victim}: total {total}, report {report['total']}"
    merged_names = driver.execute_script("return window.sprofFlame.data.names")
    assert not [n for n in merged_names if re.sub(r"_\[[kij]\]$", "", n) == victim], f"merge:{victim}: still in the flame graph"
    merged = report_json(bin_dir, prof, "--transform", f"merge:{victim}")
    assert victim not in {r["key"][0] for r in merged["functions"]} and merged["total"] == report["total"]
    clear_transforms(driver)

    # Focus on one thread: the total is the thread's, as `sprof report --threads` counts it.
    threads = report_json(bin_dir, prof, "--threads")["threads"]
    open_tab(driver, "threads")
    driver.find_elements(By.CSS_SELECTOR, "#threads-table tbody tr")[0].click()
    wait(driver, "the thread's buttons", lambda d: d.find_elements(By.CSS_SELECTOR, '#thread-flame button[data-kind="tid"]'))
    driver.find_element(By.CSS_SELECTOR, '#thread-flame button[data-kind="tid"]').click()
    wait(driver, "the thread transform", lambda d: any(c.startswith("tid:") for c in chips(d)))
    tid = int(chips(driver)[0].split(":")[1])
    mark_flame(driver)
    open_tab(driver, "cpu")
    total = new_flame(driver, "the thread's flame graph")
    want_t = sum(t["value"] for t in threads if t["tid"] == tid)
    assert total == want_t, f"tid:{tid}: total {total}, report --threads {want_t}"
    clear_transforms(driver)
    print(f"transforms: focus/ignore {fn!r} (total {want}), merge {victim!r}, tid {tid} ({want_t}) agree with sprof report")


def permalink_checks(driver, bin_dir, data, job_id):
    """Tab, transforms, zoom and search in the URL: a reload restores the same view."""
    mark_flame(driver)
    open_tab(driver, "cpu")
    new_flame(driver, "the flame graph")
    path = driver.execute_script("""const f = window.sprofFlame; let i = f.kids[0];
        while (f.start[i + 1] > f.start[i] && f.depth[i] < 3) i = f.kids[f.start[i]];
        const p = []; for (let n = i; n >= 0; n = f.parent[n]) p.push(f.data.names[f.data.name[n]]); return p.reverse();""")
    # Focus on the subtree of the zoomed frame's parent (the context menu's subtree item), then zoom and search.
    sub = [n for n in path[1:-1]]
    mark_flame(driver)
    driver.execute_script("window.sprofTransforms.add('subtree:' + arguments[0].map((n) => n.replace(/_\\[[kij]\\]$/, '')).join(';'))", sub)
    total = new_flame(driver, "the subtree's flame graph")
    prof = os.path.join(data, "jobs", job_id, "runs", "1", "profile.pb.gz")
    want = report_json(bin_dir, prof, "--transform", chips(driver)[0])["total"]
    assert total == want, f"{chips(driver)[0]}: flame graph total {total}, sprof report --transform {want}"
    driver.execute_script("""const f = window.sprofFlame, want = arguments[0];
        for (let i = 0; i < f.n; i++) if (f.data.names[f.data.name[i]] === want && f.depth[i] === 2) { f.zoom(i); break; }""", path[-1])
    # The search box keeps the earlier search (it is in the URL too): replace it.
    driver.execute_script("const f = window.sprofFlame; f.searchEl.value = 'main'; f.search('main');")
    before = driver.execute_script("""const f = window.sprofFlame; return {total: f.total, focus: f.focus < 0 ? null : f.data.names[f.data.name[f.focus]],
        q: f.searchEl.value, matched: f.matchedEl.textContent};""")
    url = driver.current_url
    assert before["focus"] and "zoom=" in url and "q=main" in url and "tf=subtree" in url, (before, url)
    driver.get("about:blank")
    driver.get(url)
    wait(driver, "the restored view", lambda d: flame_ready(d) and d.find_element(By.ID, "panel").get_attribute("data-tab") == "cpu")
    after = driver.execute_script("""const f = window.sprofFlame; return {total: f.total, focus: f.focus < 0 ? null : f.data.names[f.data.name[f.focus]],
        q: f.searchEl.value, matched: f.matchedEl.textContent};""")
    assert after == before, f"permalink: {before} before, {after} after a reload of {url}"
    assert chips(driver) == ["subtree:" + ";".join(re.sub(r"_\[[kij]\]$", "", n) for n in sub)], chips(driver)
    clear_transforms(driver)
    print(f"permalink: tab, subtree transform, zoom into {before['focus']!r} and search restored from {url.split('#', 1)[1][:80]!r}…")


def compare_anything_checks(driver, server, bin_dir, data, job_id, repeat_job):
    """A job against an uploaded folded file (its own profile: every change 0), a bad upload, and
    two repeat jobs' runs with the significance of `sprof diff`; the merged profile downloads."""
    sprof = os.path.join(bin_dir, "sprof")
    prof = os.path.join(data, "jobs", job_id, "runs", "1", "profile.pb.gz")
    tmp = tempfile.mkdtemp(prefix="sprof-serve-upload-")
    folded = os.path.join(tmp, "same.folded")
    subprocess.check_call([sprof, "convert", prof, "--to", "folded", "-o", folded])
    bad = os.path.join(tmp, "notes.txt")
    with open(bad, "w") as f:
        f.write("this is not a profile\n")
    job_page(driver, server, job_id)
    open_tab(driver, "compare")
    driver.find_element(By.ID, "compare-upload").send_keys(bad)
    wait(driver, "the upload's error", lambda d: d.find_element(By.ID, "compare-upload-error").is_displayed())
    msg = driver.find_element(By.ID, "compare-upload-error").text
    # The CLI's one line for the same file (`sprof report notes.txt`): where and what is wrong.
    assert msg.startswith("notes.txt:1:") and "expected" in msg and "\n" not in msg, msg
    driver.find_element(By.ID, "compare-upload").send_keys(folded)
    wait(driver, "the comparison with the upload", lambda d: d.find_elements(By.CSS_SELECTOR, "#diff-table tbody tr") and flame_ready(d))
    assert "same.folded" in driver.find_element(By.CSS_SELECTOR, "#compare-base option:checked").text
    report = report_json(bin_dir, prof)
    rows = driver.find_elements(By.CSS_SELECTOR, "#diff-table tbody tr")
    deltas = [float(r.find_elements(By.TAG_NAME, "td")[3].text) for r in rows]
    assert all(abs(d) < 0.005 for d in deltas), f"the job against its own profile: {deltas[:10]}"
    cells = {r.find_elements(By.TAG_NAME, "td")[0].text: float(r.find_elements(By.TAG_NAME, "td")[1].text.rstrip("%")) for r in rows}
    checked = [r for r in report["functions"] if r["key"][0] in cells][:5]
    for r in checked:
        assert abs(cells[r["key"][0]] - r["selfPercent"]) < 0.01, (r["key"][0], cells[r["key"][0]], r["selfPercent"])
    # The upload can be deleted from the tab: gone from the choices and from the server's list.
    uploaded = driver.find_element(By.CSS_SELECTOR, "#compare-base option:checked").get_attribute("value")
    driver.find_element(By.ID, "compare-delete-upload").click()
    wait(driver, "the deleted upload gone from the bases", lambda d: d.find_elements(By.ID, "compare-base")
         and not d.find_elements(By.CSS_SELECTOR, f'#compare-base option[value="{uploaded}"]'))
    assert uploaded.split(":", 1)[1] not in [u["id"] for u in server.api("/api/uploads")], uploaded
    # Repeat jobs: a second one, then all runs against all runs, tested as sprof diff tests.
    work = "i=0; while [ $i -lt 200000 ]; do i=$((i+1)); done"
    second = create(server, ["/bin/sh", "-c", work], {"repeat": 3, "call_graph": "fp"})
    job_page(driver, server, second)
    wait(driver, "the second repeat job", lambda d: d.find_element(By.ID, "job-state").get_attribute("data-state") == "done", timeout=300)
    open_tab(driver, "files")
    links = [a.text for a in driver.find_elements(By.CSS_SELECTOR, "#downloads a")]
    assert "profile.runs.pb.gz" in links, links
    open_tab(driver, "compare")
    driver.find_element(By.ID, "compare-all").click()
    driver.find_element(By.CSS_SELECTOR, f'#compare-base option[value="{repeat_job}:all"]').click()
    wait(driver, "the tested comparison", lambda d: d.find_elements(By.ID, "compare-tested") and d.find_elements(By.CSS_SELECTOR, "#diff-table tbody tr"))
    heads = [th.text for th in driver.find_elements(By.CSS_SELECTOR, "#diff-table th")]
    assert "q self" in heads and "q total" in heads, heads
    api = server.api(f"/api/jobs/{second}/runs/1/compare?base={repeat_job}&base_run=all&all=1")
    assert api["tested"] and api["base_runs"] == 2 and api["new_runs"] == 3, {k: api[k] for k in ("tested", "base_runs", "new_runs")}
    out = subprocess.run([sprof, "diff", os.path.join(data, "jobs", repeat_job, "profile.pb.gz"), os.path.join(data, "jobs", second, "profile.pb.gz"),
                          "-o", os.path.join(tmp, "d.svg"), "--limit", "0"], capture_output=True, text=True, check=True).stdout
    diff_q = {}
    for line in out.splitlines()[1:]:
        f = line.split(None, 8)
        if len(f) == 9:
            diff_q[f[8]] = (float(f[3]), float(f[7]))
    for row in api["table"][:10]:
        q = diff_q.get(row["name"])
        assert q and abs(q[0] - row["q_self"]) <= 0.01 * max(q[0], 1e-9) + 1e-3 and abs(q[1] - row["q_total"]) <= 0.01 * max(q[1], 1e-9) + 1e-3, (row, q)
    shutil.rmtree(tmp, ignore_errors=True)
    print(f"compare anything: upload of the job's own folded profile gives 0 changes over {len(deltas)} rows, then deleted; a bad file is one line; "
          f"{api['base_runs']} against {api['new_runs']} runs tested, q-values = sprof diff's for {min(10, len(api['table']))} rows; merged profile offered")


def flame_total(driver):
    return driver.execute_script("return window.sprofFlame.data.total")


def timeline_checks(driver, server, bin_dir, data, job_id):
    """The timeline's samples are the profile's; a dragged time range cuts every CPU view to the
    samples of profile.timeline.tsv in that range; the range lives in the URL."""
    run = os.path.join(data, "jobs", job_id, "runs", "1")
    report = report_json(bin_dir, os.path.join(run, "profile.pb.gz"))
    with open(os.path.join(run, "profile.timeline.tsv")) as f:
        times = [int(line.split("\t", 1)[0]) for line in f if line.strip() and not line.startswith("#")]
    assert len(times) == report["total"], f"the timeline holds every sample: {len(times)} vs sprof report {report['total']}"
    open_tab(driver, "timeline")
    wait(driver, "the timeline", lambda d: d.find_elements(By.CSS_SELECTOR, "#timeline-svg g.track"))
    summary = driver.find_element(By.ID, "timeline-summary")
    assert int(summary.get_attribute("data-samples")) == len(times), summary.text
    tracks = driver.find_elements(By.CSS_SELECTOR, "#timeline-svg g.track")
    assert sum(int(t.get_attribute("data-total")) for t in tracks) == len(times), "each thread's track, summed, is every sample"
    assert driver.find_elements(By.CSS_SELECTOR, "#timeline-svg polygon.cpu-use"), "a CPU-use graph"
    assert driver.find_elements(By.CSS_SELECTOR, "#timeline-svg polyline.series"), "memory on the same axis"
    # Drag from 30% to 65% of the plot.
    left, top, width, height = driver.execute_script(
        "const r = document.getElementById('timeline-svg').getBoundingClientRect(); arguments[0].scrollIntoView(); "
        "const q = document.getElementById('timeline-svg').getBoundingClientRect(); return [q.left, q.top, q.width, q.height];", summary)
    px = lambda f: int(left + width * (190 + (1000 - 190 - 10) * f) / 1000)
    y = int(top + height / 2)
    actions = ActionBuilder(driver)
    actions.pointer_action.move_to_location(px(0.30), y).pointer_down().move_to_location(px(0.45), y).move_to_location(px(0.65), y).pointer_up()
    actions.perform()
    wait(driver, "the range in the URL", lambda d: "range=" in d.current_url)
    lo, hi = map(int, re.search(r"range=(\d+)-(\d+)", driver.current_url).groups())
    want = sum(1 for t in times if lo <= t < hi)
    assert 0 < want < len(times), (lo, hi, want, len(times))
    assert driver.find_element(By.ID, "range-bar").is_displayed()
    t0 = time.time()
    open_tab(driver, "cpu")
    wait(driver, "the cut flame graph", flame_ready)
    cut_ms = (time.time() - t0) * 1000
    assert flame_total(driver) == want, f"the CPU view of range {lo}-{hi}: {flame_total(driver)} samples, the timeline file has {want}"
    open_tab(driver, "threads")
    cells = [int(r.find_elements(By.TAG_NAME, "td")[3].text.replace(",", "")) for r in driver.find_elements(By.CSS_SELECTOR, "#threads-table tbody tr")]
    assert sum(cells) == want, f"threads in the range: {cells} vs {want}"
    # A permalink: the same URL, loaded afresh, shows the same range.
    link = driver.current_url.replace("#threads", "#inverted")
    driver.get("about:blank")
    driver.get(link)
    wait(driver, "the inverted tree of the range", flame_ready)
    assert flame_total(driver) == want, f"permalink {link}: {flame_total(driver)} vs {want}"
    driver.find_element(By.ID, "range-clear").click()
    wait(driver, "the whole profile again", lambda d: "range=" not in d.current_url and flame_ready(d) and flame_total(d) == report["total"])
    print(f"timeline: {len(times)} samples in {len(tracks)} thread tracks = sprof report; range {lo}-{hi} ns: "
          f"{want} samples in the CPU, threads and inverted views = the timeline file's count; tab to cut flame graph {cut_ms:.0f} ms")


def annotate_rows(bin_dir, prof, name):
    """(line, self, total) rows of `sprof annotate` for the function named exactly `name`."""
    out = subprocess.run([os.path.join(bin_dir, "sprof"), "annotate", "^" + re.escape(name) + "$", prof],
                         capture_output=True, text=True).stdout
    rows, inside = [], False
    for line in out.splitlines():
        if line.startswith("ROUTINE "):
            inside = line.startswith(f"ROUTINE ======================== {name} in ")
            header = True
            continue
        if not inside:
            continue
        if header:  # the function's own self and total
            header = False
            continue
        num = lambda t: 0 if t.strip() in (".", "") else int(t)
        n = line[38:44].strip()
        rows.append((0 if n == "?" else int(n), num(line[0:10]), num(line[19:29]), line[46:] if n != "?" else None))
    return rows


def source_checks(driver, bin_dir, data, job_id):
    """The Source tab's per-line self and total equal `sprof annotate`'s for the same function."""
    prof = os.path.join(data, "jobs", job_id, "runs", "1", "profile.pb.gz")
    report = report_json(bin_dir, prof)
    checked = None
    for r in sorted(report["functions"], key=lambda r: -r["selfValue"])[:12]:
        name = r["key"][0]
        want = annotate_rows(bin_dir, prof, name)
        # One whose source file is read (qsl-bench's own code, not libc's without sources here).
        if not any(line > 0 and text and text.strip() for line, _, _, text in want):
            continue
        open_tab(driver, "callers")
        driver.execute_script("""document.getElementById('callers-summary').dataset.stale = '1';
            const i = document.getElementById('callers-fn'); i.value = arguments[0]; i.dispatchEvent(new Event('change'));""", name)
        wait(driver, f"callers of {name}", lambda d: d.find_elements(By.CSS_SELECTOR, "#callers-summary:not([data-stale])")
             and d.find_element(By.ID, "callers-fn").get_attribute("value") == name and d.find_elements(By.ID, "callers-source"))
        driver.find_element(By.ID, "callers-source").click()
        wait(driver, f"the source of {name}", lambda d: d.find_element(By.ID, "panel").get_attribute("data-tab") == "source"
             and d.find_elements(By.ID, "source-summary") and d.find_element(By.ID, "source-fn").get_attribute("value") == name)
        summary = driver.find_element(By.ID, "source-summary")
        assert (int(summary.get_attribute("data-self")), int(summary.get_attribute("data-total"))) == (r["selfValue"], r["totalValue"]), \
            f"source of {name}: {summary.text} vs sprof report {r['selfValue']}/{r['totalValue']}"
        got = driver.execute_script("""return [...document.querySelectorAll('#panel tr[data-line]')].map((tr) =>
            [Number(tr.dataset.line), Number(tr.dataset.self), Number(tr.dataset.total), tr.lastChild.textContent]);""")
        assert sorted((a, b, c) for a, b, c, _ in got) == sorted((a, b, c) for a, b, c, _ in want), \
            f"source of {name}: page {got[:20]} vs sprof annotate {want[:20]}"
        texts = [(a, t) for a, b, c, t in want if a > 0 and t and t.strip()]
        page_text = {a: t for a, _, _, t in got}
        assert all(page_text.get(a) == t for a, t in texts), f"source lines as annotate prints them: {texts[:3]} vs {list(page_text.items())[:3]}"
        checked = (name, len(got), sum(1 for _, s, _, _ in got if s))
        break
    assert checked, "one of the hottest functions has its source read (qsl-bench is built with debug info, its sources are here)"
    print(f"source: {checked[0]!r}: {checked[1]} lines ({checked[2]} with self samples) = sprof annotate, self/total = sprof report")


def job_page(driver, server, job):
    driver.get(f"{server.base}/jobs/{job}#cpu")
    wait(driver, f"the page of {job}", lambda d: d.find_element(By.ID, "job-state").get_attribute("data-state"))


def create(server, command, options):
    return server.api("/api/jobs", "POST", {"command": command, "options": options})["id"]


def repeat_job_checks(driver, server):
    """A repeat job: its views appear when run 1 ends (run 2 still recording); its runs compare."""
    work = "i=0; while [ $i -lt 300000 ]; do i=$((i+1)); done; sleep 3"
    job = create(server, ["/bin/sh", "-c", work], {"repeat": 2, "call_graph": "fp"})
    job_page(driver, server, job)
    wait(driver, "run 1 to end", lambda d: server.api(f"/api/jobs/{job}")["runs_done"] >= 1, timeout=300)
    if server.api(f"/api/jobs/{job}")["state"] == "running":
        wait(driver, "run 1's flame graph while run 2 records", lambda d: flame_ready(d) and "first run ends" not in d.find_element(By.ID, "panel").text)
        print("repeat job: run 1's views shown while run 2 records")
    wait(driver, "the repeat job to finish", lambda d: d.find_element(By.ID, "job-state").get_attribute("data-state") == "done", timeout=300)
    open_tab(driver, "compare")
    option = driver.find_element(By.CSS_SELECTOR, f'#compare-base option[value="{job}:1"]')
    assert "this job, run 1 of 2" in option.text and "repeat 2" in option.text, option.text
    option.click()
    wait(driver, "run 2 against run 1", lambda d: d.find_elements(By.CSS_SELECTOR, "#diff-table tbody tr") and flame_ready(d))
    return job


def stop_and_delete_checks(driver, server):
    """Stop ends a never-ending job with SIGINT and keeps its profile; a fallback of the event and
    the job's deletion elsewhere show on the page."""
    no_pmu = not os.path.exists("/sys/bus/event_source/devices/cpu")
    job = create(server, ["/bin/sh", "-c", "while :; do :; done"], {"event": "cycles", "call_graph": "fp"})
    job_page(driver, server, job)
    wait(driver, "the endless job to record", lambda d: d.find_element(By.ID, "stop").is_displayed()
         and (server.api(f"/api/jobs/{job}").get("progress") or {}).get("samples", 0) > 0, timeout=300)
    driver.find_element(By.ID, "stop").click()
    wait(driver, "the stopped job", lambda d: d.find_element(By.ID, "job-state").get_attribute("data-state") == "done", timeout=60)
    wait(driver, "the stopped job's flame graph", flame_ready)
    notices = driver.find_element(By.ID, "job-notices").text
    assert "stopped with Stop (SIGINT)" in notices, notices
    assert not driver.find_element(By.ID, "stop").is_displayed()
    if no_pmu:
        assert "falling back to cpu-clock" in notices, f"the fallback is shown: {notices!r}"
        driver.get(server.base + "/")
        wait(driver, "the list", lambda d: "falling back to cpu-clock" in d.find_element(By.CSS_SELECTOR, f'#jobs tr[data-id="{job}"]').text)
    print("stop: the endless job ended done with its profile" + ("; cycles → cpu-clock shown" if no_pmu else ""))
    # Deleted elsewhere: the open page says so.
    job_page(driver, server, job)
    server.api(f"/api/jobs/{job}", "DELETE")
    wait(driver, "the page to see the deletion", lambda d: d.find_element(By.ID, "job-state").get_attribute("data-state") == "deleted", timeout=30)


def seven_tabs_check(driver, server):
    """Seven open pages of one server (the browser allows six connections per host)."""
    first = driver.current_window_handle
    job = create(server, ["/bin/sleep", "30"], {"call_graph": "fp"})
    for k in range(6):
        driver.switch_to.new_window("tab")
        driver.get(f"{server.base}/jobs/{job}" if k % 2 else server.base + "/")
        wait(driver, f"tab {k + 2}", lambda d: d.find_elements(By.CSS_SELECTOR, "#jobs tbody tr") or
             d.find_element(By.ID, "job-state").get_attribute("data-state"), timeout=30)
    driver.switch_to.new_window("tab")
    driver.get(server.base + "/")
    wait(driver, "the 8th tab's job list", lambda d: d.find_elements(By.CSS_SELECTOR, f'#jobs tr[data-id="{job}"]'), timeout=30)
    for h in driver.window_handles:
        if h != first:
            driver.switch_to.window(h)
            driver.close()
    driver.switch_to.window(first)
    server.api(f"/api/jobs/{job}", "DELETE")
    print("eight tabs open at once: all load")


def form_refuses_a_directory(driver, server):
    driver.get(server.base + "/")
    wait(driver, "the form", lambda d: d.find_element(By.ID, "f-command"))
    driver.find_element(By.ID, "f-command").send_keys("/tmp")
    driver.find_element(By.ID, "f-submit").click()
    wait(driver, "the form's error", lambda d: "is a directory" in d.find_element(By.ID, "form-error").text)


LONG = "ns::" + "VeryLongTemplateArgument<" * 60 + "int" + ">" * 60 + "::run()"
RTL = "invoice\u202Efdp.exe"


def write_synthetic_jobs(data):
    # Shallow, with a long name and a right-to-left override in names.
    write_job(data, "20200101-000000-00000a", f"app;main;{LONG} 50\napp;main;{RTL} 30\napp;main;short 20\n", ["app"])
    # One 129-frame stack of 1 sample beside 10,000 samples two frames deep.
    deep = ";".join(["app"] + [f"f{k}" for k in range(128)])
    write_job(data, "20200101-000000-00000b", f"app;main 10000\n{deep} 1\n", ["deep"])
    # One 500-frame recursion of 1 sample beside 1,000: ~1.3 px wide, drawn, yet narrower than 2 px.
    deeper = ";".join(["app"] + ["rec"] * 500)
    write_job(data, "20200101-000000-0000e9", f"app;main 1000\n{deeper} 1\n", ["deeper"])
    write_job(data, "20200101-000000-00000c", "app;main 1\n", ["bulk1"])
    # Recursion, direct and through another function.
    write_job(data, "20200101-000000-00000e", "app;main;f;g;f;h 4\napp;main;f;f;f 3\napp;main;f 2\napp;main;k 1\n", ["recursive"])
    write_job(data, "20200101-000000-00000d", "app;main 1\n", ["bulk2"])


WIDE_JOB = "20200101-000000-00000f"


def drawn_tree_checks(driver, server, wide):
    """A profile of 8,000 distinct stacks (~84,000 samples): the server sends only frames of at
    least 1/20,000 of the total, the rest in their parents' self; every sent total is exact, a
    zoom fetches the zoomed frame's whole subtree, and the search's matched share is exact."""
    total, rows = wide
    job_page(driver, server, WIDE_JOB)
    open_tab(driver, "cpu")
    wait(driver, "the wide job's flame graph", flame_ready)
    f = driver.execute_script("const f = window.sprofFlame; return {pruned: f.data.pruned, total: f.total, n: f.n};")
    assert f["pruned"] and f["pruned"] > 0 and f["total"] == total, f
    full_paths = """const f = window.sprofFlame, out = [];
        for (let i = 0; i < f.n; i++) { const p = []; for (let q = i; q >= 0; q = f.parent[q]) p.push(f.data.names[f.data.name[q]]); out.push(p.reverse().join(";")); }
        return out;"""
    first_tree = set(driver.execute_script(full_paths))
    # Exact totals: every sent frame against the generated stacks.
    by_path = {}
    for frames, _, n in rows:
        for k in range(1, len(frames) + 1):
            by_path[frames[:k]] = by_path.get(frames[:k], 0) + n
    sent = driver.execute_script("""const f = window.sprofFlame, out = [];
        for (let i = 0; i < f.n; i += 97) { const p = []; for (let q = i; q >= 0; q = f.parent[q]) p.push(f.data.names[f.data.name[q]]);
          out.push([p.reverse().slice(1), f.value[i]]); }
        return out;""")
    for path, value in sent:
        if path:
            assert by_path[tuple(path)] == value, (path, value)
    # Search: the matched share over every stack, narrow ones included.
    pattern = r"fn_1[0-9]{2}\("
    want = 100 * sum(n for frames, _, n in rows if any(re.search(pattern, fr) for fr in frames)) / total
    driver.execute_script("window.sprofFlame.searchEl.value = arguments[0]; window.sprofFlame.search(arguments[0]);", pattern)
    wait(driver, "the server's matched share", lambda d: d.execute_script("return window.sprofFlame.matchedPercent") is not None)
    got = driver.execute_script("return window.sprofFlame.matchedPercent")
    assert abs(got - want) < 1e-9, (got, want)
    driver.execute_script("window.sprofFlame.searchEl.value = ''; window.sprofFlame.search('');")
    # Zoom into a frame with children left out: its subtree arrives whole (its cut is 1/20,000 of it).
    node = driver.execute_script("""const f = window.sprofFlame;
        let best = -1;
        for (let i = 0; i < f.n; i++) if (f.depth[i] === 4 && f.selfv[i] > 0 && (best < 0 || f.value[i] > f.value[best])) best = i;
        const p = []; for (let q = best; q >= 0; q = f.parent[q]) p.push(f.data.names[f.data.name[q]]);
        f.zoom(best);
        return p.reverse().slice(1);""")
    prefix = tuple(node)
    kids = {frames[len(prefix)] for frames, _, _ in rows if frames[:len(prefix)] == prefix and len(frames) > len(prefix)}
    self_value = sum(n for frames, _, n in rows if frames == prefix)
    def expanded(d):
        return d.execute_script("""const f = window.sprofFlame; if (f.pending || f.focus < 0) return null;
            return [f.start[f.focus + 1] - f.start[f.focus], f.selfv[f.focus]];""")
    wait(driver, "the zoomed frame's subtree", lambda d: (expanded(d) or [0])[0] == len(kids))
    assert expanded(driver) == [len(kids), self_value], (expanded(driver), len(kids), self_value)
    # A permalink zoomed into a frame the first tree left out: after a reload the page fetches
    # the subtrees on its path and zooms into it.
    now_paths = driver.execute_script(full_paths)
    target = max((p for p in now_paths if p not in first_tree), key=lambda p: p.count(";"))
    driver.execute_script("""const f = window.sprofFlame, want = arguments[0];
        for (let i = 0; i < f.n; i++) { const p = []; for (let q = i; q >= 0; q = f.parent[q]) p.push(f.data.names[f.data.name[q]]);
          if (p.reverse().join(";") === want) { f.zoom(i); break; } }""", target)
    link = driver.current_url
    assert "zoom=" in link, link
    driver.get("about:blank")
    driver.get(link)
    wait(driver, "the wide job's flame graph after a reload", flame_ready)
    focused = """const f = window.sprofFlame; if (!f || f.pending || f.focus < 0) return null;
        const p = []; for (let q = f.focus; q >= 0; q = f.parent[q]) p.push(f.data.names[f.data.name[q]]); return p.reverse().join(";");"""
    wait(driver, "the permalink's zoom into a frame fetched on the way", lambda d: d.execute_script(focused) == target)
    print(f"drawn tree: {f['n']} of {f['n'] + f['pruned']} frames sent; matched {got:.2f}% exact; "
          f"zoom into {node[-1]!r} fetched its {len(kids)} children; a permalink into the left-out "
          f"{target.split(';')[-1]!r} ({target.count(';')} deep) restored")


def synthetic_checks(driver, server):
    job_page(driver, server, "20200101-000000-00000a")
    wait(driver, "the shallow flame graph", flame_ready)
    # The bottom row (the leaves) of a shallow graph, at the right edge: the tooltip stays inside.
    depth = driver.execute_script("return window.sprofFlame.maxDepth")
    hover_frame(driver, depth, 0.55)
    t = assert_tip_inside(driver, "the bottom row")
    assert "…" in t["text"] and "samples (" in t["text"], f"a long name is cut, the numbers stay: {t['text'][:300]!r}"
    assert t["right"] - t["left"] <= 440, t
    hover_frame(driver, depth, 0.98)
    assert_tip_inside(driver, "the bottom-right corner")
    # Right-to-left override: shown escaped, in the tooltip and the tables.
    hover_frame(driver, depth, 0.15)
    t = tip_in_viewport(driver)
    assert "\\u{202E}" in t["text"] and "\u202e" not in t["text"], t["text"]
    open_tab(driver, "top")
    top = driver.find_element(By.ID, "top-table").text
    assert "invoice\\u{202E}fdp.exe" in top and "\u202e" not in top, top
    # The 129-frame stack is too narrow to draw: the canvas is as tall as what is drawn.
    job_page(driver, server, "20200101-000000-00000b")
    wait(driver, "the deep job's flame graph", flame_ready)
    height = driver.execute_script("return document.querySelector('#panel canvas.flame-canvas').getBoundingClientRect().height")
    assert height <= 3 * ROW, f"canvas {height} px tall for two drawn rows"
    job_page(driver, server, "20200101-000000-0000e9")
    wait(driver, "the deeper job's flame graph", flame_ready)
    height = driver.execute_script("return document.querySelector('#panel canvas.flame-canvas').getBoundingClientRect().height")
    assert height <= 3 * ROW, f"canvas {height} px tall for a 500-frame column under 2 px wide"
    print(f"synthetic: tooltip kept inside the viewport, long names cut, RTL escaped, canvas {height:.0f} px for a 129-frame stack")


def recursion_check(driver, server, bin_dir, data):
    """Collapse recursion, on a synthetic profile: f's total (as sprof report counts it, once per
    sample) and the grand total stay, and no f is left below another f."""
    job = "20200101-000000-00000e"
    report = report_json(bin_dir, os.path.join(data, "jobs", job, "runs", "1", "profile.folded"))
    f_total = next(r["totalValue"] for r in report["functions"] if r["key"][0] == "f")
    job_page(driver, server, job)
    wait(driver, "the recursive job's flame graph", flame_ready)
    nested = "const f = window.sprofFlame, n = (i) => f.data.names[f.data.name[i]]; let c = 0; for (let i = 0; i < f.n; i++) if (n(i) === 'f') for (let p = f.parent[i]; p >= 0; p = f.parent[p]) if (n(p) === 'f') { c++; break; } return c;"
    assert driver.execute_script(nested) > 0
    callers_button(driver, "f", "rec")
    mark_flame(driver)
    open_tab(driver, "cpu")
    total = new_flame(driver, "the collapsed flame graph")
    assert total == report["total"], (total, report["total"])
    assert driver.execute_script(nested) == 0, "an f below another f after collapsing recursion"
    tops = driver.execute_script("const f = window.sprofFlame; let s = 0; for (let i = 0; i < f.n; i++) if (f.data.names[f.data.name[i]] === 'f' && f.depth[i] === 2) s += f.value[i]; return s;")
    assert tops == f_total, f"rec:f: f's frames {tops}, sprof report's total of f {f_total}"
    assert "#cpu&tf=rec%3Af" in driver.current_url, driver.current_url
    clear_transforms(driver)
    print(f"collapse recursion: f's total {f_total} and the grand total {total} kept, no f below an f")


REPEAT_JOB = "20200101-000000-000010"
LONG_COMMAND_JOB = "20200101-000000-000011"


def write_ux_jobs(data):
    """The jobs of ux_checks: a repeat job of three runs (run k: 10·k samples) and a job whose
    command has a 4,000-character argument."""
    for k in range(1, 4):
        run = os.path.join(data, "jobs", REPEAT_JOB, "runs", str(k))
        os.makedirs(run)
        with open(os.path.join(run, "profile.folded"), "w") as f:
            f.write(f"app;main;work 5\napp;main;run{k} {10 * k - 5}\n")
    st = {"id": REPEAT_JOB, "command": ["repeated"], "options": {"repeat": 3}, "state": "done", "created_ms": 1577836800000,
          "started_ms": 1577836800000, "finished_ms": 1577836803000, "runs_done": 3, "samples": 60, "notices": []}
    with open(os.path.join(data, "jobs", REPEAT_JOB, "state.json"), "w") as f:
        json.dump(st, f)
    write_job(data, LONG_COMMAND_JOB, "app;main 1\n", ["long-command", "x" * 4000])
    a, b, c, other = SEMICOLON_NAMES
    write_pprof_job(data, SEMICOLON_JOB, [(["main", a, b, c], 30), (["main", other], 10)], ["names"])
    # A repeat job of 3 runs stopped after 2 by a server that did not merge stopped jobs.
    for k in (1, 2):
        write_pprof_job(data, STOPPED_REPEAT_JOB, [(["main", f"run{k}"], 10 * k)], ["stopped-repeat"], run=k)
    with open(os.path.join(data, "jobs", STOPPED_REPEAT_JOB, "state.json")) as f:
        st = json.load(f)
    st.update(options={"repeat": 3}, runs_done=2, samples=20)
    with open(os.path.join(data, "jobs", STOPPED_REPEAT_JOB, "state.json"), "w") as f:
        json.dump(st, f)


SEMICOLON_JOB = "20200101-000000-000012"
STOPPED_REPEAT_JOB = "20200101-000000-000013"
# Names holding the path's separator and its escape: Rust's `[u8; 32]`, a `\` and a `\;`.
SEMICOLON_NAMES = ["process<[u8; 32]>", "C:\\dir;x::run", "leaf\\;tail", "other"]


def write_pprof_job(data, job, stacks, command, run=1):
    """A finished job whose profile.pb.gz (pprof written by hand) holds `stacks`: (function
    names root first, samples), one process and thread. Names may hold anything, `;` included,
    which a folded file cannot. `run` above 1: another run of the job written before."""
    import gzip
    if run == 1:
        write_job(data, job, None, command)
    else:
        os.makedirs(os.path.join(data, "jobs", job, "runs", str(run)))
    funcs = sorted({f for frames, _ in stacks for f in frames})
    strings = ["", "samples", "count", "pid", "tid", "thread_name", "process_name", "app"] + funcs
    msg = bytearray(_field(1, _field(1, 1) + _field(2, 2)))
    labels = (_field(3, _field(1, 3) + _field(3, 1000)) + _field(3, _field(1, 4) + _field(3, 1000))
              + _field(3, _field(1, 5) + _field(2, 7)) + _field(3, _field(1, 6) + _field(2, 7)))
    for frames, n in stacks:
        msg += _field(2, _packed(1, [funcs.index(f) + 1 for f in reversed(frames)]) + _packed(2, [n]) + labels)
    for i, f in enumerate(funcs):
        msg += _field(4, _field(1, i + 1) + _field(3, 0x1000 + 16 * i) + _field(4, _field(1, i + 1)))
        msg += _field(5, _field(1, i + 1) + _field(2, 8 + i) + _field(3, 8 + i))
    for text in strings:
        msg += _field(6, text.encode())
    with open(os.path.join(data, "jobs", job, "runs", str(run), "profile.pb.gz"), "wb") as f:
        f.write(gzip.compress(bytes(msg), mtime=0))


def ux_semicolon_names(driver, server):
    """Names with `;` and `\\` (the path's separator and escape): a subtree transform made from
    the frame's menu and a zoom into such a frame survive a reload of the permalink."""
    a, b, c, _ = SEMICOLON_NAMES
    load(driver, f"{server.base}/jobs/{SEMICOLON_JOB}#cpu")
    wait(driver, "the flame graph", flame_ready)
    assert flame_total_now(driver) == 40, flame_total_now(driver)
    # The frame menu's "Focus on subtree" on `b` (below main and `a`).
    mark_flame(driver)
    driver.execute_script("""const f = window.sprofFlame, T = window.sprofTransforms;
        let i = 0; while (i < f.n && f.data.names[f.data.name[i]] !== arguments[0]) i++;
        const p = T.path(f, i, 1);
        T.add('subtree:' + T.joinPath(p));""", b)
    total = new_flame(driver, "the subtree's flame graph")
    assert total == 30, f"subtree main → {a} → {b}: total {total}, want 30 (chips {chips(driver)})"
    shown = driver.find_element(By.CSS_SELECTOR, "#transform-bar .transform").text
    assert f"main → {a} → {b}" in shown, shown
    # Zoom into `c`, below `b`, then reload the permalink.
    driver.execute_script("""const f = window.sprofFlame;
        for (let i = 0; i < f.n; i++) if (f.data.names[f.data.name[i]] === arguments[0]) { f.zoom(i); break; }""", c)
    wait(driver, "the zoom in the URL", lambda d: "zoom=" in d.current_url)
    url = driver.current_url
    load(driver, url)
    wait(driver, "the restored view", lambda d: flame_ready(d) and d.execute_script("return window.sprofFlame.focus >= 0"), timeout=30)
    after = driver.execute_script("""const f = window.sprofFlame; const p = [];
        for (let n = f.focus; n >= 0; n = f.parent[n]) p.push(f.data.names[f.data.name[n]]); return {total: f.total, path: p.reverse()};""")
    assert after["total"] == 30 and after["path"][-2:] == [b, c], f"after a reload of {url}: {after}"
    # A permalink of before the escapes (no `\\` in it) still reads as it did.
    load(driver, f"{server.base}/jobs/{SEMICOLON_JOB}#cpu&tf=subtree%3Amain%3Bother")
    wait(driver, "an old subtree link", lambda d: flame_total_now(d) == 10)
    print(f"permalink: a subtree transform and a zoom through {a!r}, {b!r}, {c!r} survive a reload")


def ux_upload_401(driver, server):
    """The Compare upload's own 401 (a stale token) shows the token warning, as every other 401
    does. Only the upload carries the stale token here, so no poll can be what showed it."""
    load(driver, f"{server.base}/jobs/20200101-000000-00000a#compare")
    wait(driver, "the Compare tab", lambda d: d.find_elements(By.ID, "compare-upload"))
    tmp = tempfile.mkdtemp(prefix="sprof-serve-401-")
    path = os.path.join(tmp, "base.folded")
    with open(path, "w") as f:
        f.write("app;main 1\n")
    good = driver.execute_script("""const good = localStorage.getItem("sprof-token"), fetch0 = window.fetch;
        window.fetch = (url, opts) => {
          if (!String(url).startsWith("/api/uploads?")) opts = Object.assign({}, opts, { headers: Object.assign({}, opts && opts.headers, { Authorization: "Bearer " + good }) });
          return fetch0(url, opts);
        };
        localStorage.setItem("sprof-token", "stale-token"); return good;""")
    try:
        assert not driver.find_element(By.ID, "token-warning").is_displayed()
        driver.find_element(By.ID, "compare-upload").send_keys(path)
        wait(driver, "the upload's error", lambda d: d.find_element(By.ID, "compare-upload-error").is_displayed(), timeout=20)
        error = driver.find_element(By.ID, "compare-upload-error").text
        shown = driver.find_element(By.ID, "token-warning").is_displayed()
        assert shown and "token" in error, f"upload refused with {error!r}; token warning shown: {shown}"
    finally:
        driver.execute_script("localStorage.setItem('sprof-token', arguments[0]);", good)
        shutil.rmtree(tmp, ignore_errors=True)
    print("Compare upload: its own 401 shows the token warning")


def flame_total_now(driver):
    return driver.execute_script("return window.sprofFlame && window.sprofFlame.drawn > 0 ? window.sprofFlame.total : null")


def ux_checks(driver, server, bin_dir, data, keep_going=False):
    """What a new user ran into: the empty result of transforms and of a time range says so and
    offers to remove them; the job list keeps its rows (a selection, a held click) and cuts long
    commands; permalinks keep the Source function, the run and the Compare base; a tab click is a
    history entry; the transform bar hides; heap values in KiB/MiB; a restarted server is said.
    Returns the server (restarted). `keep_going`: run every part and report each failure (to see
    each part fail against an older build), then fail."""
    failed = []
    parts = [ux_empty_transform, ux_empty_range, ux_bar, ux_back, ux_bytes, ux_source_fn, ux_run, ux_base,
             ux_long_command, ux_selection, ux_held_click, ux_semicolon_names, ux_upload_401, ux_stopped_repeat]
    for part in parts + [ux_restart]:
        try:
            if part is ux_restart:
                server = ux_restart(driver, server, bin_dir, data)
            else:
                part(driver, server)
        except AssertionError as e:
            if not keep_going:
                raise
            failed.append(part.__name__)
            print(f"FAILED {part.__name__}: {str(e)[:300]}")
    assert not failed, f"failed: {failed}"
    return server


def load(driver, url):
    driver.get("about:blank")  # a load, not a change of the fragment of the page shown
    driver.get(url)


def ux_empty_transform(driver, server):
    """A transform that leaves no sample: every view says so (not "no samples were recorded",
    not "no thread information"), and offers to remove it."""
    for tab in ["cpu", "inverted", "top", "threads", "callers", "source"]:
        load(driver, f"{server.base}/jobs/{WIDE_JOB}#{tab}&tf=tid%3A99999")
        wait(driver, f"{tab} under tid:99999", lambda d: d.find_elements(By.ID, "filtered-empty")
             or "loading" not in d.find_element(By.ID, "panel").text, timeout=60)
        text = driver.find_element(By.ID, "panel").text
        assert "the transform removed every sample" in text and "recorded" not in text and "thread information" not in text, f"{tab}: {text!r}"
    driver.find_element(By.ID, "empty-remove-transforms").click()
    wait(driver, "the views without the transform", lambda d: d.find_elements(By.CSS_SELECTOR, "#source-fn") and "tf=" not in d.current_url)
    print("empty results: a transform that leaves no sample says so in 6 views, and is removed from there")


def ux_empty_range(driver, server):
    load(driver, f"{server.base}/jobs/{WIDE_JOB}#cpu&range=900000000000-990000000000")
    wait(driver, "cpu in a range past the end", lambda d: d.find_elements(By.ID, "filtered-empty")
         or "loading" not in d.find_element(By.ID, "panel").text, timeout=60)
    text = driver.find_element(By.ID, "panel").text
    assert "the time range removed every sample" in text and "recorded" not in text, text
    driver.find_element(By.ID, "empty-clear-range").click()
    wait(driver, "the flame graph of the whole time range", lambda d: flame_ready(d) and "range=" not in d.current_url)
    print("empty results: a time range with no sample says so, and is removed from there")


def ux_bar(driver, server):
    """No transform: no transform bar ("Remove all" showed anyway: .transform-bar's display won over [hidden])."""
    load(driver, f"{server.base}/jobs/20200101-000000-00000a#cpu")
    wait(driver, "the flame graph", flame_ready)
    assert not driver.find_element(By.ID, "transform-bar").is_displayed(), "the transform bar shows without a transform"
    print("transform bar hidden without transforms")


def ux_back(driver, server):
    """A clicked tab is a history entry: Back returns to the tab before."""
    load(driver, f"{server.base}/jobs/20200101-000000-00000a#cpu")
    wait(driver, "the flame graph", flame_ready)
    open_tab(driver, "top")
    open_tab(driver, "threads")
    driver.back()
    wait(driver, "Back to the Top tab", lambda d: d.find_element(By.ID, "panel").get_attribute("data-tab") == "top"
         and d.find_elements(By.ID, "top-table"), timeout=20)
    print("Back returns to the tab before")


def ux_bytes(driver, server):
    """Bytes (heap flame graphs' tooltips and totals) in binary units; heap_job_checks sees them drawn."""
    got = driver.execute_script("return window.sprofFormatValue && [window.sprofFormatValue(15765056, 'bytes'), "
                                "window.sprofFormatValue(512, 'bytes'), window.sprofFormatValue(1234, 'samples')]")
    assert got == ["15.0 MiB", "512 bytes", "1,234 samples"], got
    print("bytes shown as 15.0 MiB")


def ux_source_fn(driver, server):
    """Source: the permalink's function, not the hottest one."""
    load(driver, f"{server.base}/jobs/20200101-000000-00000a#source&fn=short")
    wait(driver, "the Source tab", lambda d: d.find_elements(By.ID, "source-fn"))
    shown = driver.find_element(By.ID, "source-fn").get_attribute("value")
    assert shown == "short", f"#source&fn=short shows {shown[:60]!r}"
    assert "fn=short" in driver.current_url, driver.current_url
    print("permalink: Source's function restored")


def ux_run(driver, server):
    """The run of a repeat job (run k has 10·k samples) is in the URL."""
    load(driver, f"{server.base}/jobs/{REPEAT_JOB}#cpu&run=1")
    wait(driver, "a run's flame graph", flame_ready)
    assert driver.find_element(By.ID, "run-select").get_attribute("value") == "1" and flame_total_now(driver) == 10, \
        f"#cpu&run=1 shows run {driver.find_element(By.ID, 'run-select').get_attribute('value')} ({flame_total_now(driver)} samples)"
    mark_flame(driver)
    driver.execute_script("const s = document.getElementById('run-select'); s.value = '2'; s.dispatchEvent(new Event('change'));")
    assert new_flame(driver, "run 2's flame graph") == 20
    assert "run=2" in driver.current_url, driver.current_url
    load(driver, driver.current_url)
    wait(driver, "run 2 after a reload", lambda d: flame_total_now(d) == 20 and d.find_element(By.ID, "run-select").get_attribute("value") == "2")
    print("permalink: the run of a repeat job restored")


def ux_base(driver, server):
    """The Compare base is in the URL."""
    base = "20200101-000000-00000e:1"
    load(driver, f"{server.base}/jobs/20200101-000000-00000a#compare&base={base}")
    wait(driver, "the comparison with the permalink's base", lambda d: d.find_elements(By.CSS_SELECTOR, "#diff-table tbody tr") and flame_ready(d), timeout=30)
    assert driver.find_element(By.ID, "compare-base").get_attribute("value") == base
    driver.execute_script(f"const s = document.getElementById('compare-base'); s.value = '{REPEAT_JOB}:1'; s.dispatchEvent(new Event('change'));")
    wait(driver, "the new base in the URL", lambda d: f"base={REPEAT_JOB}%3A1" in d.current_url)
    print("permalink: the Compare base restored")


def ux_stopped_repeat(driver, server):
    """A repeat job stopped after 2 of 3 runs offers its runs merged as Compare's base, said to
    be 2 of 3 runs, stopped (it was offered only with all 3 runs done)."""
    load(driver, f"{server.base}/jobs/20200101-000000-00000a#compare")
    option = f'#compare-base option[value="{STOPPED_REPEAT_JOB}:all"]'
    wait(driver, "the base list", lambda d: d.find_elements(By.CSS_SELECTOR, "#compare-base option"))
    found = driver.find_elements(By.CSS_SELECTOR, option)
    assert found and "all runs (2 of 3 runs, stopped)" in found[0].text, [o.text for o in driver.find_elements(By.CSS_SELECTOR, "#compare-base option")]
    driver.execute_script(f"const s = document.getElementById('compare-base'); s.value = '{STOPPED_REPEAT_JOB}:all'; s.dispatchEvent(new Event('change'));")
    wait(driver, "the comparison with the stopped job's runs", lambda d: d.find_elements(By.CSS_SELECTOR, "#diff-table tbody tr"), timeout=30)
    print("compare: a repeat job stopped after 2 of 3 runs offers them merged ('2 of 3 runs, stopped')")


def ux_long_command(driver, server):
    """A 4,000-character argument: the list shows the command cut, all of it in the link's title."""
    load(driver, server.base + "/")
    row = f'#jobs tr[data-id="{LONG_COMMAND_JOB}"]'
    wait(driver, "the list", lambda d: d.find_elements(By.CSS_SELECTOR, row))
    link = driver.find_element(By.CSS_SELECTOR, row + " td.cmd a")
    shown, title = link.text, link.get_attribute("title")
    height = driver.execute_script("return arguments[0].getBoundingClientRect().height", driver.find_element(By.CSS_SELECTOR, row))
    assert len(shown) <= 300 and shown.endswith("…") and title == "long-command " + "x" * 4000 and height < 200, \
        f"shown {len(shown)} characters, title {len(title or '')}, row {height} px tall"
    print(f"job list: a 4,000-character command cut to {len(shown)} characters ({height:.0f} px row), all of it in the title")


LIST_ROW = '#jobs tr[data-id="20200101-000000-00000e"]'


def ux_selection(driver, server):
    """The list's polls keep its rows: a selected command line stays selected (it was cleared)."""
    load(driver, server.base + "/")
    wait(driver, "the list", lambda d: d.find_elements(By.CSS_SELECTOR, LIST_ROW))
    selected = driver.execute_script("""const a = document.querySelector(arguments[0] + ' td.cmd a');
        a.closest('tr').__mark = true;
        const r = document.createRange(); r.selectNodeContents(a);
        const s = getSelection(); s.removeAllRanges(); s.addRange(r); return s.toString();""", LIST_ROW)
    assert selected == "recursive", selected
    time.sleep(3.6)  # the list is polled every 3 s (every second while a job runs)
    kept = driver.execute_script("return [getSelection().toString(), !!document.querySelector(arguments[0]).__mark];", LIST_ROW)
    assert kept == ["recursive", True], f"a poll of the list cleared the selection or rebuilt the row: {kept}"
    print("job list: a selection survives a poll")


def ux_held_click(driver, server):
    """A click held on a row's checkbox across a poll still checks it."""
    load(driver, server.base + "/")
    wait(driver, "the list", lambda d: d.find_elements(By.CSS_SELECTOR, LIST_ROW + " input.pick"))
    box = driver.find_element(By.CSS_SELECTOR, LIST_ROW + " input.pick")
    ActionChains(driver).click_and_hold(box).pause(3.6).release().perform()
    checked = driver.execute_script("const b = document.querySelector(arguments[0]); return !!(b && b.checked);", LIST_ROW + " input.pick")
    assert checked and "(1)" in driver.find_element(By.ID, "delete-selected").text, "a click held across a poll of the list was lost"
    driver.find_element(By.CSS_SELECTOR, LIST_ROW + " input.pick").click()
    print("job list: a click held across a poll checks the box")


def ux_restart(driver, server, bin_dir, data):
    """The server restarts (a new token): the open page says so instead of failing in silence."""
    load(driver, f"{server.base}/jobs/20200101-000000-00000a#cpu")
    wait(driver, "the flame graph", flame_ready)
    port = int(server.base.rsplit(":", 1)[1])
    server.stop()
    server = Server(bin_dir, data, port)
    try:
        wait(driver, "the page to say the server restarted", lambda d: d.find_element(By.ID, "token-warning").is_displayed()
             and "restarted" in d.find_element(By.ID, "token-warning").text, timeout=30)
    except AssertionError:
        server.stop()  # the caller stops the server it knows, the one stopped above
        raise
    print("restart: the open page says that the server restarted and its token is refused")
    return server


def bulk_delete_check(driver, server):
    driver.get(server.base + "/")
    for job in ["20200101-000000-00000c", "20200101-000000-00000d"]:
        wait(driver, f"row {job}", lambda d: d.find_elements(By.CSS_SELECTOR, f'#jobs tr[data-id="{job}"] input.pick'))
        driver.find_element(By.CSS_SELECTOR, f'#jobs tr[data-id="{job}"] input.pick').click()
    button = driver.find_element(By.ID, "delete-selected")
    assert button.is_enabled() and "(2)" in button.text, button.text
    button.click()
    driver.switch_to.alert.accept()
    wait(driver, "both rows gone", lambda d: not d.find_elements(By.CSS_SELECTOR, '#jobs tr[data-id="20200101-000000-00000c"]')
         and not d.find_elements(By.CSS_SELECTOR, '#jobs tr[data-id="20200101-000000-00000d"]'))
    ids = [j["id"] for j in server.api("/api/jobs")]
    assert "20200101-000000-00000c" not in ids and "20200101-000000-00000d" not in ids, ids
    print("bulk delete: two jobs deleted at once")


def orphan_check(driver, server, bin_dir, data):
    """The server is killed while a job records; the recording goes on and writes its profile,
    which the next server shows."""
    work = "i=0; while [ $i -lt 600000 ]; do i=$((i+1)); done"
    job = create(server, ["/bin/sh", "-c", work], {"call_graph": "fp"})
    wait(driver, "the job to start", lambda d: server.api(f"/api/jobs/{job}")["state"] == "running", timeout=300)
    server.kill()
    server = Server(bin_dir, data, free_port())
    driver.get(server.url)
    job_page(driver, server, job)
    assert driver.find_element(By.ID, "job-state").get_attribute("data-state") == "interrupted"
    wait(driver, "the orphaned recording's flame graph", flame_ready, timeout=300)
    notices = driver.find_element(By.ID, "job-notices").text
    assert "picked up" in notices, notices
    print("crash: the profile of a recording that outlived the server is shown")
    return server


def make_bench_data(data, job):
    """A finished job whose profile has 100k distinct stacks, 12-30 frames deep, over 5k function
    names (a big C++/Swift program), written as the server would have left it."""
    import random
    run = os.path.join(data, "jobs", job, "runs", "1")
    os.makedirs(run)
    rnd = random.Random(42)
    funcs = [f"mod{ i % 40 }::Type{ i % 300 }::fn_{ i }(int)" for i in range(5000)]
    seen = set()
    lines = []
    while len(seen) < 100_000:
        depth = rnd.randint(12, 30)
        stack = ["bench", "main"] + [funcs[min(4999, int(rnd.paretovariate(1.2) * 3) + d * 150) % 5000] for d in range(depth)]
        key = ";".join(stack)
        if key in seen:
            continue
        seen.add(key)
        lines.append(f"{key} {rnd.randint(1, 50)}")
    with open(os.path.join(run, "profile.folded"), "w") as f:
        f.write("\n".join(sorted(lines)) + "\n")
    state = {"id": job, "command": ["bench"], "options": {"repeat": 1}, "state": "done", "created_ms": 1577836800000,
             "started_ms": 1577836800000, "finished_ms": 1577836801000, "runs_done": 1, "samples": 0, "notices": []}
    with open(os.path.join(data, "jobs", job, "state.json"), "w") as f:
        json.dump(state, f)


def _varint(n):
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def _field(num, payload):
    """A length-delimited protobuf field (bytes), or a varint field (int)."""
    if isinstance(payload, int):
        return _varint(num << 3) + _varint(payload)
    return _varint(num << 3 | 2) + _varint(len(payload)) + payload


def _packed(num, values):
    return _field(num, b"".join(_varint(v) for v in values))


def make_bench_pprof(data, job, stacks=30_000, threads=4, seconds=10, seed=7):
    """A finished job as `sprof run --timeline` leaves it: profile.pb.gz (pprof written here by
    hand: `stacks` distinct stacks, 12-30 frames over 5,000 functions, `threads` threads with
    pid/tid labels, samples/count and cpu/nanoseconds at 999 Hz) and profile.timeline.tsv (every
    sample's time, spread over `seconds`). Returns the sample count and the stacks as
    (frames root first, thread, count)."""
    import gzip
    import random
    rnd = random.Random(seed)
    run = os.path.join(data, "jobs", job, "runs", "1")
    os.makedirs(run)
    strings = ["", "samples", "count", "cpu", "nanoseconds", "pid", "tid", "thread_name", "process_name", "bench"]
    funcs = [f"mod{i % 40}::Type{i % 300}::fn_{i}(int)" for i in range(5000)] + ["main"]
    strings += funcs
    fid = {f: i + 1 for i, f in enumerate(funcs)}  # function id = location id
    sid = {f: 10 + i for i, f in enumerate(funcs)}
    seen, rows = set(), []
    while len(seen) < stacks:
        depth = rnd.randint(12, 30)
        frames = ["main"] + [funcs[min(4999, int(rnd.paretovariate(1.2) * 3) + d * 150) % 5000] for d in range(depth)]
        key = tuple(frames)
        if key in seen:
            continue
        seen.add(key)
        rows.append((key, rnd.randrange(threads), rnd.randint(1, 20)))
    msg = bytearray()
    msg += _field(1, _field(1, 1) + _field(2, 2)) + _field(1, _field(1, 3) + _field(2, 4))
    period = 1_001_001
    stack_no, timed = {}, []
    for frames, t, n in rows:
        labels = [_field(1, 5) + _field(3, 1000), _field(1, 6) + _field(3, 1000 + t),
                  _field(1, 7) + _field(2, 9), _field(1, 8) + _field(2, 9)]
        locs = [fid[f] for f in reversed(frames)]
        msg += _field(2, _packed(1, locs) + _packed(2, [n, n * period]) + b"".join(_field(3, l) for l in labels))
        k = stack_no.setdefault(frames, len(stack_no))
        for _ in range(n):
            timed.append((rnd.randrange(seconds * 1_000_000_000), t, k))
    for f in funcs:
        msg += _field(4, _field(1, fid[f]) + _field(3, 0x1000 + 16 * fid[f]) + _field(4, _field(1, fid[f])))
        msg += _field(5, _field(1, fid[f]) + _field(2, sid[f]) + _field(3, sid[f]))
    for text in strings:
        msg += _field(6, text.encode())
    msg += _field(11, _field(1, 3) + _field(2, 4)) + _field(12, period)
    with open(os.path.join(run, "profile.pb.gz"), "wb") as f:
        f.write(gzip.compress(bytes(msg), mtime=0))
    lines = ["# sprof sample timeline v1: time_ns pid tid cpu stack"]
    for frames, k in sorted(stack_no.items(), key=lambda kv: kv[1]):
        lines.append(f"# stack {k} " + ",".join(str(fid[f]) for f in reversed(frames)))
    for time_ns, t, k in sorted(timed):
        lines.append(f"{time_ns}\t1000\t{1000 + t}\t{t % 2}\t{k}")
    with open(os.path.join(run, "profile.timeline.tsv"), "w") as f:
        f.write("\n".join(lines) + "\n")
    state = {"id": job, "command": ["bench"], "options": {"repeat": 1}, "state": "done", "created_ms": 1577836800000,
             "started_ms": 1577836800000, "finished_ms": 1577836801000, "runs_done": 1, "samples": len(timed), "notices": []}
    with open(os.path.join(data, "jobs", job, "state.json"), "w") as f:
        json.dump(state, f)
    return len(timed), rows


def timed_in_page(driver, action, done, timeout=600):
    """Milliseconds from `action` (JavaScript run in the page: the click) to `done` (a JavaScript
    expression) becoming true, measured in the page with performance.now() and checked every
    2 ms: WebDriver's own polling (200 ms) is too coarse for 100-ms targets."""
    driver.set_script_timeout(timeout)
    ms = driver.execute_async_script(f"""
        const finish = arguments[arguments.length - 1];
        const t0 = performance.now();
        (() => {{ {action} }})();
        const tick = () => {{
          let ok = false;
          try {{ ok = !!({done}); }} catch (e) {{}}
          if (ok) finish(performance.now() - t0);
          else if (performance.now() - t0 > {timeout * 1000}) finish(-1);
          else setTimeout(tick, 2);
        }};
        tick();""")
    assert ms >= 0, f"timed out after {timeout} s: {done}"
    return ms


FLAME_DRAWN = "window.sprofFlame && window.sprofFlame.drawn > 0"


def server_cpu_ms(server):
    """The server's user+system CPU time so far, in ms (/proc/PID/stat), to read beside wall
    time on a loaded machine."""
    with open(f"/proc/{server.proc.pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) * 1000 / os.sysconf("SC_CLK_TCK")


def bench30k(bin_dir, reps=5, think_ms=0):
    """Times what issue 21 sets targets for, on two jobs of 30,000 distinct stacks (pprof with a
    sample timeline): the CPU tab's first view, the same again, a focus and an ignore transform,
    a time range and its Top functions, and Compare of the two. Each repetition starts a new
    server (nothing cached); prints every figure and the median of each step (no assertion on
    time) and checks every drawn total against the generated profile. `think_ms`: how long the
    user looks at a job's page before the first click (the server prepares the job meanwhile);
    0 clicks as soon as the page shows the job."""
    data = tempfile.mkdtemp(prefix="sprof-serve-bench30k-")
    jobs = ["20200101-000000-be0c30", "20200101-000000-be0c31"]
    (total, rows), _ = make_bench_pprof(data, jobs[0]), make_bench_pprof(data, jobs[1], seed=8)
    # Transforms on the hottest function below main (by total) and one of middling total.
    by_fn = {}
    for frames, _, n in rows:
        for f in set(frames[1:]):
            by_fn[f] = by_fn.get(f, 0) + n
    ranked = sorted(by_fn.items(), key=lambda kv: (-kv[1], kv[0]))
    focus, focus_total = ranked[0]
    ignored, ignored_total = ranked[len(ranked) // 4]
    with open(os.path.join(data, "jobs", jobs[0], "runs", "1", "profile.timeline.tsv")) as f:
        times = [int(line.split("\t", 1)[0]) for line in f if line.strip() and not line.startswith("#")]
    lo, hi = 3_000_000_000, 7_000_000_000
    in_range = sum(1 for t in times if lo <= t < hi)
    steps = {}
    driver = start_browser()
    try:
        for rep in range(reps):
            server = Server(bin_dir, data, free_port())
            try:
                def step(name, action, done, check=None, want=None):
                    cpu = server_cpu_ms(server)
                    ms = timed_in_page(driver, "window.sprofFlame = null; " + action, done)
                    cpu = server_cpu_ms(server) - cpu
                    if check is not None:
                        got = driver.execute_script(check)
                        assert got == want, f"{name}: drawn total {got}, expected {want}"
                    steps.setdefault(name, []).append((ms, cpu))
                driver.get(f"{server.base}/jobs/{jobs[0]}?token={server.token}#files")
                wait(driver, "the page", lambda d: d.find_element(By.ID, "job-state").get_attribute("data-state") == "done")
                time.sleep(think_ms / 1000)
                cpu_tab = 'document.querySelector(\'#tabs button[data-tab="cpu"]\').click();'
                total_js = "return window.sprofFlame.data.total"
                # First view: from the tab's click to the drawn flame graph (server: decode, tree, JSON; page: layout, draw).
                step("first CPU view", cpu_tab, FLAME_DRAWN, total_js, total)
                step("CPU view again (cached)", 'document.querySelector(\'#tabs button[data-tab="files"]\').click(); ' + cpu_tab,
                     FLAME_DRAWN, total_js, total)
                # Transforms, as a frame's menu adds them, each from the untransformed view.
                step("transform: focus on a function", f"window.sprofTransforms.add({json.dumps('focus:' + focus)});",
                     FLAME_DRAWN, total_js, focus_total)
                driver.execute_script("window.sprofTransforms.remove(0);")
                wait(driver, "no transform", lambda d: d.execute_script(f"return !!({FLAME_DRAWN}) && window.sprofFlame.data.total === {total}"))
                step("transform: drop samples with a function", f"window.sprofTransforms.add({json.dumps('ignore:' + ignored)});",
                     FLAME_DRAWN, total_js, total - ignored_total)
                driver.execute_script("window.sprofTransforms.remove(0);")
                wait(driver, "no transform", lambda d: d.execute_script(f"return !!({FLAME_DRAWN}) && window.sprofFlame.data.total === {total}"))
                # A time range: the middle 40% of the run.
                step("range selection (CPU view of 40% of the run)", f"window.SprofRange.set({{from: {lo}, to: {hi}}});",
                     FLAME_DRAWN, total_js, in_range)
                step("range: Top functions", 'document.querySelector(\'#tabs button[data-tab="top"]\').click();',
                     "document.querySelectorAll('#top-table tbody tr').length > 0 && !document.getElementById('panel').textContent.includes('loading')")
                # The rest of the table's 500 rows follow when the page is idle, in order.
                wait(driver, "the whole Top table", lambda d: not d.find_elements(By.CSS_SELECTOR, "#top-table tbody[data-filling]"))
                selfs = driver.execute_script("return [...document.querySelectorAll('#top-table tbody tr')].map((r) => +r.children[0].textContent.replace(/,/g, ''))")
                assert len(selfs) == 500 and selfs == sorted(selfs, reverse=True), f"Top table: {len(selfs)} rows, by self: {selfs == sorted(selfs, reverse=True)}"
                driver.execute_script("window.SprofRange.set(null);")
                # Compare: job 2 against job 1 (job 2 not loaded before, job 1 cached).
                driver.get(f"{server.base}/jobs/{jobs[1]}#compare")
                wait(driver, "the base list", lambda d: d.find_elements(By.CSS_SELECTOR, f'#compare-base option[value="{jobs[0]}:1"]'))
                time.sleep(think_ms / 1000)
                step("Compare of the two jobs",
                     f"const s = document.getElementById('compare-base'); s.value = '{jobs[0]}:1'; s.dispatchEvent(new Event('change'));",
                     f"document.querySelectorAll('#diff-table tbody tr').length > 0 && {FLAME_DRAWN}")
            finally:
                server.stop()
        load = os.getloadavg()
        print(f"30,000 distinct stacks, {total} samples; {reps} repetitions, each with a new server; "
              f"{think_ms} ms on a job's page before the first click; "
              f"load average {load[0]:.1f} {load[1]:.1f} {load[2]:.1f} at the end; wall ms from the click to the drawn view "
              f"and the server's CPU ms meanwhile")
        for name, runs in steps.items():
            wall, cpu = [w for w, _ in runs], [c for _, c in runs]
            print(f"  {name}: median {statistics.median(wall):.0f} ms, server CPU {statistics.median(cpu):.0f} ms  (wall "
                  + ", ".join(f"{v:.0f}" for v in wall) + "; CPU " + ", ".join(f"{v:.0f}" for v in cpu) + ")")
    finally:
        driver.quit()
        shutil.rmtree(data, ignore_errors=True)


def bench(bin_dir):
    """Times the flame graph on a synthetic profile of 100k distinct stacks (no assertion on time)."""
    data = tempfile.mkdtemp(prefix="sprof-serve-bench-")
    job = "20200101-000000-be0c4e"
    make_bench_data(data, job)
    driver = start_browser()
    server = Server(bin_dir, data, free_port())
    try:
        t0 = time.time()
        driver.get(f"{server.base}/jobs/{job}?token={server.token}#cpu")
        wait(driver, "the flame graph", flame_ready, timeout=600)
        load = time.time() - t0
        stats = driver.execute_script("return window.sprofFlameStats")
        # Redraws as a user causes them: zoom into a frame, reset, search.
        timings = driver.execute_script("""
            const f = window.sprofFlame, out = {};
            let t = performance.now(); f.zoom(f.kids[f.start[f.kids[0]]]); out.zoomMs = performance.now() - t;
            t = performance.now(); f.zoom(-1); out.resetMs = performance.now() - t;
            t = performance.now(); f.searchEl.value = "fn_1[0-9]{2}\\\\("; f.search(f.searchEl.value); out.searchMs = performance.now() - t;
            t = performance.now(); for (let k = 0; k < 10; k++) f.draw(); out.redrawMs = (performance.now() - t) / 10;
            return out;""")
        # With frames left out, the matched share comes from the server.
        wait(driver, "the matched share", lambda d: d.execute_script("return window.sprofFlame.matchedPercent") is not None)
        timings["matched"] = driver.execute_script("return window.sprofFlame.matchedPercent")
        print(f"100k distinct stacks: {stats['frames']} frames in the tree, {stats['drawn']} drawn; "
              f"page load to first draw {load:.2f} s (server parse + JSON + layout); layout {stats['layoutMs']:.0f} ms, "
              f"first draw {stats['drawMs']:.0f} ms; zoom {timings['zoomMs']:.0f} ms, reset {timings['resetMs']:.0f} ms, "
              f"search {timings['searchMs']:.0f} ms (matched {timings['matched']:.1f}%), redraw {timings['redrawMs']:.1f} ms")
    finally:
        driver.quit()
        server.stop()
        shutil.rmtree(data, ignore_errors=True)


def run_alone(bin_dir, what, checks, prepare=None):
    """One part of the test on its own: a browser, a data directory (`prepare` writes jobs into
    it) and a server; `checks` may return the server it left running (a restarted one)."""
    data = tempfile.mkdtemp(prefix=f"sprof-serve-{what}-")
    driver, server = start_browser(), None
    try:
        if prepare:
            prepare(data)
        server = Server(bin_dir, data, free_port())
        server = checks(driver, server, data) or server
        print(f"serve browser test ({what} only): OK")
    finally:
        driver.quit()
        if server:
            server.stop()
        shutil.rmtree(data, ignore_errors=True)


if __name__ == "__main__":
    if len(sys.argv) < 2:
        print(__doc__)
        sys.exit(2)
    bin_dir = os.path.abspath(sys.argv[1])
    if "--bench30k" in sys.argv:
        bench30k(bin_dir, int(sys.argv[sys.argv.index("--reps") + 1]) if "--reps" in sys.argv else 5,
                 int(sys.argv[sys.argv.index("--think") + 1]) if "--think" in sys.argv else 0)
    elif "--bench" in sys.argv:
        bench(bin_dir)
    elif "--heap-only" in sys.argv:
        run_alone(bin_dir, "heap", lambda driver, server, data: heap_job_checks(driver, server, bin_dir, data))
    elif "--ux-only" in sys.argv:
        def prepare(data):
            write_synthetic_jobs(data)
            write_ux_jobs(data)
            make_bench_pprof(data, WIDE_JOB, stacks=2000)

        def ux(driver, server, data):
            driver.get(server.url)
            return ux_checks(driver, server, bin_dir, data, keep_going="--keep-going" in sys.argv)
        run_alone(bin_dir, "ux", ux, prepare)
    elif "--make-bench-data" in sys.argv:
        make_bench_data(sys.argv[sys.argv.index("--make-bench-data") + 1], "20200101-000000-be0c4e")
    else:
        shot = sys.argv[sys.argv.index("--screenshot") + 1] if "--screenshot" in sys.argv else None
        e2e(bin_dir, shot)
