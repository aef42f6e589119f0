"""The MUSHRA page: one HTML file with inline style and script, its configuration embedded as JSON.

The script plays each trial's stimuli as looping ``<audio>`` elements; switching stimulus moves every element
of the trial to the position of the one that was playing, so the comparison is instant and in sync. Ratings
are sliders 0-100 (a stimulus counts as rated once its slider was moved); the export buttons download the
listener's ratings as JSON or CSV (``window.mushraResults`` holds the same object) once every stimulus is
rated. Progress survives a reload (``localStorage``, keyed by the test id).
"""

from __future__ import annotations

import html
import json

_STYLE = """
body{font-family:system-ui,sans-serif;max-width:900px;margin:1em auto;padding:0 1em;color:#222}
h1{font-size:1.4em} .trial-head{display:flex;justify-content:space-between;align-items:center}
table{border-collapse:collapse;width:100%} td{padding:6px 8px;border-bottom:1px solid #ddd}
button{padding:6px 12px;margin:2px;border:1px solid #888;border-radius:4px;background:#f4f4f4;cursor:pointer}
button.playing{background:#2a7ae2;color:#fff;border-color:#2a7ae2}
input[type=range]{width:100%} .value{width:3em;text-align:right;font-variant-numeric:tabular-nums}
.scale{display:flex;justify-content:space-between;font-size:12px;color:#666}
#status{margin-top:1em;min-height:1.5em} .error{color:#b00020} .ok{color:#176b2c}
"""

_SCRIPT = r"""
const STORE = 'mushra:' + CONFIG.id;
const state = loadState();
let trialIndex = state.trial || 0, audios = {}, current = null;

function loadState() {
  const empty = {listener: '', trial: 0, ratings: CONFIG.trials.map(t => ({}))};
  try { const s = JSON.parse(localStorage.getItem(STORE)); return s && s.ratings ? s : empty; }
  catch (e) { return empty; }
}
function saveState() {
  state.trial = trialIndex;
  try { localStorage.setItem(STORE, JSON.stringify(state)); } catch (e) { /* file pages may refuse */ }
}
function el(tag, attrs, text) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
  if (text !== undefined) node.textContent = text;
  return node;
}
function stop() {
  for (const a of Object.values(audios)) a.pause();
  current = null;
  document.querySelectorAll('button.playing').forEach(b => b.classList.remove('playing'));
}
function play(key) {
  const next = audios[key];
  const position = current ? current.currentTime : 0;
  for (const a of Object.values(audios)) {
    a.pause();
    if (a.readyState >= 1) a.currentTime = Math.min(position, Math.max(0, a.duration - 0.01));
  }
  document.querySelectorAll('button.playing').forEach(b => b.classList.remove('playing'));
  document.getElementById('play-' + key).classList.add('playing');
  current = next;
  const started = next.play();
  if (started) started.catch(e => setStatus('cannot play: ' + e.message, true));
}
function showTrial(index) {
  stop();
  trialIndex = index;
  const trial = CONFIG.trials[index], ratings = state.ratings[index];
  document.getElementById('trial-title').textContent =
    `Trial ${index + 1} of ${CONFIG.trials.length}`;
  const box = document.getElementById('trial');
  box.replaceChildren();
  audios = {ref: new Audio(trial.reference)};
  for (const s of trial.stimuli) audios[s.label] = new Audio(s.src);
  for (const a of Object.values(audios)) { a.loop = true; a.preload = 'auto'; }
  const refButton = el('button', {id: 'play-ref'}, 'Reference');
  refButton.onclick = () => play('ref');
  const stopButton = el('button', {id: 'stop'}, 'Stop');
  stopButton.onclick = stop;
  box.append(el('p', {}, ''), refButton, stopButton);
  const table = el('table');
  const scale = el('tr');
  scale.append(el('td'), el('td'));
  const labels = el('td');
  labels.append(el('div', {class: 'scale'}, ''));
  labels.firstChild.innerHTML = '<span>0 bad</span><span>poor</span><span>fair</span><span>good</span>' +
    '<span>excellent 100</span>';
  scale.append(labels, el('td'));
  table.append(scale);
  for (const s of trial.stimuli) {
    const row = el('tr');
    const button = el('button', {id: 'play-' + s.label}, s.label);
    button.onclick = () => play(s.label);
    const slider = el('input', {type: 'range', min: 0, max: 100, step: 1, id: 'rate-' + s.label,
                                'aria-label': 'rating of ' + s.label});
    slider.value = ratings[s.key] ?? 0;
    const value = el('td', {class: 'value', id: 'value-' + s.label},
                     ratings[s.key] === undefined ? '–' : String(ratings[s.key]));
    slider.oninput = () => {
      ratings[s.key] = Number(slider.value);
      value.textContent = slider.value;
      saveState();
    };
    const cell = el('td');
    cell.append(slider);
    const labelCell = el('td');
    labelCell.append(button);
    row.append(el('td', {}, ''), labelCell, cell, value);
    table.append(row);
  }
  box.append(table);
  document.getElementById('prev').disabled = index === 0;
  document.getElementById('next').disabled = index === CONFIG.trials.length - 1;
  saveState();
}
function setStatus(text, error) {
  const status = document.getElementById('status');
  status.textContent = text;
  status.className = error ? 'error' : 'ok';
}
function collect() {
  const listener = document.getElementById('listener').value.trim();
  if (!listener) return {error: 'enter your name or listener id first'};
  const rows = [], missing = [];
  CONFIG.trials.forEach((trial, i) => {
    for (const s of trial.stimuli) {
      const rating = state.ratings[i][s.key];
      if (rating === undefined || rating === null) missing.push(`trial ${i + 1} ${s.label}`);
      else rows.push({trial: trial.name, condition: s.key, label: s.label, rating: rating});
    }
  });
  if (missing.length) return {error: `${missing.length} stimulus(es) not rated yet: ` +
                                     missing.slice(0, 6).join(', ') + (missing.length > 6 ? ', ...' : '')};
  return {results: {format: CONFIG.format, test: CONFIG.id, title: CONFIG.title, listener: listener,
                    finished: new Date().toISOString(), ratings: rows}};
}
function download(name, type, text) {
  const url = URL.createObjectURL(new Blob([text], {type: type}));
  const link = el('a', {href: url, download: name});
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10000);
}
function exportResults(kind) {
  const {results, error} = collect();
  if (error) { setStatus(error, true); return; }
  window.mushraResults = results;
  const stem = `mushra_${CONFIG.id}_${results.listener.replace(/[^A-Za-z0-9_-]+/g, '_')}`;
  if (kind === 'csv') {
    const quote = v => /[",\n]/.test(String(v)) ? '"' + String(v).replace(/"/g, '""') + '"' : String(v);
    const lines = ['test,listener,trial,condition,label,rating'].concat(results.ratings.map(r =>
      [results.test, results.listener, r.trial, r.condition, r.label, r.rating].map(quote).join(',')));
    download(stem + '.csv', 'text/csv', lines.join('\n') + '\n');
  } else {
    download(stem + '.json', 'application/json', JSON.stringify(results, null, 1));
  }
  setStatus(`exported ${results.ratings.length} ratings as ${kind.toUpperCase()}: thank you`, false);
}
document.getElementById('listener').value = state.listener;
document.getElementById('listener').oninput = e => { state.listener = e.target.value; saveState(); };
document.getElementById('prev').onclick = () => showTrial(trialIndex - 1);
document.getElementById('next').onclick = () => showTrial(trialIndex + 1);
document.getElementById('export-json').onclick = () => exportResults('json');
document.getElementById('export-csv').onclick = () => exportResults('csv');
document.addEventListener('keydown', e => {
  if (e.target.tagName === 'INPUT' && e.target.type !== 'range') return;
  if (e.key === ' ') { e.preventDefault(); current ? stop() : play('ref'); }
});
showTrial(Math.min(trialIndex, CONFIG.trials.length - 1));
"""


def render_page(config: dict) -> str:
    """The page for a test configuration (``id``, ``title``, ``format``, ``trials``: see `build_test`)."""
    data = json.dumps(config, separators=(",", ":")).replace("</", "<\\/")
    title = html.escape(config["title"])
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>{_STYLE}</style></head>
<body><h1>{title}</h1>
<p>Each trial has a <b>Reference</b> and the same sound processed in several ways, one of them the hidden
reference itself. Play them (they loop; switching keeps the position) and rate each against the reference
from 0 (bad) to 100 (excellent): give 100 to the one you cannot tell from the reference. Space plays the
reference or stops.</p>
<p><label>Listener: <input id="listener" autocomplete="off" placeholder="name or id"></label></p>
<div class="trial-head"><h2 id="trial-title"></h2>
<span><button id="prev">&larr; Previous</button><button id="next">Next &rarr;</button></span></div>
<div id="trial"></div>
<p><button id="export-json">Finish: export JSON</button><button id="export-csv">Export CSV</button></p>
<div id="status" role="status"></div>
<script>const CONFIG = {data};</script>
<script>{_SCRIPT}</script>
</body></html>
"""
