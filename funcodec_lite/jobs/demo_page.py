"""The page of ``codec serve``: upload or record a clip, pick a model and bit rate, hear and see the result.

One HTML file with inline style and script that talks to the server's JSON endpoints (relative URLs). A
recording (``MediaRecorder``) is decoded by the browser and sent as 16-bit WAV, so the server reads the same
formats as ``codec encode``. Errors from the server are shown in the page as the one line it sends.
"""

from __future__ import annotations

_STYLE = """
body{font-family:system-ui,sans-serif;max-width:1150px;margin:1em auto;padding:0 1em;color:#222}
fieldset{border:1px solid #ccc;border-radius:6px;margin-bottom:1em}
label{margin-right:1.2em} select,button{padding:4px 8px}
#message{min-height:1.4em;margin:.5em 0} .error{color:#b00020;font-weight:600} .busy{color:#555}
#columns{display:flex;flex-wrap:wrap;gap:16px} .column{flex:1 1 340px}
.column img{width:100%;border:1px solid #eee} audio{width:100%}
#bitrate{font-size:1.2em;font-weight:600} table{border-collapse:collapse} td,th{padding:3px 10px;
border-bottom:1px solid #ddd;text-align:right} th:first-child,td:first-child{text-align:left}
"""

_SCRIPT = r"""
let info = null, recorded = null, recorder = null;
const $ = id => document.getElementById(id);
function message(text, kind) { $('message').textContent = text; $('message').className = kind || ''; }
function option(value, text) { const o = document.createElement('option'); o.value = value;
  o.textContent = text; return o; }
function fillRates() {
  const model = info.models.find(m => m.name === $('model').value);
  $('n_q').replaceChildren(...model.bitrates.map(b => option(b.n_q, `${b.kbps} kbps (${b.n_q} codebooks)`)));
  $('n_q').selectedIndex = Math.floor((model.bitrates.length - 1) / 2);
}
async function init() {
  try {
    const response = await fetch('api/models');
    info = await response.json();
  } catch (e) { message('cannot reach the server: ' + e.message, 'error'); return; }
  $('model').replaceChildren(...info.models.map(m => option(m.name, `${m.name} (${m.sample_rate} Hz)`)));
  $('model').onchange = fillRates;
  fillRates();
  if (info.masked.length) {
    $('vamp-box').hidden = false;
    $('masked').replaceChildren(...info.masked.map(n => option(n, n)));
    $('vamp').replaceChildren(option('', 'no vamp'), ...info.presets.map(p => option(p, p)));
  }
  $('limits').textContent = `clips up to ${info.max_seconds} s and ${Math.round(info.max_bytes / 1e6)} MB`;
  $('ready').dataset.ready = '1';
}
function wavFile(buffer) {
  const channels = Math.min(2, buffer.numberOfChannels), n = buffer.length, rate = buffer.sampleRate;
  const view = new DataView(new ArrayBuffer(44 + n * channels * 2));
  const text = (at, s) => [...s].forEach((c, i) => view.setUint8(at + i, c.charCodeAt(0)));
  text(0, 'RIFF'); view.setUint32(4, 36 + n * channels * 2, true); text(8, 'WAVEfmt ');
  view.setUint32(16, 16, true); view.setUint16(20, 1, true); view.setUint16(22, channels, true);
  view.setUint32(24, rate, true); view.setUint32(28, rate * channels * 2, true);
  view.setUint16(32, channels * 2, true); view.setUint16(34, 16, true); text(36, 'data');
  view.setUint32(40, n * channels * 2, true);
  const data = [...Array(channels).keys()].map(c => buffer.getChannelData(c));
  for (let i = 0, at = 44; i < n; i++) for (let c = 0; c < channels; c++, at += 2) {
    const s = Math.max(-1, Math.min(1, data[c][i])); view.setInt16(at, s < 0 ? s * 32768 : s * 32767, true);
  }
  return new File([view], 'recording.wav', {type: 'audio/wav'});
}
async function toggleRecording() {
  if (recorder) { recorder.stop(); return; }
  let stream;
  try { stream = await navigator.mediaDevices.getUserMedia({audio: true}); }
  catch (e) { message('cannot record: ' + e.message, 'error'); return; }
  const chunks = [];
  recorder = new MediaRecorder(stream);
  recorder.ondataavailable = e => chunks.push(e.data);
  recorder.onstop = async () => {
    stream.getTracks().forEach(t => t.stop());
    recorder = null;
    $('record').textContent = 'Record';
    try {
      const audio = await new AudioContext().decodeAudioData(await new Blob(chunks).arrayBuffer());
      recorded = wavFile(audio);
      $('file').value = '';
      message(`recorded ${audio.duration.toFixed(1)} s: press "Code it"`);
    } catch (e) { message('cannot decode the recording: ' + e.message, 'error'); }
  };
  recorder.start();
  $('record').textContent = 'Stop recording';
  message('recording...', 'busy');
}
function column(kind, title, entry) {
  const box = document.createElement('div');
  box.className = 'column';
  const heading = document.createElement('h3');
  heading.textContent = title;
  const audio = document.createElement('audio');
  audio.controls = true; audio.preload = 'auto'; audio.id = 'audio-' + kind; audio.src = entry.audio;
  const image = document.createElement('img');
  image.id = 'image-' + kind; image.src = entry.image; image.alt = title + ' spectrogram';
  box.append(heading, audio, image);
  return box;
}
function render(r) {
  $('bitrate').textContent = `${r.kbps} kbps (${r.n_q} codebooks, ${r.model})`;
  const columns = [column('original', `Original (${r.seconds} s at ${r.sample_rate} Hz)`, r.original),
                   column('decoded', `Decoded at ${r.kbps} kbps`, r.decoded)];
  if (r.vamped) {
    const share = Math.round(100 * r.vamped.generated);
    columns.push(column('vamped', `Vamped: ${r.vamped.preset} (${r.vamped.model}, ${share} % of tokens ` +
                        'generated)', r.vamped));
  }
  $('columns').replaceChildren(...columns);
  const names = {pesq: 'PESQ (wb)', stoi: 'STOI', estoi: 'ESTOI', mel_distance: 'mel distance',
                 si_snr: 'SI-SNR (dB)'};
  const rows = Object.entries(r.scores).map(([k, v]) =>
    `<tr><td>${names[k] || k}</td><td>${v === null ? 'n/a' : v.toFixed(3)}</td></tr>`);
  $('scores').innerHTML = '<tr><th>codec eval</th><th>decoded vs original</th></tr>' + rows.join('');
  $('results').hidden = false;
}
async function run() {
  const file = $('file').files[0] || recorded;
  if (!file) { message('choose an audio file or record one first', 'error'); return; }
  if (file.size > info.max_bytes) { message(`${file.name} is too large`, 'error'); return; }
  const form = new FormData();
  form.append('file', file, file.name);
  form.append('model', $('model').value);
  form.append('n_q', $('n_q').value);
  if (info.masked.length) { form.append('vamp', $('vamp').value); form.append('masked', $('masked').value); }
  $('run').disabled = true;
  message('coding ' + file.name + '...', 'busy');
  try {
    const response = await fetch('api/code', {method: 'POST', body: form});
    let body;
    try { body = await response.json(); }
    catch (e) { body = {error: `the server answered ${response.status}`}; }
    if (!response.ok || body.error) { message(body.error || `error ${response.status}`, 'error'); return; }
    render(body);
    message(`${body.name}: coded in ${body.elapsed_seconds} s`);
  } catch (e) { message('the request failed: ' + e.message, 'error'); }
  finally { $('run').disabled = false; }
}
$('record').onclick = toggleRecording;
$('run').onclick = run;
$('file').onchange = () => { recorded = null; message(''); };
if (!window.MediaRecorder) $('record').disabled = true;
init();
"""


def render_demo_page() -> str:
    """The demo page (static: everything it shows comes from the endpoints)."""
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>funcodec_lite demo</title>
<meta name="viewport" content="width=device-width, initial-scale=1"><style>{_STYLE}</style></head>
<body><h1>funcodec_lite: hear a codec</h1>
<fieldset><legend>Input (<span id="limits"></span>)</legend>
<input type="file" id="file" accept="audio/*,.wav,.flac,.ogg"> or <button id="record">Record</button>
</fieldset>
<fieldset><legend>Codec</legend>
<label>Model <select id="model"></select></label> <label>Bit rate <select id="n_q"></select></label>
<span id="vamp-box" hidden><label>Vamp with <select id="masked"></select></label>
<label>mask preset <select id="vamp"></select></label></span>
<button id="run">Code it</button></fieldset>
<div id="message" role="status"></div><span id="ready"></span>
<section id="results" hidden><p id="bitrate"></p><div id="columns"></div><table id="scores"></table>
</section>
<script>{_SCRIPT}</script>
</body></html>
"""
