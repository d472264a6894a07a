// Live tail of a running run's output.log on the run page (SPEC §12).
// The page works without it (it then reloads itself every 10 s). New bytes
// come from <run>/output.json?offset=N, already decoded and with control
// characters escaped by the server; they are added as text nodes only.
(function () {
  "use strict";
  var pre = document.getElementById("output");
  if (!pre || !pre.dataset.tail) {
    return;
  }
  var url = pre.dataset.tail;
  var offset = Number(pre.dataset.offset) || 0;
  var status = document.getElementById("tail-status");
  var failures = 0;

  function nearBottom() {
    return window.innerHeight + window.scrollY >= document.body.scrollHeight - 60;
  }

  function say(text) {
    if (status) {
      status.textContent = text;
    }
  }

  function poll() {
    fetch(url + "?offset=" + offset, {
      headers: {"Accept": "application/json"},
      credentials: "same-origin",
      cache: "no-store"
    }).then(function (response) {
      if (!response.ok) {
        throw new Error("HTTP " + response.status);
      }
      return response.json();
    }).then(function (chunk) {
      failures = 0;
      if (chunk.text) {
        var follow = nearBottom();
        pre.appendChild(document.createTextNode(chunk.text));
        if (follow) {
          window.scrollTo(0, document.body.scrollHeight);
        }
      }
      offset = chunk.next;
      pre.dataset.offset = String(offset);
      if (chunk.more) {
        setTimeout(poll, 0);
      } else if (chunk.running) {
        say("live");
        setTimeout(poll, 1000);
      } else {
        say("ended: " + (chunk.outcome || "?"));
        setTimeout(function () { window.location.reload(); }, 1000);
      }
    }).catch(function () {
      failures += 1;
      say("reconnecting");
      setTimeout(poll, Math.min(30000, 1000 * Math.pow(2, failures)));
    });
  }

  setTimeout(poll, 1000);
}());
