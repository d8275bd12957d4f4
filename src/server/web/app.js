/* global document, sessionStorage, performance, TextDecoderStream, AbortController */
// The daemon's own page: no framework, no build step, nothing loaded from elsewhere (see docs/api.md "Web page").
const KEY = "tabagent-api-key";
const $ = (id) => document.getElementById(id);
const state = { stats: null, history: [], controller: null, needKey: false };

function bytes(n) {
  if (n === null || n === undefined) return "–";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) ((n /= 1024), i++);
  return `${n.toFixed(i === 0 ? 0 : 1)} ${units[i]}`;
}

function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(props)) {
    if (k === "class") node.className = v;
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v);
  }
  for (const c of children) node.append(c);
  return node;
}

function say(text) {
  $("status").textContent = text;
}

function authHeaders() {
  const key = sessionStorage.getItem(KEY);
  return key ? { authorization: `Bearer ${key}` } : {};
}

/** fetch with the session's key; a 401 asks for a key and throws. */
async function api(path, init = {}) {
  const res = await fetch(path, { ...init, headers: { ...authHeaders(), ...(init.headers ?? {}) } });
  if (res.status === 401) {
    askForKey(sessionStorage.getItem(KEY) ? "That key was refused; enter another." : null);
    throw new Error("an API key is needed");
  }
  return res;
}

async function apiJson(path, init) {
  const res = await api(path, init);
  const body = await res.json().catch(() => null);
  if (!res.ok) throw new Error(body?.error?.message ?? `${res.status} ${res.statusText}`);
  return body;
}

function askForKey(message) {
  if (!state.needKey) {
    state.needKey = true;
    $("key-form").hidden = false;
    $("api-key").focus();
  }
  if (message) say(message);
}

$("key-form").addEventListener("submit", (e) => {
  e.preventDefault();
  sessionStorage.setItem(KEY, $("api-key").value.trim());
  $("api-key").value = "";
  $("key-form").hidden = true;
  state.needKey = false;
  say("Key saved for this tab.");
  void refresh();
});

function cell(...children) {
  return el("td", {}, ...children);
}

async function act(id, action) {
  say(`${action === "load" ? "Loading" : "Unloading"} ${id}…`);
  try {
    await apiJson(`/api/models/${encodeURIComponent(id)}/${action}`, { method: "POST" });
    say(`${id}: ${action === "load" ? "loaded" : "unloaded"}.`);
  } catch (err) {
    say(`${id}: ${err.message}`);
  }
  void refresh();
}

function renderModels(models) {
  const rows = models.map((m) => {
    const engine = el("td", {}, m.engine ?? "none");
    engine.append(el("span", { class: "why" }, m.engine_reason ?? m.warnings.at(-1) ?? ""));
    const actions = el("td");
    const local = m.engine !== null && m.engine !== "upstream" && !m.alias_of && !m.download;
    if (local) {
      const loaded = m.state === "loaded" || m.state === "loading";
      const label = loaded ? "Unload" : "Load";
      actions.append(el("button", { type: "button", "aria-label": `${label} ${m.id}`, onclick: () => act(m.id, loaded ? "unload" : "load") }, label));
    }
    const state = m.download ? `${m.state} ${bytes(m.download.done_bytes)} / ${bytes(m.download.total_bytes)}` : m.state;
    return el("tr", {}, el("th", { scope: "row" }, m.id), cell(m.format), cell(m.task ?? "–"), engine, cell(state), cell(bytes(m.size_bytes)), actions);
  });
  $("models").replaceChildren(...(rows.length ? rows : [el("tr", {}, el("td", { colspan: "7" }, "no models"))]));
  const picker = $("chat-model");
  const current = picker.value;
  const chat = models.filter((m) => m.task === "chat" || m.engine === "upstream");
  const ids = chat.map((m) => m.id);
  if (ids.join("\n") !== [...picker.options].map((o) => o.value).join("\n")) {
    picker.replaceChildren(...chat.map((m) => el("option", { value: m.id }, m.id)));
    if (ids.includes(current)) picker.value = current;
  }
}

function renderPs(ps) {
  const rows = ps.models.map((m) =>
    el("tr", {}, el("th", { scope: "row" }, m.id), cell(m.engine ?? "–"), cell(m.state), cell(String(m.running)), cell(String(m.queued)), cell(bytes(m.memory_bytes))),
  );
  $("loaded").replaceChildren(...(rows.length ? rows : [el("tr", {}, el("td", { colspan: "6" }, "none"))]));
  $("inflight").textContent = String(ps.inflight.running + ps.inflight.queued);
  const budget = ps.memory.budget_bytes ? ` of ${bytes(ps.memory.budget_bytes)}` : "";
  $("loaded-memory").textContent = `${bytes(ps.memory.loaded_bytes)}${budget}`;
}

function renderStats(stats) {
  const prev = state.stats;
  state.stats = { ...stats, at: performance.now() };
  if (stats.requests_total === null) {
    for (const id of ["rate-requests", "rate-prompt", "rate-completion"]) $(id).textContent = "metrics off";
    return;
  }
  if (!prev) return;
  const secs = (state.stats.at - prev.at) / 1000;
  const rate = (k) => (secs > 0 ? Math.max(0, (stats[k] - prev[k]) / secs).toFixed(1) : "–");
  $("rate-requests").textContent = rate("requests_total");
  $("rate-prompt").textContent = rate("prompt_tokens_total");
  $("rate-completion").textContent = rate("completion_tokens_total");
}

async function refresh() {
  try {
    const [models, ps, stats] = await Promise.all([apiJson("/api/models"), apiJson("/api/ps"), apiJson("/api/stats")]);
    renderModels(models.models);
    renderPs(ps);
    renderStats(stats);
    if (!document.body.dataset.ready) performance.mark("tabagent-ready"); // the page's time to interactive (bench/webBench.ts)
    document.body.dataset.ready = "true";
  } catch (err) {
    if (!state.needKey) say(`Cannot reach the daemon: ${err.message}`);
  }
}

function poll() {
  if (!document.hidden && !state.needKey) void refresh();
  setTimeout(poll, 2000);
}

function addTurn(role, text) {
  const li = el("li", { class: role }, el("span", { class: "who" }, role === "user" ? "You" : "Model"));
  const body = el("span", { class: "text" }, text);
  li.append(body);
  $("transcript").append(li);
  li.scrollIntoView({ block: "nearest" });
  return { li, body };
}

/** Reads an SSE body, calling `onEvent` with each `data:` payload parsed (until [DONE]). */
async function readSse(res, onEvent) {
  const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += value;
    let cut;
    while ((cut = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, cut);
      buffer = buffer.slice(cut + 2);
      for (const line of block.split("\n")) {
        if (!line.startsWith("data: ")) continue;
        const data = line.slice(6);
        if (data === "[DONE]") return;
        onEvent(JSON.parse(data));
      }
    }
  }
}

function setBusy(busy) {
  $("chat-send").disabled = busy;
  $("chat-stop").disabled = !busy;
}

async function send() {
  const text = $("chat-input").value.trim();
  const model = $("chat-model").value;
  if (!text || !model || state.controller) return;
  $("chat-input").value = "";
  state.history.push({ role: "user", content: text });
  addTurn("user", text);
  const answer = addTurn("assistant", "");
  answer.li.setAttribute("aria-busy", "true");
  const controller = new AbortController();
  state.controller = controller;
  setBusy(true);
  $("chat-timing").textContent = "";
  let reply = "";
  try {
    const res = await api("/v1/chat/completions", {
      method: "POST",
      headers: { "content-type": "application/json" },
      signal: controller.signal,
      body: JSON.stringify({
        model,
        messages: state.history,
        stream: true,
        timings: true,
        temperature: Number($("chat-temperature").value),
        max_tokens: Number($("chat-max-tokens").value),
      }),
    });
    if (!res.ok) {
      const body = await res.json().catch(() => null);
      throw new Error(body?.error?.message ?? `${res.status} ${res.statusText}`);
    }
    await readSse(res, (event) => {
      if (event.error) throw new Error(event.error.message);
      const piece = event.choices?.[0]?.delta?.content;
      if (piece) {
        reply += piece;
        answer.body.textContent = reply;
      }
      const t = event.timings;
      if (t)
        $("chat-timing").textContent =
          `${t.predicted_n} tokens, ${t.predicted_per_second.toFixed(1)} tokens/s (prompt ${t.prompt_n} tokens in ${Math.round(t.prompt_ms)} ms)`;
    });
    state.history.push({ role: "assistant", content: reply });
  } catch (err) {
    if (controller.signal.aborted) {
      answer.body.textContent = `${reply} [stopped]`;
      if (reply) state.history.push({ role: "assistant", content: reply });
    } else {
      answer.li.classList.add("error");
      answer.body.textContent = `${reply}${reply ? "\n" : ""}Error: ${err.message}`;
      state.history.pop();
    }
  } finally {
    answer.li.removeAttribute("aria-busy");
    state.controller = null;
    setBusy(false);
    $("chat-input").focus();
  }
}

$("chat-form").addEventListener("submit", (e) => {
  e.preventDefault();
  void send();
});
$("chat-input").addEventListener("keydown", (e) => {
  if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) {
    e.preventDefault();
    void send();
  }
});
$("chat-stop").addEventListener("click", () => state.controller?.abort());
$("chat-clear").addEventListener("click", () => {
  state.controller?.abort();
  state.history = [];
  $("transcript").replaceChildren();
});

poll();
