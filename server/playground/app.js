// The WSD Server playground: a client of the public API like any other (no build step).
"use strict";

const $ = (selector, root = document) => root.querySelector(selector);
const SVG = "http://www.w3.org/2000/svg";
const KEY_STORAGE = "wsd-playground-api-key";
let modelIds = [];  // /v1/models lists the WSD model first, then the pilot and the base
const wsdId = () => modelIds[0] || "wsd";

function headers() {
  const key = $("#api-key").value.trim();
  const result = { "content-type": "application/json" };
  if (key) result.authorization = `Bearer ${key}`;
  return result;
}

function setStatus(message, isError = false) {
  const status = $("#status");
  status.textContent = message;
  status.classList.toggle("error", isError);
}

async function loadModels() {
  $("#api-key").value = sessionStorage.getItem(KEY_STORAGE) || "";
  const response = await fetch("/v1/models", { headers: headers() });
  if (response.status === 401) {
    $("#key-row").hidden = false;
    setStatus("This server needs an API key: enter it above, then send.");
    return;
  }
  const listing = await response.json();
  modelIds = listing.data.map((model) => model.id);
  const select = $("#model");
  select.replaceChildren(...modelIds.map((id) => new Option(id, id)));
  setStatus(`Models: ${modelIds.join(", ")}.`);
}

function numberOrNull(id) {
  const value = $(id).value.trim();
  return value === "" ? null : Number(value);
}

function requestBody(model, isWsd) {
  const body = {
    model,
    messages: [{ role: "user", content: $("#prompt").value }],
    max_tokens: numberOrNull("#max-tokens") ?? 96,
    temperature: numberOrNull("#temperature") ?? 0,
    stream: true,
    stream_options: { include_usage: true },
  };
  if (isWsd) {
    const wsd = { return_scores: true };
    for (const [field, id] of [["threshold", "#threshold"], ["window", "#window"],
      ["draft_max_tokens", "#draft-max-tokens"]]) {
      const value = numberOrNull(id);
      if (value !== null) wsd[field] = value;
    }
    body.wsd = wsd;
  }
  return body;
}

async function* serverSentEvents(response) {
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  for (;;) {
    const { done, value } = await reader.read();
    if (done) return;
    buffer += decoder.decode(value, { stream: true });
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const event = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      for (const line of event.split("\n")) {
        if (!line.startsWith("data: ")) continue;
        const data = line.slice(6);
        if (data === "[DONE]") return;
        yield JSON.parse(data);
      }
    }
  }
}

async function errorMessage(response) {
  try {
    const body = await response.json();
    return body.error ? body.error.message : `HTTP ${response.status}`;
  } catch {
    return `HTTP ${response.status}`;
  }
}

async function answer(model, article) {
  const isWsd = model === wsdId();
  const started = performance.now();
  let firstAt = null;
  let text = "";
  let wsd = null;
  let usage = null;
  const textBox = $(".text", article);
  const response = await fetch("/v1/chat/completions", {
    method: "POST", headers: headers(), body: JSON.stringify(requestBody(model, isWsd)),
  });
  if (!response.ok) throw new Error(await errorMessage(response));
  for await (const chunk of serverSentEvents(response)) {
    if (chunk.error) throw new Error(chunk.error.message);
    if (chunk.usage) usage = chunk.usage;
    for (const choice of chunk.choices || []) {
      const piece = (choice.delta && choice.delta.content) || "";
      if (piece && firstAt === null) firstAt = performance.now();
      text += piece;
      if (choice.wsd) wsd = choice.wsd;
    }
    textBox.textContent = text;
    showFigures(article, started, firstAt, usage, false);
  }
  showFigures(article, started, firstAt, usage, true);
  article.dataset.text = text;
  if (wsd) showSwitch(article, text, wsd);
  article.dataset.done = "true";
}

function showFigures(article, started, firstAt, usage, done) {
  const now = performance.now();
  const parts = [];
  if (firstAt !== null) parts.push(`time to first token ${((firstAt - started) / 1000).toFixed(2)} s`);
  if (done && usage) {
    const seconds = (now - started) / 1000;
    parts.push(`${usage.completion_tokens} tokens in ${seconds.toFixed(2)} s`);
    parts.push(`${(usage.completion_tokens / seconds).toFixed(1)} tokens/s`);
  }
  $(".figures", article).textContent = parts.join(" · ") || "waiting for the first token…";
}

function showSwitch(article, text, wsd) {
  const cut = Math.min(wsd.prefix_chars, text.length);
  const pilot = document.createElement("span");
  pilot.className = "pilot";
  pilot.textContent = text.slice(0, cut);
  const marker = document.createElement("span");
  marker.className = "marker";
  marker.textContent = "▍";
  marker.setAttribute("role", "img");
  marker.setAttribute("aria-label", `switch: ${wsd.reason || "none"}`);
  marker.title = `switch (${wsd.reason || "no switch"})`;
  const base = document.createElement("span");
  base.className = "base";
  base.textContent = text.slice(cut);
  $(".text", article).replaceChildren(pilot, marker, base);
  article.dataset.prefixChars = String(cut);
  article.dataset.reason = wsd.reason || "";
  $(".legend", article).hidden = false;
  $(".switch-note", article).textContent = wsd.reason
    ? `Switch after draft token ${wsd.accept_index} (reason: ${wsd.reason}); `
      + `${cut} characters from the pilot, ${text.length - cut} from the base model.`
    : "No switch: the answer ended inside the pilot's draft (reason: none).";
  if (wsd.scored_tokens && wsd.scored_tokens.length) drawChart(article, wsd);
}

function svgElement(name, attributes, parent) {
  const element = document.createElementNS(SVG, name);
  for (const [key, value] of Object.entries(attributes)) element.setAttribute(key, value);
  parent.appendChild(element);
  return element;
}

function drawChart(article, wsd) {
  const tokens = wsd.scored_tokens;
  const width = 640, height = 220, left = 36, right = 10, top = 10, bottom = 24;
  const x = (i) => left + (tokens.length === 1 ? 0.5 : i / (tokens.length - 1))
    * (width - left - right);
  const y = (p) => top + (1 - p) * (height - top - bottom);
  const svg = document.createElementNS(SVG, "svg");
  svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
  svg.setAttribute("role", "img");
  svg.setAttribute("aria-label", `Base probabilities of ${tokens.length} scored draft tokens`);
  svgElement("line", { class: "axis", x1: left, x2: width - right, y1: y(0), y2: y(0) }, svg);
  svgElement("line", { class: "axis", x1: left, x2: left, y1: y(0), y2: y(1) }, svg);
  for (const p of [0, 0.5, 1]) {
    svgElement("text", { x: 4, y: y(p) + 4 }, svg).textContent = p.toFixed(1);
  }
  svgElement("text", { x: left, y: height - 6 }, svg).textContent = "scored draft tokens →";
  svgElement("line", {
    class: "threshold", x1: left, x2: width - right, y1: y(wsd.threshold), y2: y(wsd.threshold),
  }, svg);
  if (wsd.reason === "threshold" && wsd.accept_index !== null
      && wsd.accept_index < tokens.length) {
    const at = x(wsd.accept_index);
    svgElement("line", { class: "switch", x1: at, x2: at, y1: y(0), y2: y(1) }, svg);
  }
  const means = tokens.map((t, i) => (t.window_mean === null ? null : `${x(i)},${y(t.window_mean)}`))
    .filter((point) => point !== null);
  if (means.length) svgElement("polyline", { class: "mean", points: means.join(" ") }, svg);
  tokens.forEach((token, i) => {
    const point = svgElement("circle", {
      class: "point", cx: x(i), cy: y(token.probability), r: 4, tabindex: 0,
      "data-index": i,
    }, svg);
    const mean = token.window_mean === null ? "" : `, window mean ${token.window_mean.toFixed(3)}`;
    svgElement("title", {}, point).textContent =
      `#${i} ${JSON.stringify(token.token)}: probability ${token.probability.toFixed(3)}${mean}`;
  });
  $(".chart-box", article).replaceChildren(svg);
  $(".chart", article).hidden = false;
}

function newAnswer(model) {
  const article = $("#answer-template").content.firstElementChild.cloneNode(true);
  article.dataset.model = model;
  $(".model-name", article).textContent = model;
  $("#answers").appendChild(article);
  return article;
}

async function send(event) {
  event.preventDefault();
  sessionStorage.setItem(KEY_STORAGE, $("#api-key").value.trim());
  if (!modelIds.length) await loadModels();
  if (!modelIds.length) return;
  const compare = $("#compare").checked;
  const models = compare ? modelIds.slice(0, 3) : [$("#model").value];
  $("#answers").replaceChildren();
  $("#answers").classList.toggle("compare", compare);
  $("#send").disabled = true;
  setStatus(`Asking ${models.join(", ")}…`);
  const results = await Promise.allSettled(models.map((model) => answer(model, newAnswer(model))));
  const failed = results.filter((result) => result.status === "rejected");
  $("#send").disabled = false;
  if (failed.length) setStatus(failed.map((result) => result.reason.message).join("; "), true);
  else setStatus("Done.");
}

function showWsdKnobs() {
  const isWsd = $("#compare").checked || $("#model").value === wsdId();
  for (const knob of document.querySelectorAll(".wsd-only")) knob.hidden = !isWsd;
}

document.addEventListener("DOMContentLoaded", () => {
  $("#ask").addEventListener("submit", send);
  $("#prompt").addEventListener("keydown", (event) => {
    if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) $("#ask").requestSubmit();
  });
  $("#model").addEventListener("change", showWsdKnobs);
  $("#compare").addEventListener("change", showWsdKnobs);
  loadModels().then(showWsdKnobs).catch((error) => setStatus(error.message, true));
});
