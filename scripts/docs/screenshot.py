# Drives headless Chromium over the DevTools protocol: open URL, wait, click the two rank rows open, screenshot.
# Usage: python screenshot.py URL OUTPUT.png SECONDS_TO_WAIT
import json, subprocess, time, base64, urllib.request, sys
import websocket
url, out, wait = sys.argv[1], sys.argv[2], float(sys.argv[3])
p = subprocess.Popen(["chromium", "--headless=new", "--no-sandbox", "--disable-gpu", "--remote-debugging-port=9222",
                      "--remote-allow-origins=*", "--window-size=1600,700", "about:blank"],
                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
try:
    for _ in range(50):
        try:
            targets = json.load(urllib.request.urlopen("http://127.0.0.1:9222/json")); break
        except Exception: time.sleep(0.2)
    page = [t for t in targets if t["type"] == "page"][0]
    ws = websocket.create_connection(page["webSocketDebuggerUrl"])
    n = [0]
    def call(method, **params):
        n[0] += 1; ws.send(json.dumps({"id": n[0], "method": method, "params": params}))
        while True:
            m = json.loads(ws.recv())
            if m.get("id") == n[0]: return m
    call("Emulation.setDeviceMetricsOverride", width=1600, height=700, deviceScaleFactor=1, mobile=False)
    call("Page.navigate", url=url)
    time.sleep(wait)
    for x, y in [(8, 220), (8, 180)]:
        for kind in ("mousePressed", "mouseReleased"):
            call("Input.dispatchMouseEvent", type=kind, x=x, y=y, button="left", clickCount=1)
        time.sleep(1.5)
    shot = call("Page.captureScreenshot", format="png")
    open(out, "wb").write(base64.b64decode(shot["result"]["data"]))
finally:
    p.kill()
