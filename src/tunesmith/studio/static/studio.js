// tunesmith studio: the page keeps every version of the melody (tunesmith-melody JSON) and asks
// the stateless server to compose, regenerate, engrave and export it. score.js draws the score.
"use strict";

const $ = (id) => document.getElementById(id);
const KEYS = ["C", "G", "D", "A", "E", "B", "F#", "F", "Bb", "Eb", "Ab", "Db"];
const NAMES = ["C", "C#", "D", "Eb", "E", "F", "F#", "G", "G#", "A", "Bb", "B"];
const state = {
  info: null,
  versions: [], // {melody, fixes: [{step, pitch}], label}
  index: -1,
  preview: null, // an alternative being auditioned: {melody, label}
  alternatives: [],
  view: null, // the server's score view of the melody on screen
  selection: null, // [first, last] bar numbers
  locked: new Set(),
  editing: null, // {start, steps, pitch} of the note being fixed
  audioUrl: null,
};

const pitchName = (p) => (p === null ? "rest" : NAMES[p % 12] + (Math.floor(p / 12) - 1));
const current = () => (state.index >= 0 ? state.versions[state.index] : null);
const shownMelody = () => (state.preview ? state.preview.melody : current() && current().melody);

function status(text, kind = "") {
  const el = $("status");
  el.textContent = text;
  el.className = "status " + kind;
}

async function api(path, body) {
  const response = await fetch(path, {
    method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body),
  });
  if (!response.ok) {
    let message = response.statusText;
    try { message = (await response.json()).error || message; } catch (e) { /* not JSON */ }
    throw new Error(message);
  }
  return response;
}

async function busy(label, work) {
  status(label + "…", "busy");
  document.body.classList.add("working");
  try {
    await work();
    if ($("status").classList.contains("busy")) status("Done.");
  } catch (error) {
    status(error.message, "error");
    return;
  } finally {
    document.body.classList.remove("working");
  }
}

// ---- setup -------------------------------------------------------------------------------------
async function loadInfo() {
  const info = await (await fetch("/api/info")).json();
  state.info = info;
  $("model").innerHTML = info.models.map((m) => `<option>${m.name}</option>`).join("");
  $("key").innerHTML = KEYS.map((k) => `<option>${k}</option>`).join("");
  $("format").innerHTML = info.formats.map((f) => `<option value="${f}">${f.toUpperCase()}</option>`).join("");
  fillMeters();
  $("instrument").innerHTML = '<option value="">any instrument</option>' +
    info.instruments.map((i) => `<option value="${i.name}">${i.name}</option>`).join("");
  $("chord-span").innerHTML = info.chord_spans.map((s) => `<option value="${s}">${s === "auto" ? "auto span" : "per " + s}</option>`).join("");
  $("bars").max = info.limits.bars;
  $("num").max = info.limits.num;
  $("regen-num").max = info.limits.num;
}

function fillMeters() {
  const model = state.info.models.find((m) => m.name === $("model").value) || state.info.models[0];
  $("meter").innerHTML = model.meters.map((m) => `<option${m === "4/4" ? " selected" : ""}>${m}</option>`).join("");
}

// ---- versions and history ----------------------------------------------------------------------
async function push(melody, label, fixes = []) {
  if ($("chords").checked && !(melody.song.chords || []).length) { // keep chord symbols on every version
    melody = (await (await api("/api/harmonize", { melody, chord_span: $("chord-span").value })).json()).melody;
  }
  state.versions = state.versions.slice(0, state.index + 1);
  state.versions.push({ melody, fixes, label });
  state.index = state.versions.length - 1;
  state.preview = null;
  return show();
}

function go(index) {
  if (index < 0 || index >= state.versions.length) return;
  state.index = index;
  state.preview = null;
  busy("Loading the version", show);
}

function renderHistory() {
  $("history").innerHTML = "";
  state.versions.forEach((v, i) => {
    const li = document.createElement("li");
    li.textContent = v.label;
    li.className = i === state.index ? "active" : i > state.index ? "undone" : "";
    li.addEventListener("click", () => go(i));
    $("history").appendChild(li);
  });
  $("undo").disabled = state.index <= 0;
  $("redo").disabled = state.index >= state.versions.length - 1;
  const has = state.index >= 0;
  for (const id of ["play", "stop", "download", "use-primer"]) $(id).disabled = !has;
  updateSelection();
}
// ---- compose, regenerate, alternatives ---------------------------------------------------------
function sampling() {
  return {
    scheme: $("scheme").value, temperature: Number($("temperature").value),
    scale: $("scale").checked, range: $("range").value.trim(),
  };
}

function composeRequest() {
  const request = {
    model: $("model").value, key: $("key").value, mode: $("mode").value, meter: $("meter").value,
    bars: Number($("bars").value), num: Number($("num").value), ...sampling(),
    chords: $("chords").checked, chord_span: $("chord-span").value,
  };
  if ($("seed").value !== "") request.seed = Number($("seed").value);
  if ($("instrument").value) request.instrument = $("instrument").value;
  if ($("max-copy").value !== "") request.max_copy = Number($("max-copy").value);
  if ($("candidates").value !== "") request.candidates = Number($("candidates").value);
  if ($("form").value.trim()) request.form = $("form").value.trim();
  if ($("pickup").value !== "" && $("form").value.trim().toLowerCase() !== "none") request.pickup = Number($("pickup").value);
  const tab = document.querySelector(".tab.active").dataset.tab;
  if (tab === "tokens" || tab === "file") request.primer = $("primer").value.trim();
  if (tab === "abc") request.primer_abc = $("primer-abc").value;
  return request;
}

async function compose(event) {
  event.preventDefault();
  await busy("Composing", async () => {
    const { melodies, warnings } = await (await api("/api/compose", composeRequest())).json();
    state.selection = null;
    state.locked = new Set();
    const seed = melodies[0].params.seed;
    state.alternatives = melodies.length > 1 ? melodies.map((m, i) => ({ melody: m, label: `Melody ${i + 1}` })) : [];
    $("alt-caption").textContent = melodies.length > 1 ? "— new melodies" : "";
    const played = state.info.instruments.find((i) => i.name === melodies[0].params.instrument);
    if (played) { // the instrument's sound and usual tempo
      $("program").value = String(played.program);
      $("bpm").value = played.bpm;
    }
    await push(melodies[0], `Composed: ${melodies[0].song.title} (seed ${seed})`);
    status(`Composed ${melodies.length} melod${melodies.length > 1 ? "ies" : "y"} (seed ${seed}).` +
      copyText(melodies[0].params.copy) + (warnings.length ? " Note: " + warnings.join("; ") : ""),
      warnings.length ? "warning" : "");
  });
}

async function regenerate() {
  const [a, b] = state.selection;
  const version = current();
  const range = state.view.bars.filter((bar) => bar.number >= a && bar.number <= b);
  const lo = range[0].start, hi = range[range.length - 1].end;
  const fixes = version.fixes.filter((f) => f.step >= lo && f.step < hi);
  const request = {
    model: $("model").value, melody: version.melody, bars: [a, b], num: Number($("regen-num").value),
    locked: [...state.locked], fixes, ...sampling(),
  };
  if ($("seed").value !== "") request.seed = Number($("seed").value) + state.versions.length;
  await busy(`Regenerating bars ${a}–${b}`, async () => {
    const { alternatives } = await (await api("/api/regenerate", request)).json();
    state.alternatives = alternatives.map((m, i) => ({ melody: m, label: `Alternative ${i + 1}`, bars: [a, b] }));
    $("alt-caption").textContent = `— bars ${a}–${b}`;
    state.preview = state.alternatives[0];
    await show();
    status(`${alternatives.length} alternatives for bars ${a}–${b}: audition them, then keep one.`);
  });
}

// The longest stretch a melody shares with one training tune (params.copy, where the model has an index).
function copyText(copy) {
  if (!copy) return "";
  if (!copy.notes) return " Shares no run of notes with a training tune.";
  const [a, b] = copy.tune_bars;
  const limit = copy.max_copy ? ` (limit ${copy.max_copy})` : "";
  return ` Longest run shared with a training tune: ${copy.notes} notes${limit}, from “${copy.tune}” (${a === b ? "bar " + a : "bars " + a + "–" + b}).`;
}

function renderAlternatives() {
  const list = $("alternatives");
  list.innerHTML = "";
  state.alternatives.forEach((alt) => {
    const li = document.createElement("li");
    li.className = "alt" + (state.preview === alt ? " active" : "");
    const name = document.createElement("span");
    name.className = "alt-name";
    name.textContent = alt.label;
    const listen = document.createElement("button");
    listen.className = "alt-listen";
    listen.innerHTML = "&#9654; Audition";
    listen.addEventListener("click", () => busy("Auditioning", async () => {
      state.preview = alt;
      await show();
      await play();
    }));
    const keep = document.createElement("button");
    keep.className = "alt-keep primary";
    keep.textContent = "Keep";
    keep.addEventListener("click", () => busy("Keeping", async () => {
      const fixes = alt.bars ? current().fixes : [];
      state.alternatives = [];
      $("alt-caption").textContent = "";
      const label = alt.bars ? `Bars ${alt.bars[0]}–${alt.bars[1]}: ${alt.label.toLowerCase()}` : `Chose ${alt.label.toLowerCase()}`;
      await push(alt.melody, label, fixes);
      status("Kept. Undo brings the previous version back." + copyText(alt.melody.params.copy));
    }));
    li.append(name, listen, keep);
    list.appendChild(li);
  });
  if (!state.alternatives.length) list.innerHTML = '<li class="none">Select bars and regenerate to get alternatives.</li>';
}

// ---- playback ----------------------------------------------------------------------------------
async function play() {
  const melody = shownMelody();
  if (!melody) return;
  stop();
  const bpm = Math.max(20, Math.min(300, Number($("bpm").value) || 100));
  const program = Number($("program").value);
  let blob;
  if (state.info.formats.includes("wav")) {
    const humanize = Number($("humanize").value);
    blob = await (await api("/api/export", { melody, format: "wav", bpm, program, humanize })).blob();
  } else {
    blob = Synth.toWav(melody.song, bpm, program);
  }
  if (state.audioUrl) URL.revokeObjectURL(state.audioUrl);
  state.audioUrl = URL.createObjectURL(blob);
  const audio = $("audio");
  audio.src = state.audioUrl;
  audio.dataset.bpm = bpm;
  await audio.play();
  status("Playing" + (state.info.formats.includes("wav") ? " (FluidSynth)" : " (in-page synth)") + ".");
  requestAnimationFrame(follow);
}

function follow() {
  const audio = $("audio");
  document.querySelectorAll("#score rect.playing").forEach((r) => r.remove());
  if (audio.paused || audio.ended || !state.view) return;
  const step = (audio.currentTime * Number(audio.dataset.bpm) / 60) * state.view.steps_per_quarter;
  const bar = state.view.bars.find((b) => b.start <= step && step < b.end);
  if (bar) highlight(bar.id, "playing");
  requestAnimationFrame(follow);
}

function stop() {
  const audio = $("audio");
  audio.pause();
  document.querySelectorAll("#score rect.playing").forEach((r) => r.remove());
}

// ---- files -------------------------------------------------------------------------------------
async function download() {
  const melody = current().melody;
  const format = $("format").value;
  await busy(`Writing ${format.toUpperCase()}`, async () => {
    const response = await api("/api/export", {
      melody, format, bpm: Number($("bpm").value) || 100, program: Number($("program").value),
      humanize: Number($("humanize").value),
    });
    const disposition = response.headers.get("Content-Disposition") || "";
    const match = disposition.match(/filename="([^"]+)"/);
    const link = document.createElement("a");
    link.href = URL.createObjectURL(await response.blob());
    link.download = match ? match[1] : `melody.${format}`;
    document.body.appendChild(link);
    link.click();
    link.remove();
    status(`Downloaded ${link.download}.`);
  });
}

async function openFile() {
  const file = $("open-file").files[0];
  if (!file) return;
  if (file.size > state.info.limits.upload_bytes) {
    status(`${file.name} is over ${state.info.limits.upload_bytes / 1048576} MB.`, "error");
    return;
  }
  const form = new FormData();
  form.append("file", file);
  await busy(`Opening ${file.name}`, async () => {
    const response = await fetch("/api/open", { method: "POST", body: form });
    const data = await response.json();
    if (!response.ok) throw new Error(data.error);
    state.selection = null;
    state.locked = new Set();
    state.alternatives = [];
    await push(data.melody, `Opened ${file.name}`);
    const notes = data.warnings && data.warnings.length ? " Note: " + data.warnings.join("; ") : "";
    status(`Opened ${file.name}: regenerate bars, or use it as the opening of a new melody.${notes}`);
  });
  $("open-file").value = "";
}

function usePrimer() {
  const melody = current().melody;
  $("primer").value = melody.tokens.join(" ");
  const tonic = melody.song.key.replace("-", "b");
  if (KEYS.includes(tonic)) $("key").value = tonic;
  $("mode").value = melody.song.mode;
  if ([...$("meter").options].some((o) => o.value === melody.song.meter)) $("meter").value = melody.song.meter;
  document.querySelector('.tab[data-tab="tokens"]').click();
  status("The melody is the opening now: set the bars (longer than it) and compose to continue it.");
}

async function toggleChords() {
  if (!$("chords").checked || !current()) return show();
  await busy("Harmonising", async () => {
    const span = $("chord-span").value;
    const { melody } = await (await api("/api/harmonize", { melody: current().melody, chord_span: span })).json();
    await push(melody, `Chord symbols added (${span === "auto" ? "auto" : "per " + span})`, current().fixes);
  });
}

// ---- wiring ------------------------------------------------------------------------------------
function wire() {
  $("compose-form").addEventListener("submit", compose);
  $("model").addEventListener("change", fillMeters);
  $("temperature").addEventListener("input", () => { $("temperature-value").textContent = $("temperature").value; });
  $("regenerate").addEventListener("click", regenerate);
  $("lock").addEventListener("click", () => {
    const [a, b] = state.selection;
    const bars = [];
    for (let n = a; n <= b; n++) bars.push(n);
    const unlock = bars.every((n) => state.locked.has(n));
    bars.forEach((n) => (unlock ? state.locked.delete(n) : state.locked.add(n)));
    decorate();
    updateSelection();
    status(unlock ? `Bars ${a}–${b} unlocked.` : `Bars ${a}–${b} locked: regeneration leaves them as they are.`);
  });
  $("undo").addEventListener("click", () => go(state.index - 1));
  $("redo").addEventListener("click", () => go(state.index + 1));
  $("play").addEventListener("click", () => busy("Rendering audio", play));
  $("stop").addEventListener("click", stop);
  $("download").addEventListener("click", download);
  $("open-file").addEventListener("change", openFile);
  $("use-primer").addEventListener("click", usePrimer);
  $("chords").addEventListener("change", toggleChords);
  $("chord-span").addEventListener("change", () => { if ($("chords").checked) toggleChords(); });
  $("humanize").addEventListener("input", () => { $("humanize-value").textContent = $("humanize").value; });
  $("note-apply").addEventListener("click", applyNote);
  $("note-cancel").addEventListener("click", closeNoteEditor);
  document.querySelectorAll("#note-editor [data-shift]").forEach((b) =>
    b.addEventListener("click", () => shiftNote(Number(b.dataset.shift))));
  document.querySelector("#note-editor [data-rest]").addEventListener("click", () => {
    state.editing.pitch = null;
    $("note-name").textContent = "rest";
  });
  document.querySelectorAll(".tab").forEach((tab) => tab.addEventListener("click", () => {
    document.querySelectorAll(".tab").forEach((t) => t.classList.toggle("active", t === tab));
    document.querySelectorAll(".tab-body").forEach((b) => { b.hidden = b.dataset.body !== tab.dataset.tab; });
  }));
  document.addEventListener("keydown", (event) => {
    if (event.target.matches("input, textarea, select")) return;
    if (state.editing && (event.key === "ArrowUp" || event.key === "ArrowDown")) {
      event.preventDefault();
      shiftNote(event.key === "ArrowUp" ? 1 : -1);
    } else if (state.editing && event.key === "Enter") applyNote();
    else if (event.key === "Escape") closeNoteEditor();
    else if ((event.ctrlKey || event.metaKey) && event.key.toLowerCase() === "z") {
      event.preventDefault();
      go(state.index + (event.shiftKey ? 1 : -1));
    } else if (event.key === " " && state.index >= 0) {
      event.preventDefault();
      $("audio").paused ? busy("Rendering audio", play) : stop();
    }
  });
  setupScoreMouse();
}

// ---- start (after every script of the page has loaded) ------------------------------------------
window.addEventListener("DOMContentLoaded", () => {
  wire();
  loadInfo().then(() => { renderHistory(); renderAlternatives(); status("Ready."); })
    .catch((error) => status("Cannot reach the studio server: " + error.message, "error"));
});
