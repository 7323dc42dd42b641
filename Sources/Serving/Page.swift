// The drawing page `serve` answers at /: a canvas to draw a digit on with a mouse, pen or finger, and the model's ten
// probabilities, updated while drawing. Everything is in this one page (no scripts or fonts from elsewhere), so it
// works offline.
enum Page {
    /// The whole page: its style, its markup and its script.
    static func html(model: String, checksum: String) -> String {
        """
        <!doctype html>
        <html lang="en">
        <head>
        <meta charset="utf-8">
        <meta name="viewport" content="width=device-width, initial-scale=1">
        <title>mnist-dist: draw a digit</title>
        <style>
        \(style)
        </style>
        </head>
        <body>
        <h1>Draw a digit</h1>
        <div class="row">
          <div>
            <canvas id="pad" width="280" height="280" aria-label="drawing area"></canvas><br>
            <button id="clear" type="button">Clear</button> <span id="status">draw with the mouse, a pen or a finger</span>
          </div>
          <div>
            <div id="digit" aria-live="polite"></div>
            <table id="probabilities"></table>
          </div>
          <div>
            <div>what the model sees</div>
            <canvas id="seen" width="28" height="28"></canvas>
            <div id="note"></div>
          </div>
        </div>
        <footer><p>\(model), parameter checksum \(checksum). The page sends the drawing as a PNG to /predict, which
        prepares it as MNIST prepared its digits.</p></footer>
        <script>
        \(script)
        </script>
        </body>
        </html>

        """
    }

    /// How the page looks.
    static let style = """
          body { font-family: system-ui, sans-serif; margin: 1.5em; color: #222; background: #fafafa; }
          h1 { font-size: 1.3em; margin: 0 0 0.3em; }
          .row { display: flex; flex-wrap: wrap; gap: 2em; align-items: flex-start; }
          #pad { border: 2px solid #444; background: #fff; touch-action: none; cursor: crosshair; width: 280px; height: 280px; }
          #digit { font-size: 5em; font-weight: bold; line-height: 1; min-width: 1ch; }
          table { border-collapse: collapse; }
          td { padding: 1px 4px; font-variant-numeric: tabular-nums; }
          .bar { height: 14px; background: #3465a4; }
          .best .bar { background: #cc0000; }
          #seen { width: 112px; height: 112px; image-rendering: pixelated; border: 1px solid #999; background: #000; }
          #note, #status, footer { color: #555; font-size: 0.9em; }
          #note { max-width: 14em; }
          button { font-size: 1em; padding: 0.3em 1em; }
        """

    /// Drawing with pointer events, one /predict request at a time, and showing the answer.
    static let script = """
        "use strict";
        const pad = document.getElementById("pad"), ink = pad.getContext("2d");
        const table = document.getElementById("probabilities"), digit = document.getElementById("digit");
        const note = document.getElementById("note"), status = document.getElementById("status");
        const seen = document.getElementById("seen").getContext("2d");
        const rows = [];
        for (let d = 0; d < 10; d++) {
          const row = table.insertRow(), bar = document.createElement("div");
          row.insertCell().textContent = d;
          bar.className = "bar"; bar.style.width = "0px";
          const cell = row.insertCell(); cell.style.width = "160px"; cell.appendChild(bar);
          const value = row.insertCell();
          rows.push({ row, bar, value });
        }
        function clear() {
          ink.fillStyle = "#fff"; ink.fillRect(0, 0, pad.width, pad.height);
          digit.textContent = ""; note.textContent = ""; drawn = false;
          rows.forEach(r => { r.bar.style.width = "0px"; r.value.textContent = ""; r.row.className = ""; });
          seen.clearRect(0, 0, 28, 28);
        }
        let drawing = false, drawn = false, last = null, busy = false, again = false;
        function point(event) {
          const box = pad.getBoundingClientRect();
          return { x: (event.clientX - box.left) * pad.width / box.width, y: (event.clientY - box.top) * pad.height / box.height };
        }
        function stroke(from, to) {
          ink.strokeStyle = "#000"; ink.lineWidth = 20; ink.lineCap = "round"; ink.lineJoin = "round";
          ink.beginPath(); ink.moveTo(from.x, from.y); ink.lineTo(to.x, to.y); ink.stroke();
          drawn = true;
        }
        pad.addEventListener("pointerdown", e => { drawing = true; last = point(e); stroke(last, last); pad.setPointerCapture(e.pointerId); ask(); });
        pad.addEventListener("pointermove", e => { if (!drawing) return; const p = point(e); stroke(last, p); last = p; ask(); });
        ["pointerup", "pointercancel"].forEach(type => pad.addEventListener(type, () => { drawing = false; ask(); }));
        document.getElementById("clear").addEventListener("click", clear);
        // One request at a time; strokes drawn meanwhile are sent when it returns.
        function ask() {
          if (!drawn) return;
          if (busy) { again = true; return; }
          busy = true;
          pad.toBlob(async blob => {
            try {
              const answer = await fetch("predict", { method: "POST", headers: { "Content-Type": "image/png" }, body: blob });
              const result = await answer.json();
              if (!answer.ok) { status.textContent = result.error; }
              else { show(result); status.textContent = "ready"; }
            } catch (error) { status.textContent = "the server did not answer: " + error; }
            busy = false;
            if (again) { again = false; ask(); }
          }, "image/png");
        }
        function show(result) {
          digit.textContent = result.class;
          result.probabilities.forEach((p, d) => {
            rows[d].bar.style.width = Math.round(160 * p) + "px";
            rows[d].value.textContent = (100 * p).toFixed(1) + " %";
            rows[d].row.className = d === result.class ? "best" : "";
          });
          note.textContent = result.prepared;
          const image = seen.createImageData(28, 28);
          result.input.forEach((v, i) => { image.data.set([v, v, v, 255], 4 * i); });
          seen.putImageData(image, 0, 0);
        }
        clear();
        """
}