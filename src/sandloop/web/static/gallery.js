// The gallery's live wall and the visitor's form. Plain JavaScript, no build step.
// Steps arrive as server-sent events; EventSource reconnects by itself and sends the last
// step it saw (Last-Event-ID), so a dropped connection misses nothing.
"use strict";

function card(step) {
  const figure = document.createElement("figure");
  figure.className = "output " + step.output_type;
  figure.dataset.step = String(step.step);
  figure.dataset.key = step.key;
  if (step.output_url && step.output_type === "audio") {
    const audio = document.createElement("audio");
    audio.controls = true;
    audio.preload = "none";
    audio.src = step.output_url;
    figure.appendChild(audio);
  } else if (step.output_url) {
    const img = document.createElement("img");
    img.src = step.output_url;
    img.alt = "step " + step.step + " by " + step.model;
    figure.appendChild(img);
  } else {
    const text = document.createElement("p");
    text.textContent = step.output;
    figure.appendChild(text);
  }
  const caption = document.createElement("figcaption");
  caption.textContent = step.step + " · " + step.model;
  figure.appendChild(caption);
  return figure;
}

function follow(outputs) {
  const config = JSON.parse(outputs.dataset.config);
  const status = document.getElementById("status");
  const seen = new Set();
  const say = (state, text) => {
    status.dataset.state = state;
    status.textContent = text;
  };
  const events = new EventSource(config.events);
  events.onopen = () => say("live", "live");
  events.onerror = () => say("reconnecting", "reconnecting…");
  events.addEventListener("run", (event) => {
    const run = JSON.parse(event.data);
    if (!run || !run.status) return;
    if (run.name) document.querySelector("h1").textContent = run.name;
    say(run.status === "running" ? "live" : run.status, run.status + " · " + run.steps + " steps");
  });
  events.addEventListener("step", (event) => {
    const step = JSON.parse(event.data);
    if (step.status !== "ok" || seen.has(step.key)) return;
    seen.add(step.key);
    const shown = card(step);
    shown.dataset.shownAt = String(Date.now()); // for the step-to-screen benchmark
    outputs.prepend(shown);
    const keep = document.body.classList.contains("screen") ? 1 : config.keep;
    while (outputs.children.length > keep) outputs.lastElementChild.remove();
  });
}

function submitting(form) {
  const error = document.getElementById("error");
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    error.textContent = "";
    const button = form.querySelector("button");
    button.disabled = true;
    try {
      const response = await fetch(form.dataset.action, {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ prompt: form.elements.prompt.value }),
      });
      const answer = await response.json();
      if (!response.ok) {
        const detail = answer.detail;
        error.textContent = typeof detail === "string" ? detail : "that prompt was refused";
        return;
      }
      window.location.assign(answer.gallery);
    } catch (failure) {
      error.textContent = "could not reach the server; try again";
    } finally {
      button.disabled = false;
    }
  });
}

const outputs = document.getElementById("outputs");
if (outputs) follow(outputs);
const form = document.getElementById("submit");
if (form) submitting(form);
