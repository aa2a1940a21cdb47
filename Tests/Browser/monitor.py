#!/usr/bin/env python3
"""The monitoring page in a real browser, and /metrics through a Prometheus parser.

Run by Tests/EndToEndTests/MonitoringPageTests.swift against a live server:

  monitor.py metrics URL
      Scrapes URL, parses it with prometheus_client's text-format parser (which rejects anything
      Prometheus would not read) and prints every sample as JSON: {"name{label=value,...}": value}.

  monitor.py elements FILE
      Parses the HTML in FILE as a browser would (html5lib implements the HTML5 parsing algorithm)
      and prints JSON: every element in document order, as its tag and its sorted attribute names.

  monitor.py browse BASE TOKEN CONFLICT_ID OUT_DIR
      Drives headless Chromium over the DevTools protocol (through a pipe: no extra package):
      opens BASE/monitor, is sent to the login, types TOKEN, submits, opens the overview, the
      site S01 and the conflict CONFLICT_ID, saving a screenshot of each into OUT_DIR, and prints
      JSON with each page's visible text, for the test to check.
"""
import base64
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request


def metrics(url):
    from prometheus_client.parser import text_string_to_metric_families

    text = urllib.request.urlopen(url, timeout=30).read().decode("utf-8")
    samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = ",".join(f"{k}={v}" for k, v in sorted(sample.labels.items()))
            samples[f"{sample.name}{{{labels}}}" if labels else sample.name] = sample.value
    json.dump(samples, sys.stdout, sort_keys=True)


def elements(path):
    import html5lib

    with open(path, "rb") as page:
        document = html5lib.parse(page.read(), treebuilder="etree", namespaceHTMLElements=False)
    json.dump([[element.tag, sorted(element.attrib)] for element in document.iter()], sys.stdout)


class Browser:
    """Chromium with --remote-debugging-pipe: JSON messages ending in NUL on fds 3 (in) and 4 (out)."""

    def __init__(self):
        executable = shutil.which("chromium") or shutil.which("chromium-browser")
        if not executable:
            sys.exit("chromium is not installed (Debian: apt-get install chromium)")
        self.profile = tempfile.mkdtemp(prefix="sitesync-chromium-")
        to_browser_read, self.to_browser = os.pipe()
        self.from_browser, from_browser_write = os.pipe()
        # The child gets the two pipe ends as fds 3 and 4, as --remote-debugging-pipe expects,
        # inheritable across exec (Python's pipes are not, and dup2 onto itself keeps that).
        # close_fds=False: subprocess would otherwise close 3 and 4 after preexec_fn.
        def child_fds():
            read, write = to_browser_read, from_browser_write
            if write == 3:
                write = os.dup(write)
            os.dup2(read, 3)
            os.dup2(write, 4)
            os.set_inheritable(3, True)
            os.set_inheritable(4, True)

        self.process = subprocess.Popen(
            [
                executable, "--headless=new", "--remote-debugging-pipe", "--no-sandbox", "--disable-gpu",
                "--no-first-run", "--no-default-browser-check", "--disable-dev-shm-usage",
                "--disable-extensions", "--disable-background-networking", "--disable-sync",
                f"--user-data-dir={self.profile}", "--window-size=1280,900", "about:blank",
            ],
            close_fds=False,
            preexec_fn=child_fds,
            stdout=subprocess.DEVNULL,
            stderr=open(os.environ.get("SITESYNC_BROWSER_LOG", os.devnull), "ab"),
        )
        os.close(to_browser_read)
        os.close(from_browser_write)
        self.buffer = b""
        self.next_id = 0
        self.events = []
        target = self.call("Target.createTarget", {"url": "about:blank"})["targetId"]
        self.session = self.call("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        self.call("Page.enable", session=True)
        self.call("Emulation.setDeviceMetricsOverride", {"width": 1280, "height": 900, "deviceScaleFactor": 1, "mobile": False}, session=True)

    def send(self, method, params, session):
        self.next_id += 1
        message = {"id": self.next_id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = self.session
        os.write(self.to_browser, json.dumps(message).encode() + b"\0")
        return self.next_id

    def receive(self, deadline):
        while b"\0" not in self.buffer:
            if time.monotonic() > deadline:
                raise TimeoutError("the browser did not answer in time")
            chunk = os.read(self.from_browser, 1 << 20)
            if not chunk:
                raise RuntimeError("the browser closed the pipe")
            self.buffer += chunk
        message, self.buffer = self.buffer.split(b"\0", 1)
        return json.loads(message)

    def call(self, method, params=None, session=False, timeout=30):
        wanted = self.send(method, params, session)
        deadline = time.monotonic() + timeout
        while True:
            message = self.receive(deadline)
            if message.get("id") == wanted:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message.get("result", {})
            self.events.append(message)

    def wait_for_load(self, timeout=30):
        deadline = time.monotonic() + timeout
        while True:
            for index, event in enumerate(self.events):
                if event.get("method") == "Page.loadEventFired":
                    del self.events[: index + 1]
                    return
            self.events.clear()
            self.events.append(self.receive(deadline))

    def navigate(self, url):
        self.events.clear()
        self.call("Page.navigate", {"url": url}, session=True)
        self.wait_for_load()

    def evaluate(self, expression):
        result = self.call("Runtime.evaluate", {"expression": expression, "returnByValue": True}, session=True)
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def screenshot(self, path):
        metrics = self.call("Page.getLayoutMetrics", session=True)
        size = metrics.get("cssContentSize") or metrics["contentSize"]
        clip = {"x": 0, "y": 0, "width": 1280, "height": min(int(size["height"]) + 1, 4000), "scale": 1}
        data = self.call("Page.captureScreenshot", {"format": "png", "clip": clip, "captureBeyondViewport": True}, session=True)["data"]
        with open(path, "wb") as file:
            file.write(base64.b64decode(data))

    def close(self):
        try:
            self.call("Browser.close", timeout=5)
        except Exception:
            pass
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
        shutil.rmtree(self.profile, ignore_errors=True)


def browse(base, token, conflict, out):
    os.makedirs(out, exist_ok=True)
    browser = Browser()
    pages = {}
    try:
        browser.navigate(f"{base}/monitor")
        pages["login"] = {"url": browser.evaluate("location.pathname"), "text": browser.evaluate("document.body.innerText")}
        browser.screenshot(os.path.join(out, "monitor-login.png"))
        # Typed into the form and submitted as a person would; the page itself runs no script.
        browser.evaluate(f"document.getElementById('token').value = {json.dumps(token)}")
        browser.events.clear()
        browser.evaluate("document.querySelector('form.login').submit()")
        browser.wait_for_load()
        pages["overview"] = {"url": browser.evaluate("location.pathname"), "text": browser.evaluate("document.body.innerText")}
        browser.screenshot(os.path.join(out, "monitor-overview.png"))
        browser.events.clear()
        browser.evaluate("document.querySelector('a[href=\"/monitor/sites/S01\"]').click()")
        browser.wait_for_load()
        pages["site"] = {"url": browser.evaluate("location.pathname"), "text": browser.evaluate("document.body.innerText")}
        browser.screenshot(os.path.join(out, "monitor-site.png"))
        browser.events.clear()
        browser.evaluate(f"document.querySelector('a[href=\"/monitor/conflicts/{conflict}\"]').click()")
        browser.wait_for_load()
        pages["conflict"] = {"url": browser.evaluate("location.pathname"), "text": browser.evaluate("document.body.innerText")}
        browser.screenshot(os.path.join(out, "monitor-conflict.png"))
        pages["cookies"] = browser.call("Network.getCookies", {"urls": [f"{base}/monitor"]}, session=True)["cookies"]
        browser.events.clear()
        browser.evaluate("document.querySelector('header form button').click()")
        browser.wait_for_load()
        pages["logout"] = {"url": browser.evaluate("location.pathname"), "text": browser.evaluate("document.body.innerText")}
        browser.navigate(f"{base}/monitor/sites/S01")
        pages["after_logout"] = {"url": browser.evaluate("location.pathname")}
    finally:
        browser.close()
    json.dump(pages, sys.stdout, sort_keys=True)


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "metrics":
        metrics(sys.argv[2])
    elif len(sys.argv) == 3 and sys.argv[1] == "elements":
        elements(sys.argv[2])
    elif len(sys.argv) == 6 and sys.argv[1] == "browse":
        browse(*sys.argv[2:])
    else:
        sys.exit(__doc__)
