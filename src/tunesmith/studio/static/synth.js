// In-page synthesizer: a melody's notes → a 16-bit mono WAV Blob, so playback works where the
// server has no fluidsynth. Plucked instruments decay; bowed and blown ones sustain.
"use strict";

const Synth = (() => {
  const RATE = 22050;
  const PLUCKED = new Set([1, 25, 47, 106]);
  // Relative strengths of harmonics 1..5 per family: a soft, reedy, or bright tone.
  const TIMBRES = {
    pluck: [1.0, 0.45, 0.25, 0.12, 0.06],
    flute: [1.0, 0.2, 0.08, 0.03, 0.0],
    reed: [1.0, 0.6, 0.45, 0.3, 0.2],
    string: [1.0, 0.55, 0.35, 0.22, 0.14],
  };

  function family(program) {
    if (PLUCKED.has(program)) return "pluck";
    if ([74, 75, 76, 79].includes(program)) return "flute";
    if ([22, 69, 72, 110].includes(program)) return "reed";
    return "string";
  }

  // notes: [[pitch|null, steps], ...]; returns Float32Array samples.
  function render(notes, stepsPerQuarter, bpm, program) {
    const stepSeconds = 60 / bpm / stepsPerQuarter;
    const total = notes.reduce((sum, n) => sum + n[1], 0);
    const length = Math.ceil((total * stepSeconds + 0.5) * RATE);
    const out = new Float32Array(length);
    const kind = family(program);
    const harmonics = TIMBRES[kind];
    let step = 0;
    for (const [pitch, steps] of notes) {
      if (pitch !== null) {
        const freq = 440 * Math.pow(2, (pitch - 69) / 12);
        const start = Math.floor(step * stepSeconds * RATE);
        const dur = steps * stepSeconds;
        const n = Math.floor((dur + (kind === "pluck" ? 0.25 : 0.04)) * RATE);
        for (let i = 0; i < n && start + i < length; i++) {
          const t = i / RATE;
          const attack = Math.min(1, t / (kind === "pluck" ? 0.004 : 0.03));
          let env = kind === "pluck" ? Math.exp(-3.2 * t) : 0.85 + 0.15 * Math.exp(-6 * t);
          if (t > dur) env *= Math.max(0, 1 - (t - dur) / (kind === "pluck" ? 0.25 : 0.04));
          const vibrato = kind === "pluck" ? 0 : 0.003 * Math.sin(2 * Math.PI * 5.5 * t) * Math.min(1, t / 0.3);
          let v = 0;
          for (let h = 0; h < harmonics.length; h++) {
            if (harmonics[h]) v += harmonics[h] * Math.sin(2 * Math.PI * freq * (h + 1) * t * (1 + vibrato));
          }
          out[start + i] += 0.22 * attack * env * v;
        }
      }
      step += steps;
    }
    return out;
  }

  function wav(samples) {
    const buffer = new ArrayBuffer(44 + samples.length * 2);
    const view = new DataView(buffer);
    const text = (offset, s) => { for (let i = 0; i < s.length; i++) view.setUint8(offset + i, s.charCodeAt(i)); };
    text(0, "RIFF"); view.setUint32(4, 36 + samples.length * 2, true); text(8, "WAVE");
    text(12, "fmt "); view.setUint32(16, 16, true); view.setUint16(20, 1, true); view.setUint16(22, 1, true);
    view.setUint32(24, RATE, true); view.setUint32(28, RATE * 2, true); view.setUint16(32, 2, true);
    view.setUint16(34, 16, true); text(36, "data"); view.setUint32(40, samples.length * 2, true);
    let peak = 0;
    for (const s of samples) peak = Math.max(peak, Math.abs(s));
    const gain = peak > 0.98 ? 0.98 / peak : 1;
    for (let i = 0; i < samples.length; i++) {
      view.setInt16(44 + i * 2, Math.max(-1, Math.min(1, samples[i] * gain)) * 32767, true);
    }
    return new Blob([buffer], { type: "audio/wav" });
  }

  return { toWav: (song, bpm, program) => wav(render(song.notes, song.steps_per_quarter, bpm, program)) };
})();
