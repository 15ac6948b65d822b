// The service's page for people: submit two sets of files, follow jobs, read their metrics.
// Everything the server sends is inserted as text (textContent), never as HTML.
"use strict";

const $ = (id) => document.getElementById(id);
let selected = null;

function headers() {
  const token = sessionStorage.getItem("token") || "";
  return token ? { Authorization: "Bearer " + token } : {};
}

async function api(path, options = {}) {
  const response = await fetch(path, { ...options, headers: { ...headers(), ...(options.headers || {}) } });
  const body = await response.json().catch(() => ({ error: "the server did not answer JSON" }));
  if (!response.ok) {
    throw new Error(body.error || ("HTTP " + response.status));
  }
  return body;
}

function say(id, text, isError) {
  $(id).textContent = text;
  $(id).className = isError ? "error" : "";
}

function cell(row, text, className) {
  const td = row.insertCell();
  td.textContent = text;
  if (className) td.className = className;
}

function progressText(job) {
  const p = job.progress;
  if (!p) return job.status === "running" ? "starting" : "";
  return p.phase + ": " + p.done + " / " + p.total + " " + p.unit;
}

async function refreshJobs() {
  try {
    const listing = await api("/jobs?limit=50");
    const body = $("jobs");
    body.replaceChildren();
    for (const job of listing.jobs) {
      const row = body.insertRow();
      row.dataset.job = job.job_id;
      cell(row, job.job_id.slice(0, 8));
      cell(row, job.status, job.status);
      cell(row, job.evaluation_mode || "");
      cell(row, job.created_at.replace("T", " ").slice(0, 19));
      cell(row, progressText(job));
      row.addEventListener("click", () => { selected = job.job_id; showJob(); });
    }
    say("jobs-message", listing.total + " job(s)");
  } catch (error) {
    say("jobs-message", error.message, true);
  }
  if (selected) showJob();
}

async function showJob() {
  let job;
  try {
    job = await api("/jobs/" + encodeURIComponent(selected));
  } catch (error) {
    say("jobs-message", error.message, true);
    $("job").hidden = true;
    selected = null;
    return;
  }
  $("job").hidden = false;
  $("job-id").textContent = job.job_id;
  const progress = progressText(job);
  $("job-status").textContent = job.status + (progress ? " (" + progress + ")" : "")
    + (job.cancel_requested ? ", cancelling" : "") + (job.error ? ": " + job.error : "");
  $("job-status").className = job.status;
  const metrics = $("job-metrics");
  metrics.replaceChildren();
  for (const [key, value] of Object.entries(job.metrics || {})) {
    const row = metrics.insertRow();
    cell(row, key);
    cell(row, value === null ? "null: " + ((job.unavailable || {})[key] || "not computed")
      : Array.isArray(value) ? value.map((v) => v === null ? "null" : v.toPrecision(6)).join(", ") : String(value));
  }
  const problems = $("job-problems");
  problems.replaceChildren();
  for (const problem of job.problems || []) {
    const item = document.createElement("li");
    item.textContent = (problem.side ? problem.side + "/" : "") + problem.file + ": " + problem.reason
      + (problem.action ? " (" + problem.action + ")" : "");
    problems.appendChild(item);
  }
  if (job.status === "completed" && plotsShown !== job.job_id) showPlots(job.job_id);
  if (job.status !== "completed") { $("job-plots").replaceChildren(); say("plots-message", ""); plotsShown = null; }
}

// A finished job's pictures, drawn by the server as SVG once per job shown; each goes into an <img> as a data: URL
// (an SVG in an <img> runs no script), fetched with the token like every other call.
let plotsShown = null;
async function showPlots(jobId) {
  plotsShown = jobId;
  const box = $("job-plots");
  box.replaceChildren();
  say("plots-message", "drawing ...");
  try {
    const answer = await api("/jobs/" + encodeURIComponent(jobId) + "/plots");
    if (plotsShown !== jobId) return;
    for (const plot of answer.plots) {
      const img = document.createElement("img");
      img.alt = plot.name;
      img.title = plot.name;
      img.src = "data:image/svg+xml;base64," + btoa(unescape(encodeURIComponent(plot.svg)));
      box.appendChild(img);
    }
    say("plots-message", answer.plots.length ? "" : "no pictures for this job (MERT's fd_layers and the FAD∞, "
      + "KAD∞ and FD∞ fits have one)");
  } catch (error) {
    say("plots-message", error.message, true);
  }
}

async function submit(event) {
  event.preventDefault();
  const form = new FormData();
  for (const side of ["generated", "reference"]) {
    for (const file of $(side).files) form.append(side + "_files", file, file.name);
  }
  form.append("backbone", $("backbone").value);
  form.append("sampling_rate", $("sampling_rate").value);
  form.append("fad_model", $("fad_model").value);
  if ($("metrics").value.trim()) form.append("metrics", $("metrics").value.trim());
  if ($("captions").files.length) form.append("captions", $("captions").files[0], $("captions").files[0].name);
  $("submit").disabled = true;
  say("message", "uploading ...");
  try {
    const job = await api("/evaluate", { method: "POST", body: form });
    selected = job.job_id;
    say("message", "job " + job.job_id + " queued (" + job.evaluation_mode + ", " + job.files.generated
      + " generated, " + job.files.reference + " reference files)");
    await refreshJobs();
  } catch (error) {
    say("message", error.message, true);
  } finally {
    $("submit").disabled = false;
  }
}

async function deleteJob() {
  try {
    const answer = await api("/jobs/" + encodeURIComponent(selected), { method: "DELETE" });
    say("message", answer.deleted ? "job " + answer.job_id + " deleted" : "job " + answer.job_id + " is being stopped");
    if (answer.deleted) {
      selected = null;
      $("job").hidden = true;
    }
  } catch (error) {
    say("message", error.message, true);
  }
  await refreshJobs();
}

async function loadChoices() {
  // the FAD embeddings this server offers (needs the token when the server has one)
  try {
    const offered = await api("/backbones");
    const select = $("fad_model");
    const current = select.value;
    select.replaceChildren();
    for (const name of Object.keys(offered.fad_models).sort()) {
      const option = document.createElement("option");
      option.textContent = name;
      option.selected = name === current;
      select.appendChild(option);
    }
  } catch (error) {
    say("jobs-message", error.message, true);
  }
}

async function start() {
  $("token").value = sessionStorage.getItem("token") || "";
  $("token").addEventListener("change", () => {
    sessionStorage.setItem("token", $("token").value);
    loadChoices();
    refreshJobs();
  });
  $("submit-form").addEventListener("submit", submit);
  $("delete").addEventListener("click", deleteJob);
  try {
    const health = await api("/health");
    $("version").textContent = "version " + health.version + " on " + health.device;
  } catch (error) {
    say("message", error.message, true);
  }
  await loadChoices();
  await refreshJobs();
  setInterval(refreshJobs, 2000);
}

document.addEventListener("DOMContentLoaded", start);
