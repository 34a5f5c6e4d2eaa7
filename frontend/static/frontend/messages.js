// The messages page: refresh the table every few seconds while "live" is ticked, so new
// payloads and finished runs show up without reloading (and without losing the filters).
(function () {
  const rows = document.getElementById("message-rows");
  const live = document.getElementById("live");
  if (!rows || !live) return;
  async function refresh() {
    if (!live.checked || document.hidden) return;
    try {
      const answer = await fetch(rows.dataset.source, { headers: { "X-Requested-With": "fetch" } });
      if (answer.ok) rows.innerHTML = await answer.text();
    } catch (error) {
      // The server is away for a moment (a restart): the next tick tries again.
    }
  }
  setInterval(refresh, 3000);
})();
