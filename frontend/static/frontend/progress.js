// Progress bars of running flow runs: every two seconds, ask /runs/progress for the runs still
// running on this page and update their bar, share of the payload read, bytes, record counts
// and status in place.
(function () {
  const table = document.querySelector("table.runs");
  if (!table) return;
  function running() {
    return Array.from(table.querySelectorAll("tr.run[data-status=running]"));
  }
  function size(bytes) {
    if (bytes < 1024) return bytes + " bytes";
    if (bytes < 1024 * 1024) return (bytes / 1024).toFixed(1) + " KB";
    return (bytes / 1024 / 1024).toFixed(1) + " MB";
  }
  function part(row, name, text) {
    const node = row.querySelector("[data-part=" + name + "]");
    if (node && text !== undefined) node.textContent = text;
    return node;
  }
  function show(row, run) {
    const bar = row.querySelector("[data-part=bar]");
    if (run.finished) {
      bar.max = 1; bar.value = 1;
    } else if (run.total_bytes) {
      bar.max = run.total_bytes; bar.value = Math.min(run.bytes_read, run.total_bytes);
    }
    part(row, "percent", run.percent === null || run.finished ? "" : run.percent + "%");
    part(row, "bytes", size(run.bytes_read) + (run.total_bytes ? " of " + size(run.total_bytes) : ""));
    part(row, "records", run.records_in + " / " + run.records_out + " / " + run.records_rejected);
    part(row, "status", run.status).className = "status status-" + run.status;
    part(row, "error", run.error);
    row.dataset.status = run.status;
  }
  async function poll() {
    const rows = running();
    if (!rows.length || document.hidden) return;
    const ids = rows.map((row) => row.dataset.run).join(",");
    try {
      const answer = await fetch(table.dataset.progress + "?ids=" + ids, { headers: { "X-Requested-With": "fetch" } });
      if (!answer.ok) return;
      const data = await answer.json();
      for (const run of data.runs) {
        const row = table.querySelector("tr.run[data-run='" + run.id + "']");
        if (row) show(row, run);
      }
    } catch (error) {
      // The server is away for a moment: the next tick tries again.
    }
  }
  setInterval(poll, 2000);
})();
