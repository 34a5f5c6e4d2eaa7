// The mapping editor: source fields on the left (from the format's sample or a captured
// message) as a collapsible tree (nested fields under their parent; toggles are buttons, and
// the arrow keys move through the tree, Left/Right collapse and expand), destination rows on
// the right, each with its type, format, default and required. Map by clicking a source field
// then "Map here", or by dragging it onto a row (or onto "New field"). Every edit refreshes the preview
// (POST /api/v1/flows/{id}/preview with the unsaved mapping, debounced); a mapping that
// cannot compile comes back as a 400 naming the field, shown under that field. "Save
// mapping" PATCHes the flow through the same API (session + CSRF).
(function () {
  const config = JSON.parse(document.getElementById("mapping-config").textContent);
  const csrf = document.querySelector("input[name=csrfmiddlewaretoken]").value;
  const tree = document.getElementById("source-tree");
  const body = document.querySelector("#targets tbody");
  const recordsInput = document.getElementById("records-path");
  const filterInput = document.getElementById("filter-expr");
  const sampleInput = document.getElementById("preview-sample");
  const TYPES = ["", "string", "integer", "decimal", "boolean", "date", "datetime"];
  let selected = null;      // the source path picked by a click
  let lastExpr = null;      // the expression input last edited, for the function list
  let timer = null;
  let extra = {};           // per-row keys of a field the editor does not show (kept as they are)
  const SHOWN = ["target", "source", "expr", "value", "type", "format", "default", "required"];

  // --- source tree ---
  function segments(path) {
    return path.split(".");
  }
  function leaf(path) {
    const parts = segments(path);
    return parts[parts.length - 1].replace("[*]", "");
  }
  // {name, path, field, children}: a node per path segment; `field` when the path itself is mappable.
  function buildTree(paths) {
    const root = { children: new Map() };
    for (const path of paths) {
      let node = root;
      const parts = segments(path);
      parts.forEach((part, index) => {
        if (!node.children.has(part)) {
          node.children.set(part, { name: part, path: parts.slice(0, index + 1).join("."), field: false, children: new Map() });
        }
        node = node.children.get(part);
      });
      node.field = true;
    }
    return root;
  }
  function fieldButton(node) {
    const button = document.createElement("button");
    button.type = "button";
    button.className = "source-field";
    button.draggable = true;
    button.dataset.path = node.path;
    button.textContent = node.name;
    button.title = node.path;
    button.setAttribute("aria-label", "source field " + node.path);
    button.setAttribute("aria-pressed", "false");
    button.addEventListener("click", () => pick(node.path));
    button.addEventListener("dragstart", (event) => {
      event.dataTransfer.setData("text/plain", node.path);
      event.dataTransfer.effectAllowed = "copy";
    });
    return button;
  }
  function drawNodes(nodes, level) {
    const list = document.createElement("ul");
    list.className = "tree-level";
    for (const node of nodes) {
      const item = document.createElement("li");
      item.style.paddingLeft = (level ? 0.8 : 0) + "rem";
      item.dataset.level = level;
      if (node.children.size) {
        const toggle = document.createElement("button");
        toggle.type = "button";
        toggle.className = "toggle";
        toggle.dataset.group = node.path;
        toggle.setAttribute("aria-expanded", "true");
        toggle.setAttribute("aria-label", node.path + " (" + node.children.size + " fields)");
        toggle.textContent = "▾";
        const children = drawNodes(node.children.values(), level + 1);
        children.id = "tree-" + Math.random().toString(36).slice(2);
        toggle.setAttribute("aria-controls", children.id);
        toggle.addEventListener("click", () => expand(toggle, toggle.getAttribute("aria-expanded") !== "true"));
        item.append(toggle, " ");
        if (node.field) item.appendChild(fieldButton(node));
        else {
          const name = document.createElement("span");
          name.className = "group-name";
          name.textContent = node.name;
          item.appendChild(name);
        }
        item.appendChild(children);
      } else {
        item.appendChild(fieldButton(node));
      }
      list.appendChild(item);
    }
    return list;
  }
  function expand(toggle, open) {
    toggle.setAttribute("aria-expanded", open ? "true" : "false");
    toggle.textContent = open ? "▾" : "▸";
    document.getElementById(toggle.getAttribute("aria-controls")).hidden = !open;
  }
  function visibleControls() {
    return Array.from(tree.querySelectorAll("button")).filter((button) => button.offsetParent !== null);
  }
  // Arrow keys: Up/Down to the previous/next visible control, Right expands (or goes into) a
  // group, Left collapses it (or goes up to the parent group's toggle).
  function treeKeys(event) {
    const here = event.target.closest("button");
    if (!here) return;
    const item = here.closest("li");
    const toggle = item.querySelector(":scope > button.toggle");
    const controls = visibleControls();
    const at = controls.indexOf(here);
    let next = null;
    if (event.key === "ArrowDown") next = controls[at + 1];
    else if (event.key === "ArrowUp") next = controls[at - 1];
    else if (event.key === "ArrowRight" && toggle) {
      if (toggle.getAttribute("aria-expanded") !== "true") expand(toggle, true);
      else next = item.querySelector(":scope > ul button");
    } else if (event.key === "ArrowLeft") {
      if (toggle && toggle.getAttribute("aria-expanded") === "true") {
        expand(toggle, false);
        next = toggle;
      } else {
        const parent = item.parentElement.closest("li");
        next = parent ? parent.querySelector(":scope > button.toggle") : null;
      }
    } else return;
    event.preventDefault();
    if (next) next.focus();
  }
  function drawTree() {
    tree.replaceChildren();
    if (!config.source.length) {
      tree.textContent = "No fields found.";
      return;
    }
    tree.appendChild(drawNodes(buildTree(config.source).children.values(), 0));
    tree.addEventListener("keydown", treeKeys);
  }
  function pick(path) {
    selected = selected === path ? null : path;
    for (const button of tree.querySelectorAll("button.source-field")) {
      const on = button.dataset.path === selected;
      button.classList.toggle("selected", on);
      button.setAttribute("aria-pressed", on ? "true" : "false");
    }
    body.classList.toggle("selecting", selected !== null);
  }

  // --- destination rows ---
  function option(value, label, current) {
    const node = document.createElement("option");
    node.value = value;
    node.textContent = label;
    node.selected = value === current;
    return node;
  }
  function addRow(field) {
    field = field || {};
    const kind = "expr" in field ? "expr" : "value" in field ? "value" : "source";
    const row = document.createElement("tr");
    row.className = "target-row";
    const key = Math.random().toString(36).slice(2);
    row.dataset.key = key;
    extra[key] = {};
    for (const name of Object.keys(field)) if (!SHOWN.includes(name)) extra[key][name] = field[name];
    row.innerHTML =
      '<td><input type="text" class="target" aria-label="Target field name"></td>' +
      '<td><select class="kind" aria-label="Mapped from"></select></td>' +
      '<td><input type="text" class="value" aria-label="Source path, expression or value">' +
      '<p class="inline-error" role="alert"></p></td>' +
      '<td><select class="type" aria-label="Type"></select></td>' +
      '<td class="field-options"><input type="text" class="format" aria-label="Format (a strptime pattern for dates)" placeholder="format, e.g. %d/%m/%Y">' +
      '<input type="text" class="default" aria-label="Default when missing or empty" placeholder="default">' +
      '<label><input type="checkbox" class="required"> required</label></td>' +
      '<td><button type="button" class="map-here">Map here</button> <button type="button" class="remove" aria-label="Remove field">✕</button></td>';
    row.querySelector(".target").value = field.target || "";
    const kindSelect = row.querySelector(".kind");
    kindSelect.append(option("source", "source path", kind), option("expr", "expression", kind), option("value", "constant", kind));
    const value = kind === "value" ? JSON.stringify(field.value) : field[kind] || "";
    row.querySelector(".value").value = value === undefined ? "" : value;
    const typeSelect = row.querySelector(".type");
    for (const type of TYPES) typeSelect.append(option(type, type || "as read", field.type || ""));
    row.querySelector(".format").value = field.format || "";
    row.querySelector(".default").value = "default" in field && field.default !== null
      ? (typeof field.default === "string" ? field.default : JSON.stringify(field.default)) : "";
    row.querySelector(".required").checked = Boolean(field.required);
    row.querySelector(".map-here").addEventListener("click", () => {
      if (selected) mapInto(row, selected);
      else row.querySelector(".value").focus();
    });
    row.querySelector(".remove").addEventListener("click", () => {
      row.remove();
      changed();
    });
    row.addEventListener("dragover", (event) => {
      event.preventDefault();
      row.classList.add("drop-over");
    });
    row.addEventListener("dragleave", () => row.classList.remove("drop-over"));
    row.addEventListener("drop", (event) => {
      event.preventDefault();
      row.classList.remove("drop-over");
      mapInto(row, event.dataTransfer.getData("text/plain"));
    });
    row.querySelector(".value").addEventListener("focus", (event) => {
      if (kindSelect.value === "expr") lastExpr = event.target;
    });
    for (const input of row.querySelectorAll("input, select")) input.addEventListener("input", changed);
    row.querySelector(".required").addEventListener("change", changed);
    body.appendChild(row);
    return row;
  }
  function mapInto(row, path) {
    if (!path) return;
    row.querySelector(".kind").value = "source";
    row.querySelector(".value").value = path;
    const target = row.querySelector(".target");
    if (!target.value) target.value = leaf(path);
    pick(null);
    changed();
  }
  // A constant or default as typed: JSON when it reads as JSON (7, true, "x"), else the text.
  function typed(text) {
    try {
      return JSON.parse(text);
    } catch (error) {
      return text;
    }
  }
  function fieldOf(row) {
    const target = row.querySelector(".target").value.trim();
    const kind = row.querySelector(".kind").value;
    const text = row.querySelector(".value").value;
    if (!target && !text.trim()) return null; // an empty row is not part of the mapping yet
    if (!text.trim() && kind !== "value") return null; // a destination field not mapped yet
    const field = { target: target };
    if (kind === "value") {
      field.value = typed(text);
    } else {
      field[kind] = text;
    }
    const type = row.querySelector(".type").value;
    if (type) field.type = type;
    const format = row.querySelector(".format").value.trim();
    if (format) field.format = format;
    const fallback = row.querySelector(".default").value;
    if (fallback.trim()) field.default = typed(fallback);
    if (row.querySelector(".required").checked) field.required = true;
    return Object.assign(field, extra[row.dataset.key] || {});
  }
  function rows() {
    return Array.from(body.querySelectorAll("tr.target-row"));
  }
  function mapping() {
    const result = Object.assign({}, config.mapping);
    delete result.fields;
    const records = recordsInput.value.trim();
    const filter = filterInput.value.trim();
    if (records) result.records = records; else delete result.records;
    if (filter) result.filter = filter; else delete result.filter;
    result.fields = rows().map(fieldOf).filter((field) => field !== null);
    return result;
  }

  // --- errors under the field they name ---
  function clearErrors() {
    for (const node of document.querySelectorAll(".inline-error")) node.textContent = "";
    for (const row of rows()) row.classList.remove("invalid");
  }
  function rowFor(field) {
    const included = rows().filter((row) => fieldOf(row) !== null);
    const indexed = /^fields\[(\d+)\]$/.exec(field);
    if (indexed) return included[Number(indexed[1])] || null;
    return included.find((row) => row.querySelector(".target").value.trim() === field) || null;
  }
  function showError(field, reason) {
    if (field === "records" || field === "filter") {
      document.getElementById("error-" + field).textContent = reason;
      return;
    }
    const row = rowFor(field);
    if (row) {
      row.classList.add("invalid");
      row.querySelector(".inline-error").textContent = reason;
    } else {
      document.getElementById("error-general").textContent = field + ": " + reason;
    }
  }

  // --- preview ---
  function changed() {
    clearTimeout(timer);
    document.getElementById("preview-status").textContent = "(editing…)";
    timer = setTimeout(preview, 400);
  }
  async function call(method, url, data) {
    const answer = await fetch(url, {
      method: method, credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRFToken": csrf, Accept: "application/json" },
      body: JSON.stringify(data),
    });
    let json = {};
    try {
      json = await answer.json();
    } catch (error) {
      json = { detail: "the server answered " + answer.status };
    }
    return { status: answer.status, data: json };
  }
  function pretty(value) {
    return JSON.stringify(value, null, 2);
  }
  async function preview() {
    const status = document.getElementById("preview-status");
    const current = mapping();
    if (!current.fields.length) {
      clearErrors();
      status.textContent = "(map a field to see a preview)";
      return;
    }
    const request = { mapping: current, limit: 10 };
    if (config.message) request.message = config.message;
    else if (sampleInput && sampleInput.value.trim()) request.sample = sampleInput.value;
    status.textContent = "(refreshing…)";
    let answer;
    try {
      answer = await call("POST", "/api/v1/flows/" + config.flow + "/preview", request);
    } catch (error) {
      status.textContent = "(the server cannot be reached)";
      return;
    }
    clearErrors();
    const rejected = document.getElementById("preview-rejected");
    rejected.replaceChildren();
    if (answer.status !== 200) {
      const data = answer.data;
      if (data.field) showError(data.field, data.detail);
      else document.getElementById("error-general").textContent = Object.entries(data).map(([k, v]) => k + ": " + v).join("; ");
      status.textContent = "(not refreshed: fix the error shown)";
      return;
    }
    const data = answer.data;
    document.getElementById("preview-input").textContent = pretty(data.inputs);
    document.getElementById("preview-output").textContent = pretty(data.records);
    for (const problem of data.errors || []) showError(problem.field, "record " + problem.record + ": " + problem.reason);
    if ((data.rejected || []).length) {
      const title = document.createElement("h3");
      title.textContent = "Rejected records";
      const list = document.createElement("ul");
      list.id = "rejected-list";
      for (const item of data.rejected) {
        const li = document.createElement("li");
        li.className = "error";
        li.textContent = "record " + item.index + ": " + item.reason;
        list.appendChild(li);
      }
      rejected.append(title, list);
    }
    status.textContent = "(" + data.records_in + " read, " + data.records.length + " mapped, " + (data.rejected || []).length + " rejected)";
  }

  async function save() {
    const status = document.getElementById("save-status");
    status.textContent = "saving…";
    const answer = await call("PATCH", "/api/v1/flows/" + config.flow + "/", { mapping: mapping() });
    if (answer.status === 200) {
      config.mapping = answer.data.mapping;
      status.textContent = "Saved.";
      return;
    }
    const reasons = answer.data.mapping || answer.data.detail || answer.data;
    const text = Array.isArray(reasons) ? reasons.join("; ") : typeof reasons === "string" ? reasons : JSON.stringify(reasons);
    status.textContent = "Not saved: " + text;
    const named = /^field '([^']+)': (.*)$/.exec(text);
    if (named) showError(named[1], named[2]);
  }

  // --- start ---
  drawTree();
  const fields = (config.mapping && config.mapping.fields) || [];
  for (const field of fields) addRow(field);
  const mapped = new Set(fields.map((field) => field.target));
  for (const target of config.targets) if (!mapped.has(target)) addRow({ target: target });
  if (!body.children.length) addRow();
  recordsInput.value = config.mapping.records || "";
  filterInput.value = config.mapping.filter || "";
  recordsInput.addEventListener("input", changed);
  filterInput.addEventListener("input", changed);
  filterInput.addEventListener("focus", () => (lastExpr = filterInput));
  if (sampleInput) sampleInput.addEventListener("input", changed);
  const newField = document.getElementById("new-field");
  newField.addEventListener("click", () => {
    const row = addRow();
    if (selected) mapInto(row, selected);
    else row.querySelector(".target").focus();
  });
  newField.addEventListener("dragover", (event) => event.preventDefault());
  newField.addEventListener("drop", (event) => {
    event.preventDefault();
    mapInto(addRow(), event.dataTransfer.getData("text/plain"));
  });
  document.getElementById("save-mapping").addEventListener("click", save);
  const functions = document.getElementById("functions");
  for (const signature of config.functions) {
    const button = document.createElement("button");
    button.type = "button";
    button.textContent = signature;
    button.addEventListener("click", () => {
      if (!lastExpr) return;
      const name = signature.slice(0, signature.indexOf("(") + 1);
      const at = lastExpr.selectionStart ?? lastExpr.value.length;
      lastExpr.value = lastExpr.value.slice(0, at) + name + ")" + lastExpr.value.slice(at);
      lastExpr.focus();
      lastExpr.setSelectionRange(at + name.length, at + name.length);
      changed();
    });
    functions.appendChild(button);
  }
  preview();
})();
