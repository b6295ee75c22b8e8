// Live window bars: the overview holds a WebSocket on which the server says "usage-changed" when a
// request of the user's was counted; htmx then fetches the bars again (hx-trigger "usage-changed").
// Its polling stays as the fallback while the socket is down. Loaded on every page: with hx-boost a
// visit to the overview swaps the body in, so the socket follows the panel's presence.
"use strict";

(() => {
  let socket = null;
  let retryDelay = 1000;

  const panel = () => document.querySelector("[data-live-usage]");

  function markState(state) {
    const target = panel();
    if (target) target.dataset.liveState = state;
  }

  function connect() {
    const target = panel();
    if (!target) return;
    if (socket) {
      markState(socket.readyState === WebSocket.OPEN ? "open" : "connecting");
      return;
    }
    const url = new URL(target.dataset.liveUsage, window.location.href);
    url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
    const mine = new WebSocket(url);
    socket = mine;
    markState("connecting");
    mine.addEventListener("open", () => {
      retryDelay = 1000;
      markState("open");
    });
    mine.addEventListener("message", () => {
      const current = panel();
      if (current) htmx.trigger(current, "usage-changed");
    });
    mine.addEventListener("close", (event) => {
      if (socket !== mine) return;
      socket = null;
      markState("closed");
      // 4401: not logged in (any more); the page keeps polling and the next page load tries again.
      if (event.code === 4401 || !panel()) return;
      setTimeout(connect, retryDelay);
      retryDelay = Math.min(retryDelay * 2, 30000);
    });
  }

  function followThePanel() {
    if (socket && !panel()) {
      const leaving = socket;
      socket = null;
      leaving.close(1000);
    }
    connect();
  }

  document.addEventListener("DOMContentLoaded", connect);
  document.addEventListener("htmx:afterSettle", followThePanel);
})();
