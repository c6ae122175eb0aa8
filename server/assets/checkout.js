// khqr-server checkout page: countdown and live status by server-sent events.
// Loaded from this server only (the page's CSP allows nothing else).
(function () {
  "use strict";
  var body = document.body;
  var tran = body.getAttribute("data-tran");
  var expires = Number(body.getAttribute("data-expires"));
  var statusEl = document.getElementById("status");
  var countdown = document.getElementById("countdown");
  var openBakong = document.getElementById("open-bakong");
  var finished = body.getAttribute("data-status") !== "pending";
  var timer = null;

  function pad(n) { return (n < 10 ? "0" : "") + n; }

  function utcTime(ms) {
    var d = new Date(ms);
    return pad(d.getUTCHours()) + ":" + pad(d.getUTCMinutes()) + ":" + pad(d.getUTCSeconds()) + " UTC";
  }

  function show(state, text) {
    statusEl.className = "status " + state;
    statusEl.textContent = text;
    body.setAttribute("data-status", state);
  }

  function tick() {
    var left = Math.max(0, Math.floor((expires - Date.now()) / 1000));
    countdown.textContent = pad(Math.floor(left / 60)) + ":" + pad(left % 60);
    if (left === 0 && !finished) {
      finish({ status: "expired" });
    }
  }

  function finish(s) {
    finished = true;
    if (timer) { clearInterval(timer); }
    if (openBakong) { openBakong.hidden = true; }
    if (s.status === "paid") {
      var text = "Paid " + s.amount + " " + s.currency;
      if (s.paidAtMs) { text += " at " + utcTime(s.paidAtMs); }
      show("paid", text);
      countdown.parentNode.hidden = true;
      if (s.successUrl) {
        setTimeout(function () { window.location.assign(s.successUrl); }, 1500);
      }
    } else {
      show("expired", "Expired: this QR can no longer be paid");
      countdown.textContent = "00:00";
    }
  }

  if (finished) { return; }
  timer = setInterval(tick, 1000);
  tick();
  if (!window.EventSource) { return; }
  var source = new EventSource("/khqr/events/" + encodeURIComponent(tran));
  source.addEventListener("status", function (e) {
    var s;
    try { s = JSON.parse(e.data); } catch (err) { return; }
    if (s.status === "paid" || s.status === "expired") {
      source.close();
      finish(s);
    }
  });
})();
