// The review page. Students' answers are untrusted: every piece of text reaches the page through
// textContent or createTextNode, never innerHTML, and the page is served with a Content-Security-Policy
// that allows only this script, so markup inside an answer stays text.
"use strict";
const $ = (id) => document.getElementById(id);
const STATUSES = ["covered", "partial", "missing", "contradicted"];
let nextCursor = null;

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) node.setAttribute(name, value);
  for (const child of children) node.append(child);  // strings become text nodes
  return node;
}

function headers() {
  const key = $("api-key").value.trim();
  const h = {"content-type": "application/json"};
  if (key) h["authorization"] = "Bearer " + key;
  return h;
}

async function call(method, url, body) {
  const response = await fetch(url, {method, headers: headers(), body: body === undefined ? undefined : JSON.stringify(body)});
  const data = await response.json().catch(() => ({}));
  if (!response.ok) throw new Error((data.error && data.error.message) || ("HTTP " + response.status));
  return data;
}

// The answer as text nodes with <mark> around each key point's evidence (overlaps: the first span wins).
function highlighted(answer, keyPoints) {
  const spans = keyPoints
    .filter((kp) => kp.evidence && (kp.status === "covered" || kp.status === "partial"))
    .map((kp) => ({start: kp.evidence.start, end: kp.evidence.end, status: kp.status, id: kp.id}))
    .concat(keyPoints.filter((kp) => kp.contradiction).map((kp) => ({
      start: kp.contradiction.start, end: kp.contradiction.end, status: "contradicted", id: kp.id})))
    .sort((a, b) => a.start - b.start);
  const box = el("div", {class: "answer"});
  let at = 0;
  for (const s of spans) {
    if (s.start < at) continue;
    box.append(answer.slice(at, s.start));
    box.append(el("mark", {class: s.status, title: s.id}, answer.slice(s.start, s.end)));
    at = s.end;
  }
  box.append(answer.slice(at));
  return box;
}

function keyPointRow(kp, chosen) {
  const toggles = el("span", {class: "toggles"});
  for (const status of STATUSES) {
    const button = el("button", {type: "button", "data-status": status, "aria-pressed": "false"}, status);
    button.addEventListener("click", () => {
      const on = button.getAttribute("aria-pressed") !== "true";
      for (const b of toggles.children) b.setAttribute("aria-pressed", "false");
      button.setAttribute("aria-pressed", String(on));
      if (on) chosen[kp.id] = status; else delete chosen[kp.id];
    });
    toggles.append(button);
  }
  const evidence = kp.evidence ? "“" + kp.evidence.text + "”" : "no evidence";
  return el("div", {class: "kp " + kp.status, "data-kp": kp.id},
    el("div", {}, el("b", {}, kp.id), " — grader: " + kp.status + " (" + kp.similarity.toFixed(2) + ")"),
    el("div", {class: "meta"}, kp.text),
    el("div", {class: "meta"}, evidence),
    toggles);
}

function card(item) {
  const chosen = {};
  const score = el("input", {type: "number", class: "score", min: "0", max: String(item.max_score), step: "0.25",
                             value: String(item.score)});
  const comment = el("textarea", {class: "comment", placeholder: "comment (optional)"});
  const submit = el("button", {type: "button", class: "submit"}, "Submit review");
  const message = el("span", {class: "message", role: "status"});
  const box = el("div", {class: "item", "data-id": item.id},
    el("div", {class: "meta"}, item.rubric_id + " · grader " + item.score + " / " + item.max_score +
       " · confidence " + item.confidence.toFixed(2)),
    el("div", {class: "flags"}, item.flags.join(", ")),
    highlighted(item.answer, item.key_points),
    ...item.key_points.map((kp) => keyPointRow(kp, chosen)),
    el("label", {}, "Your score ", score, " / " + item.max_score),
    comment, submit, " ", message);
  submit.addEventListener("click", async () => {
    message.className = "message";
    message.textContent = "saving…";
    try {
      const body = {score: Number(score.value), key_points: chosen};
      if (comment.value.trim()) body.comment = comment.value.trim();
      const stored = await call("POST", "/v1/results/" + encodeURIComponent(item.id) + "/review", body);
      message.className = "message done";
      message.textContent = "reviewed by " + stored.review.reviewer;
      box.classList.add("reviewed");
    } catch (err) {
      message.className = "message error";
      message.textContent = err.message;
    }
  });
  return box;
}

async function load(append) {
  const params = new URLSearchParams({limit: "20", strategy: $("strategy").value});
  const rubric = $("rubric-filter").value.trim();
  if (rubric) params.set("rubric_id", rubric);
  if (append && nextCursor) params.set("cursor", nextCursor);
  $("status").className = "";
  $("status").textContent = "loading…";
  try {
    const page = await call("GET", "/v1/review?" + params);
    if (!append) $("queue").replaceChildren();
    for (const item of page.items) $("queue").append(card(item));
    nextCursor = page.next_cursor;
    $("more").hidden = !nextCursor;
    $("status").textContent = $("queue").children.length ? "" : "nothing to review";
  } catch (err) {
    $("status").className = "error";
    $("status").textContent = err.message;
  }
}

document.addEventListener("DOMContentLoaded", () => {
  $("api-key").value = sessionStorage.getItem("grader-api-key") || "";
  $("api-key").addEventListener("change", () => sessionStorage.setItem("grader-api-key", $("api-key").value));
  $("settings").addEventListener("submit", (event) => { event.preventDefault(); load(false); });
  $("more").addEventListener("click", () => load(true));
  load(false);
});
