// The dashboard's chart: messages per minute per listener over the last hour, one line per
// listener, drawn as inline SVG from /dashboard/data and redrawn every 30 seconds.
(function () {
  const svg = document.getElementById("chart");
  const legend = document.getElementById("chart-legend");
  if (!svg) return;
  const NS = "http://www.w3.org/2000/svg";
  const COLORS = ["#2457c5", "#d9480f", "#2b8a3e", "#862e9c", "#c92a2a", "#0b7285", "#e67700", "#5c940d"];
  function el(name, attrs, text) {
    const node = document.createElementNS(NS, name);
    for (const [key, value] of Object.entries(attrs)) node.setAttribute(key, value);
    if (text !== undefined) node.textContent = text;
    return node;
  }
  function draw(data) {
    const width = svg.clientWidth || 800, height = svg.clientHeight || 220, left = 36, bottom = 22, top = 10;
    svg.setAttribute("viewBox", "0 0 " + width + " " + height);
    svg.replaceChildren();
    legend.replaceChildren();
    const n = data.minutes.length;
    const most = Math.max(1, ...data.series.flatMap((s) => s.counts));
    const x = (i) => left + (i * (width - left - 8)) / Math.max(1, n - 1);
    const y = (v) => top + (height - top - bottom) * (1 - v / most);
    svg.appendChild(el("line", { x1: left, y1: y(0), x2: width - 8, y2: y(0), stroke: "#8a97aa" }));
    svg.appendChild(el("text", { x: 4, y: y(most) + 4, "font-size": 11 }, String(most)));
    svg.appendChild(el("text", { x: 4, y: y(0) + 4, "font-size": 11 }, "0"));
    [0, Math.floor(n / 2), n - 1].forEach((i) => {
      const label = new Date(data.minutes[i]).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
      const anchor = i === 0 ? "start" : i === n - 1 ? "end" : "middle";
      svg.appendChild(el("text", { x: x(i), y: height - 5, "font-size": 11, "text-anchor": anchor }, label));
    });
    data.series.forEach((s, k) => {
      const color = COLORS[k % COLORS.length];
      const points = s.counts.map((v, i) => x(i).toFixed(1) + "," + y(v).toFixed(1)).join(" ");
      svg.appendChild(el("polyline", { points: points, fill: "none", stroke: color, "stroke-width": 2 }));
      const total = s.counts.reduce((a, b) => a + b, 0);
      const item = document.createElement("span");
      item.style.color = color;
      item.textContent = "■ " + s.name + " (" + total + " in the hour)";
      legend.appendChild(item);
    });
    if (!data.series.length) svg.appendChild(el("text", { x: left + 10, y: height / 2, "font-size": 13 }, "No messages in the last hour."));
  }
  async function refresh() {
    if (document.hidden) return;
    try {
      const answer = await fetch(svg.dataset.source, { headers: { "X-Requested-With": "fetch" } });
      if (answer.ok) draw(await answer.json());
    } catch (error) {
      // Try again on the next tick.
    }
  }
  refresh();
  setInterval(refresh, 30000);
})();
