// tunesmith studio, the score: engraving on screen, selecting bars by click or drag, highlights
// (selected, locked, playing, fixed notes) and the note editor. Loaded with studio.js.
"use strict";

// ---- score -------------------------------------------------------------------------------------
async function show() {
  stop();
  const melody = shownMelody();
  renderHistory();
  renderAlternatives();
  if (!melody) return;
  const shown = $("chords").checked ? melody : { ...melody, song: { ...melody.song, chords: [] } };
  const view = await (await api("/api/score", { melody: shown })).json();
  state.view = view;
  const box = $("score");
  box.innerHTML = view.svg;
  if (state.preview) {
    const badge = document.createElement("div");
    badge.className = "preview-badge";
    badge.textContent = `${state.preview.label}: not kept yet`;
    box.prepend(badge);
  }
  box.classList.toggle("previewing", !!state.preview);
  const svg = box.querySelector("svg");
  // Scale the engraving to the panel: the outer SVG's pixel size becomes its viewBox.
  svg.setAttribute("viewBox", `0 0 ${parseFloat(svg.getAttribute("width"))} ${parseFloat(svg.getAttribute("height"))}`);
  svg.removeAttribute("height");
  svg.setAttribute("width", "100%");
  for (const bar of view.bars) highlight(bar.id, "hit"); // a clickable surface over each bar
  decorate();
}

function barOfMeasure(measure) {
  const bar = state.view.bars.find((b) => b.id === measure.id);
  return bar ? bar.number : null;
}

function highlight(measureId, cls) {
  const measure = document.getElementById(measureId);
  if (!measure) return;
  const staff = measure.querySelector(".staff") || measure;
  // The five staff lines (the staff's own paths), not its notes: every bar of a system gets the
  // same band, whether its stems point up or down.
  const lines = [...staff.children].filter((el) => el.tagName === "path").map((el) => el.getBBox());
  const box = staff.getBBox();
  const top = lines.length ? Math.min(...lines.map((l) => l.y)) : box.y;
  const bottom = lines.length ? Math.max(...lines.map((l) => l.y + l.height)) : box.y + box.height;
  const rect = document.createElementNS("http://www.w3.org/2000/svg", "rect");
  rect.setAttribute("x", box.x);
  rect.setAttribute("y", top - 450);
  rect.setAttribute("width", box.width);
  rect.setAttribute("height", bottom - top + 900);
  rect.setAttribute("class", "hl " + cls);
  measure.insertBefore(rect, measure.firstChild);
}

function decorate() {
  if (!state.view) return;
  document.querySelectorAll("#score rect.hl:not(.hit)").forEach((r) => r.remove());
  const [a, b] = state.selection || [null, null];
  for (const bar of state.view.bars) {
    if (state.locked.has(bar.number)) highlight(bar.id, "locked");
    if (a !== null && bar.number >= a && bar.number <= b) highlight(bar.id, "selected");
  }
  const fixed = new Set((current() ? current().fixes : []).map((f) => f.step));
  for (const note of state.view.notes) {
    const el = document.getElementById(note.id);
    if (el) el.classList.toggle("fixed", fixed.has(note.start));
  }
}

function updateSelection() {
  const sel = state.selection;
  const has = !!sel && state.index >= 0;
  $("regenerate").disabled = !has;
  $("lock").disabled = !has;
  if (!has) {
    $("selection").textContent = "Click or drag across bars to select them";
    return;
  }
  const bars = [];
  for (let n = sel[0]; n <= sel[1]; n++) bars.push(n);
  const allLocked = bars.every((n) => state.locked.has(n));
  $("lock").textContent = allLocked ? "Unlock bars" : "Lock bars";
  $("selection").textContent = sel[0] === sel[1] ? `Bar ${sel[0]} selected` : `Bars ${sel[0]}–${sel[1]} selected`;
}

function setupScoreMouse() {
  const box = $("score");
  let anchor = null, downNote = null, moved = false;
  box.addEventListener("mousedown", (event) => {
    const measure = event.target.closest("g.measure");
    if (!measure || !state.view) return;
    event.preventDefault();
    anchor = barOfMeasure(measure);
    downNote = event.target.closest("g.note, g.rest");
    moved = false;
    state.selection = [anchor, anchor];
    decorate();
    updateSelection();
  });
  box.addEventListener("mousemove", (event) => {
    if (anchor === null) return;
    const measure = event.target.closest && event.target.closest("g.measure");
    const bar = measure ? barOfMeasure(measure) : null;
    if (bar === null || (state.selection[0] === Math.min(anchor, bar) && state.selection[1] === Math.max(anchor, bar))) return;
    moved = true;
    state.selection = [Math.min(anchor, bar), Math.max(anchor, bar)];
    decorate();
    updateSelection();
  });
  window.addEventListener("mouseup", (event) => {
    if (anchor === null) return;
    const note = event.target.closest && event.target.closest("g.note, g.rest");
    if (!moved && downNote && note === downNote && !state.preview) openNoteEditor(note, event);
    anchor = null;
  });
}

// ---- fixing a note -----------------------------------------------------------------------------
function openNoteEditor(element, event) {
  const note = state.view.notes.find((n) => n.id === element.id);
  if (!note) return;
  state.editing = { start: note.start, steps: note.steps, pitch: note.pitch, original: note.pitch };
  const editor = $("note-editor");
  const area = $("score").parentElement.getBoundingClientRect();
  editor.style.left = Math.max(8, event.clientX - area.left - 90) + "px";
  editor.style.top = event.clientY - area.top + 18 + "px";
  editor.hidden = false;
  $("note-name").textContent = pitchName(note.pitch);
}

function shiftNote(semitones) {
  const e = state.editing;
  if (!e) return;
  const base = e.pitch === null ? (e.original === null ? 67 : e.original) : e.pitch;
  e.pitch = Math.max(0, Math.min(127, base + (e.pitch === null ? 0 : semitones)));
  $("note-name").textContent = pitchName(e.pitch);
}

function applyNote() {
  const e = state.editing;
  closeNoteEditor();
  if (!e) return;
  const melody = structuredClone(current().melody);
  melody.tokens[e.start] = e.pitch === null ? "r" : String(e.pitch);
  const fixes = current().fixes.filter((f) => f.step !== e.start).concat([{ step: e.start, pitch: e.pitch }]);
  const bar = state.view.bars.find((b) => b.start <= e.start && e.start < b.end);
  busy("Fixing the note", () => push(normalize(melody), `Bar ${bar ? bar.number : "?"}: note set to ${pitchName(e.pitch)}`, fixes)
    .then(() => status(`Note fixed: regenerating its bar keeps it.`)));
}

function normalize(melody) {
  // Merge a rest into a rest before it, as the encoding does; rebuild the note list. A rest at the
  // end stays: the melody keeps its length (and its form's, which regeneration checks).
  const tokens = [];
  for (const t of melody.tokens) tokens.push(t === "r" && tokens.length && isRestAt(tokens) ? "_" : t);
  melody.tokens = tokens;
  const notes = [];
  for (const t of tokens) {
    if (t === "_") notes[notes.length - 1][1] += 1;
    else notes.push([t === "r" ? null : Number(t), 1]);
  }
  melody.song.notes = notes;
  return melody;
}

function isRestAt(tokens) {
  for (let i = tokens.length - 1; i >= 0; i--) if (tokens[i] !== "_") return tokens[i] === "r";
  return false;
}

function closeNoteEditor() {
  $("note-editor").hidden = true;
  state.editing = null;
}
