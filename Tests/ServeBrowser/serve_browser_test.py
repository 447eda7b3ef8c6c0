#!/usr/bin/python3
"""End-to-end test of `sprof serve` in headless Chromium, driven by Selenium (Debian's chromium,
chromium-driver and python3-selenium).

  serve_browser_test.py BIN_DIR                  the test (scripts/test.sh runs it)
  serve_browser_test.py BIN_DIR --screenshot F   also save a screenshot of the job page to F
  serve_browser_test.py BIN_DIR --bench          time the flame graph on 100k distinct stacks

It creates a job from the form and watches it finish through the live stream (the page is never
reloaded), opens every tab, hovers a frame and reads the tooltip, clicks to zoom, searches,
compares two jobs, restarts the server and finds the job again. It skips (exit 0, with the reason)
only when Chromium cannot start.
"""
import json
import os
import shutil
import signal
import socket
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
        self.proc = subprocess.Popen([os.path.join(bin_dir, "sprof"), "serve", "--data", data, "--port", str(port)],
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        line = self.proc.stdout.readline()
        if "token=" not in line:
            rest = self.proc.stdout.read() if self.proc.poll() is not None else ""
            raise AssertionError(f"sprof serve did not print its URL: {line!r} {rest!r}")
        self.url = line.split("sprof serve: ", 1)[1].strip()
        self.base = self.url.split("/?", 1)[0]
        self.token = self.url.split("token=", 1)[1]

    def stop(self):
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
         and "loading" not in d.find_element(By.ID, "panel").text)


def flame_ready(driver):
    return driver.execute_script("return !!(window.sprofFlame && window.sprofFlame.drawn > 0)")


def hover_frame(driver, depth, frac=0.5):
    """Moves the mouse over the flame graph at row `depth`, `frac` of the way across; returns the tooltip."""
    canvas = driver.find_element(By.CSS_SELECTOR, "#panel canvas.flame-canvas")
    w = canvas.size["width"]
    # Offsets are from the element's centre.
    ActionChains(driver).move_to_element_with_offset(canvas, int(w * frac - w / 2),
                                                     int(depth * ROW + ROW / 2 - canvas.size["height"] / 2)).perform()
    tip = driver.find_element(By.CSS_SELECTOR, "#panel .flame-tip")
    wait(driver, "the tooltip", lambda d: tip.is_displayed() and tip.text.strip() != "", timeout=10)
    return tip.text


def run_job_from_form(driver, server, command):
    driver.get(server.url)
    wait(driver, "the form", lambda d: d.find_element(By.ID, "f-command"))
    driver.find_element(By.ID, "f-command").send_keys(command)
    driver.find_element(By.ID, "f-frequency").send_keys("1999")
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
        job_id, seen = run_job_from_form(driver, server, f"{bench} --messages 300000 --repeat 1")
        print(f"job {job_id}: states seen on the page {sorted(seen)}")
        progress = driver.find_element(By.ID, "job-progress").text
        assert "samples" in progress, progress

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
            text = driver.find_element(By.ID, "panel").text
            assert "not recorded" in text or flame_ready(driver), f"{name}: {text!r}"
        open_tab(driver, "memory")
        text = driver.find_element(By.ID, "panel").text
        assert ("not sampled" in text or driver.find_elements(By.CSS_SELECTOR, "svg.memory-chart")), text
        open_tab(driver, "top")
        rows = driver.find_elements(By.CSS_SELECTOR, "#top-table tbody tr")
        assert len(rows) > 5, len(rows)
        driver.find_element(By.CSS_SELECTOR, '#top-table th[data-key="name"]').click()
        assert driver.find_element(By.CSS_SELECTOR, '#top-table th[data-key="name"]').get_attribute("data-sort") == "asc"
        driver.find_element(By.CSS_SELECTOR, '#top-table th[data-key="total"]').click()
        totals = [int(r.find_elements(By.TAG_NAME, "td")[2].text.replace(",", "")) for r in driver.find_elements(By.CSS_SELECTOR, "#top-table tbody tr")]
        assert totals == sorted(totals, reverse=True), "sorted by total, largest first"
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
        assert "profile.folded" in links and "profile.svg" in links, links

        # Compare: a second job (the Re-run button), then the first as its base.
        open_tab(driver, "compare")
        assert "no other finished job" in driver.find_element(By.ID, "panel").text
        driver.find_element(By.ID, "rerun").click()
        wait(driver, "the re-run's page", lambda d: job_id not in d.current_url)
        wait(driver, "the re-run to finish", lambda d: d.find_element(By.ID, "job-state").get_attribute("data-state") == "done", timeout=300)
        open_tab(driver, "compare")
        driver.find_element(By.CSS_SELECTOR, f'#compare-base option[value="{job_id}"]').click()
        wait(driver, "the diff table", lambda d: d.find_elements(By.CSS_SELECTOR, "#diff-table tbody tr"))
        wait(driver, "the differential flame graph", flame_ready)
        print(f"compare: {len(driver.find_elements(By.CSS_SELECTOR, '#diff-table tbody tr'))} rows in the delta table")

        # Restart the server: the job is still there, done, with its views.
        server.stop()
        server = Server(bin_dir, data, free_port())
        driver.get(server.url)
        wait(driver, "the job list after restart", lambda d: d.find_elements(By.CSS_SELECTOR, f'#jobs tr[data-id="{job_id}"]'))
        row = driver.find_element(By.CSS_SELECTOR, f'#jobs tr[data-id="{job_id}"]')
        assert row.get_attribute("data-state") == "done", row.text
        row.find_element(By.TAG_NAME, "a").click()
        wait(driver, "the job's flame graph after restart", flame_ready)
        if screenshot:
            driver.set_window_size(1400, 900)
            open_tab(driver, "cpu")
            wait(driver, "the flame graph", flame_ready)
            hover_frame(driver, 9, 0.62)
            driver.save_screenshot(screenshot)
            print(f"screenshot: {screenshot}")
        print("serve browser test: OK")
    finally:
        driver.quit()
        try:
            server.stop()
        except Exception as e:
            print(f"stopping the server: {e}")
        shutil.rmtree(data, ignore_errors=True)


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


def bench(bin_dir):
    """Times the flame graph on a synthetic profile of 100k distinct stacks (no assertion on time)."""
    data = tempfile.mkdtemp(prefix="sprof-serve-bench-")
    job = "20200101-000000-be0c4e"
    make_bench_data(data, job)
    driver = start_browser()
    server = Server(bin_dir, data, free_port())
    try:
        t0 = time.time()
        driver.get(f"{server.base}/jobs/{job}#cpu")
        wait(driver, "the flame graph", flame_ready, timeout=600)
        load = time.time() - t0
        stats = driver.execute_script("return window.sprofFlameStats")
        # Redraws as a user causes them: zoom into a frame, reset, search.
        timings = driver.execute_script("""
            const f = window.sprofFlame, out = {};
            let t = performance.now(); f.zoom(f.kids[f.start[f.kids[0]]]); out.zoomMs = performance.now() - t;
            t = performance.now(); f.zoom(-1); out.resetMs = performance.now() - t;
            t = performance.now(); f.search("fn_1[0-9]{2}\\\\("); out.searchMs = performance.now() - t; out.matched = f.matchedPercent;
            t = performance.now(); for (let k = 0; k < 10; k++) f.draw(); out.redrawMs = (performance.now() - t) / 10;
            return out;""")
        print(f"100k distinct stacks: {stats['frames']} frames in the tree, {stats['drawn']} drawn; "
              f"page load to first draw {load:.2f} s (server parse + JSON + layout); layout {stats['layoutMs']:.0f} ms, "
              f"first draw {stats['drawMs']:.0f} ms; zoom {timings['zoomMs']:.0f} ms, reset {timings['resetMs']:.0f} ms, "
              f"search {timings['searchMs']:.0f} ms (matched {timings['matched']:.1f}%), redraw {timings['redrawMs']:.1f} ms")
    finally:
        driver.quit()
        server.stop()
        shutil.rmtree(data, ignore_errors=True)


if __name__ == "__main__":
    if len(sys.argv) < 2:
        print(__doc__)
        sys.exit(2)
    bin_dir = os.path.abspath(sys.argv[1])
    if "--bench" in sys.argv:
        bench(bin_dir)
    elif "--make-bench-data" in sys.argv:
        make_bench_data(sys.argv[sys.argv.index("--make-bench-data") + 1], "20200101-000000-be0c4e")
    else:
        shot = sys.argv[sys.argv.index("--screenshot") + 1] if "--screenshot" in sys.argv else None
        e2e(bin_dir, shot)
