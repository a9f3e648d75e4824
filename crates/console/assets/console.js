// The console's only script (served from this origin; the CSP forbids inline scripts).
// - Overview: fetches <base>/series.json every sample interval and draws each
//   <canvas data-series="key[,key]"> as a line chart of the last 15 minutes.
// - Pages with <body data-refresh="N"> reload every N seconds while something on them changes.
// - Buttons marked data-admin-only say so before a `user` submits (the server refuses anyway).
(function () {
  "use strict";
  var body = document.body;
  var base = body.getAttribute("data-base") || "";
  var COLORS = ["#2563eb", "#dc2626"];

  function format(v, unit) {
    if (v === null || v === undefined || isNaN(v)) return "–";
    if (unit === "ratio") return (v * 100).toFixed(1) + "%";
    if (unit === "ms") return v.toFixed(v < 10 ? 2 : 0) + " ms";
    if (unit === "s") return v.toFixed(v < 10 ? 1 : 0) + " s";
    if (unit === "/s") return v.toFixed(v < 10 ? 2 : 1) + "/s";
    return v.toFixed(v < 10 && v % 1 ? 1 : 0);
  }

  function draw(canvas, points, windowS) {
    var keys = canvas.getAttribute("data-series").split(",");
    var unit = canvas.getAttribute("data-unit");
    var ratio = window.devicePixelRatio || 1;
    var w = canvas.clientWidth || canvas.width, h = canvas.clientHeight || canvas.height;
    canvas.width = w * ratio;
    canvas.height = h * ratio;
    var ctx = canvas.getContext("2d");
    ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
    ctx.clearRect(0, 0, w, h);
    var left = 44, right = 8, top = 8, bottom = 18;
    var now = Date.now(), from = now - windowS * 1000;
    var max = 0, drawn = 0;
    keys.forEach(function (k) {
      points.forEach(function (p) { if (p[k] !== null && p[k] > max) max = p[k]; });
    });
    if (unit === "ratio") max = Math.max(max, 0.01);
    if (max === 0) max = 1;
    max *= 1.1;
    var x = function (t) { return left + (w - left - right) * (t - from) / (now - from); };
    var y = function (v) { return top + (h - top - bottom) * (1 - v / max); };
    ctx.strokeStyle = "#d1d5db";
    ctx.lineWidth = 1;
    ctx.beginPath();
    ctx.moveTo(left, top);
    ctx.lineTo(left, h - bottom);
    ctx.lineTo(w - right, h - bottom);
    ctx.stroke();
    ctx.fillStyle = "#6b7280";
    ctx.font = "10px sans-serif";
    ctx.textAlign = "right";
    ctx.fillText(format(max, unit), left - 4, top + 8);
    ctx.fillText(format(0, unit), left - 4, h - bottom);
    ctx.textAlign = "left";
    ctx.fillText("-15 min", left, h - 4);
    ctx.textAlign = "right";
    ctx.fillText("now", w - right, h - 4);
    keys.forEach(function (k, i) {
      ctx.strokeStyle = COLORS[i % COLORS.length];
      ctx.lineWidth = 1.5;
      ctx.beginPath();
      var open = false;
      points.forEach(function (p) {
        var v = p[k];
        if (v === null || v === undefined || p.t < from) { open = false; return; }
        if (open) ctx.lineTo(x(p.t), y(v)); else ctx.moveTo(x(p.t), y(v));
        open = true;
        drawn++;
      });
      ctx.stroke();
    });
    // What the browser test reads: how many points were drawn.
    canvas.setAttribute("data-points", String(drawn));
    var latest = document.querySelector('[data-latest="' + keys.join(",") + '"]');
    if (latest) {
      var last = points.length ? points[points.length - 1] : null;
      latest.textContent = last ? keys.map(function (k) { return format(last[k], unit); }).join(" / ") : "";
    }
  }

  function charts() {
    var canvases = document.querySelectorAll("canvas[data-series]");
    if (!canvases.length) return;
    var interval = 5000;
    function tick() {
      fetch(base + "/series.json", { credentials: "same-origin", cache: "no-store" })
        .then(function (r) {
          // Signed out or expired: stop polling (each poll would be a refused authentication).
          if (r.status === 401) { window.location.assign(base + "/sign-in"); throw new Error("401"); }
          if (!r.ok) throw new Error(String(r.status));
          return r.json();
        })
        .then(function (data) {
          // At most every 2 s: each poll is an authenticated request.
          interval = Math.max(2000, data.interval_s * 1000);
          canvases.forEach(function (c) { draw(c, data.points, data.window_s); });
          body.setAttribute("data-charts", "drawn");
        })
        .then(function () { setTimeout(tick, interval); },
              function (e) {
                body.setAttribute("data-charts", "error");
                if (String(e.message) !== "401") setTimeout(tick, interval);
              });
    }
    tick();
  }

  function refresh() {
    var n = parseInt(body.getAttribute("data-refresh") || "", 10);
    if (!(n > 0)) return;
    function later() {
      // Never while the operator is typing into a form.
      var a = document.activeElement;
      var typing = a && /^(INPUT|TEXTAREA|SELECT)$/.test(a.tagName);
      var open = document.querySelector("details[open]");
      if (typing || open) setTimeout(later, n * 1000); else window.location.reload();
    }
    setTimeout(later, n * 1000);
  }

  function adminOnly() {
    document.querySelectorAll("[data-admin-only]").forEach(function (b) {
      b.classList.add("admin-only");
    });
  }

  charts();
  refresh();
  adminOnly();
})();
