// Live progress (Server-Sent Events, polling as fallback), gallery filters, API forms.
"use strict";

function setText(id, value) { const el = document.getElementById(id); if (el) el.textContent = value; }

function showProgress(p) {
  setText("pct", p.percent.toFixed(1) + "%");
  setText("finished", p.finished); setText("total", p.total);
  setText("rate", p.images_per_second);
  setText("eta", p.eta_seconds === null ? "-" : Math.round(p.eta_seconds) + " s");
  for (const key of ["done", "faces", "no_face", "failed", "pending"]) setText("c-" + key, p[key]);
  const bar = document.getElementById("bar");
  if (bar) { bar.querySelector("span").style.width = p.percent + "%"; bar.setAttribute("aria-valuenow", p.percent); }
  const state = document.getElementById("state");
  if (state && p.empty) { state.textContent = "empty"; state.className = "tag idle"; }
  else if (state && p.complete) { state.textContent = "finished"; state.className = "tag ok"; }
}

function followJob(panel) {
  const job = panel.dataset.job;
  let reloaded = false;
  const finish = () => { if (!reloaded) { reloaded = true; setTimeout(() => location.reload(), 800); } };
  if (window.EventSource) {
    const source = new EventSource(`/api/jobs/${job}/events`);
    source.addEventListener("progress", (e) => showProgress(JSON.parse(e.data)));
    source.addEventListener("done", () => { source.close(); finish(); });
    source.onerror = () => { source.close(); poll(); };
  } else { poll(); }
  function poll() {
    fetch(`/api/jobs/${job}`).then((r) => r.json()).then((p) => {
      showProgress(p);
      if (p.complete) finish(); else setTimeout(poll, 2000);
    }).catch(() => setTimeout(poll, 5000));
  }
}

function gallery(form) {
  form.querySelectorAll("input[name=emotion]").forEach((r) => r.addEventListener("change", () => form.submit()));
  const range = form.querySelector("#min_percent"), out = document.getElementById("min-out");
  if (range) {
    range.addEventListener("input", () => { out.textContent = range.value; });
    range.addEventListener("change", () => form.submit());
  }
}

async function apiForm(form) {
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const button = form.querySelector("button"); button.disabled = true;
    const r = await fetch(form.action, { method: form.dataset.method || "POST" });
    const body = await r.json().catch(() => ({}));
    button.disabled = false;
    if (!r.ok) { alert(body.error || r.statusText); return; }
    location.reload();
  });
}

function submitForm(form) {
  const sources = form.querySelectorAll("[data-source]");
  const pick = () => {
    const chosen = form.querySelector("input[name=source]:checked").value;
    sources.forEach((s) => { s.hidden = s.dataset.source !== chosen; });
  };
  form.querySelectorAll("input[name=source]").forEach((r) => r.addEventListener("change", pick));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const error = document.getElementById("submit-error"); error.textContent = "";
    const data = new FormData(form), source = data.get("source");
    const options = { name: data.get("name") || null, backend: data.get("backend"),
      batch_size: Number(data.get("batch_size")) || null, force: data.get("force") === "on" };
    let request;
    if (source === "paths") {
      const paths = String(data.get("paths") || "").split("\n").map((s) => s.trim()).filter(Boolean);
      request = fetch("/api/jobs", { method: "POST", headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ paths, ...options }) });
    } else {
      const upload = new FormData();
      for (const file of form.querySelector("input[type=file]").files) upload.append("files", file);
      for (const [key, value] of Object.entries(options)) if (value !== null && value !== false) upload.append(key, value);
      request = fetch("/api/jobs/upload", { method: "POST", body: upload });
    }
    const button = form.querySelector("button[type=submit]"); button.disabled = true; button.textContent = "Starting…";
    try {
      const r = await request, body = await r.json();
      if (!r.ok) throw new Error(body.error || r.statusText);
      location.href = `/jobs/${body.job}`;
    } catch (e) {
      error.textContent = e.message; button.disabled = false; button.textContent = "Start";
    }
  });
}

document.addEventListener("DOMContentLoaded", () => {
  const panel = document.getElementById("progress");
  if (panel && panel.dataset.complete !== "true") followJob(panel);
  const filters = document.getElementById("filters"); if (filters) gallery(filters);
  document.querySelectorAll("form[data-api]").forEach(apiForm);
  const submit = document.getElementById("submit-form"); if (submit) submitForm(submit);
  // "back" returns to the filtered gallery the photo was opened from (no inline script: CSP)
  document.querySelectorAll("a[data-back]").forEach((a) => a.addEventListener("click", (e) => {
    if (history.length > 1) { e.preventDefault(); history.back(); }
  }));
});
