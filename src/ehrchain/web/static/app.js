// Live notifications (server-sent events) and small conveniences; every page works without it.
"use strict";
(function () {
  const body = document.body;

  function toast(text, level) {
    const box = document.getElementById("toasts");
    if (!box) return;
    const item = document.createElement("div");
    item.className = "toast " + (level || "info");
    item.setAttribute("data-test", "toast");
    item.textContent = text;
    box.prepend(item);
    setTimeout(() => item.classList.add("fade"), 8000);
    setTimeout(() => item.remove(), 9000);
  }

  function showNotice(n) {
    toast(n.text, n.level);
    const count = document.getElementById("notice-count");
    if (count) {
      count.textContent = String(Number(count.textContent || "0") + 1);
      count.hidden = false;
    }
    const list = document.getElementById("notice-list");
    if (list) {
      const empty = list.querySelector(".empty");
      if (empty) empty.remove();
      const li = document.createElement("li");
      li.className = "notice " + n.level;
      li.textContent = n.text;
      list.prepend(li);
    }
    if (window.htmx) window.htmx.trigger(body, "ehr:notice", n);
  }

  if (body.dataset.live === "1" && "EventSource" in window) {
    const source = new EventSource("/events");
    source.addEventListener("open", () => { body.dataset.liveReady = "1"; });
    source.addEventListener("notice", (e) => showNotice(JSON.parse(e.data)));
    source.addEventListener("expired", () => {
      source.close();
      toast("Your session has expired; please sign in again.", "warn");
      setTimeout(() => { window.location.href = "/login"; }, 2500);
    });
  }

  // The new-record form shows the fields of the chosen resource type.
  const type = document.getElementById("resource-type");
  if (type) {
    const sync = () => {
      document.querySelectorAll("[data-for]").forEach((el) => {
        el.hidden = el.dataset.for !== type.value;
      });
    };
    type.addEventListener("change", sync);
    sync();
  }
})();
