// Front end of lmnt_sync.playback.browser_player.BrowserPlayer (anywidget ESM).
//
// PCM chunks arrive as binary custom messages ({type:"audio", offset} + one buffer) and are
// scheduled back to back as AudioBufferSourceNodes on one AudioContext; a preroll (jitter
// buffer) is kept before starting and after an underrun. Positions are "sent frames": the
// kernel's byte offset / frame size, the same count the kernel uses for word positions.
// Played (or dropped) bytes are acknowledged so the kernel can send more (back-pressure).
// Everything lives on the model (initialize), so a second view shows the same playback.

const TICK_MS = 25;

// CRC-32 (IEEE), to check in the page that every byte arrived in order.
const CRC_TABLE = (() => {
  const table = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    table[n] = c >>> 0;
  }
  return table;
})();

function crc32(crc, bytes) {
  let c = (crc ^ 0xffffffff) >>> 0;
  for (let i = 0; i < bytes.length; i++) c = CRC_TABLE[(c ^ bytes[i]) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

function toFloats(bytes, format) {
  const copy = bytes.slice().buffer; // aligned copy: the message's buffer may start at any byte
  if (format === "pcm_f32le") return new Float32Array(copy);
  const ints = new Int16Array(copy);
  const floats = new Float32Array(ints.length);
  for (let i = 0; i < ints.length; i++) floats[i] = ints[i] / 32768;
  return floats;
}

class Engine {
  constructor(model) {
    this.model = model;
    this.rate = model.get("sample_rate");
    this.format = model.get("sample_format");
    this.frameBytes = this.format === "pcm_f32le" ? 4 : 2;
    this.preroll = model.get("preroll");
    this.views = new Set();
    this.ctx = new AudioContext({ sampleRate: this.rate });
    this.analyser = this.ctx.createAnalyser();
    this.analyser.fftSize = 512;
    this.out = this.ctx.createGain();
    this.out.connect(this.analyser);
    this.analyser.connect(this.ctx.destination);
    this.queue = []; // received, not yet scheduled: {floats, frame0, end}
    this.scheduled = []; // {node, t0, frame0, frames, end}
    this.words = []; // words not yet heard: {text, at, heardAt, dropped}
    this.allWords = []; // every word shown, in arrival order
    this.nextTime = 0;
    this.playing = false; // scheduling (false while prerolling)
    this.discarding = false; // after Stop until the kernel's "stopped"
    this.stats = {
      received: 0, expected: 0, crc: 0, inOrder: true, maxChunk: 0, heardFrame: 0, acked: 0, maxBufferedBytes: 0, underruns: 0,
      state: "waiting", ended: null, verified: null, highlighted: [], stops: 0, stoppedAt: null,
      soundAfterStop: 0, soundWhilePlaying: 0, heardAtStop: null, firstAudio: null, lastHeard: null,
    };
    this.onMessage = (msg, buffers) => this.handle(msg, buffers);
    model.on("msg:custom", this.onMessage);
    this.timer = setInterval(() => this.tick(), TICK_MS);
    model.send({ type: "ready" });
  }

  handle(msg, buffers) {
    const s = this.stats;
    if (msg.type === "audio") {
      const bytes = new Uint8Array(buffers[0].buffer, buffers[0].byteOffset, buffers[0].byteLength);
      if (msg.offset !== s.expected) s.inOrder = false;
      s.expected = msg.offset + bytes.length;
      if (s.ended) s.ended = s.verified = null; // audio after "end" is the next source
      s.crc = crc32(s.crc, bytes);
      s.received += bytes.length;
      s.maxChunk = Math.max(s.maxChunk, bytes.length);
      if (!this.discarding) {
        this.queue.push({ floats: toFloats(bytes, this.format), frame0: msg.offset / this.frameBytes, end: s.expected });
        if (s.state === "waiting" || s.state === "ended" || s.state === "stopped") s.state = "buffering";
      }
      this.schedule();
    } else if (msg.type === "words") {
      for (const w of msg.words) {
        const word = { text: w.text, at: w.at, heardAt: null, dropped: false, arrivedAt: this.stats.heardFrame };
        this.words.push(word);
        this.allWords.push(word);
      }
    } else if (msg.type === "stopped") {
      if (!this.discarding) this.silence(); // the kernel stopped it (player.stop())
      this.discarding = false;
      s.expected = s.acked = msg.offset; // audio resumes there; what came before is void
      const from = msg.offset / this.frameBytes;
      for (const w of this.words) w.dropped = w.dropped || w.at < from;
      this.words = this.words.filter((w) => !w.dropped);
    } else if (msg.type === "end") {
      s.ended = { bytes: msg.bytes, crc32: msg.crc32 };
      s.verified = s.inOrder && msg.bytes === s.received && msg.crc32 === s.crc;
      this.schedule();
    }
    this.render();
  }

  bufferedSeconds() {
    let frames = 0;
    for (const c of this.queue) frames += c.floats.length;
    return frames / this.rate + Math.max(0, this.nextTime - this.ctx.currentTime);
  }

  schedule() {
    const s = this.stats;
    if (!this.playing) {
      // Jitter buffer: start once the preroll is buffered, or when no more is coming.
      if (!this.queue.length || (this.bufferedSeconds() < this.preroll && !s.ended)) return;
      this.playing = true;
      s.state = "playing";
      this.nextTime = this.ctx.currentTime + 0.02;
    }
    while (this.queue.length) {
      const chunk = this.queue.shift();
      const buffer = this.ctx.createBuffer(1, chunk.floats.length, this.rate);
      buffer.copyToChannel(chunk.floats, 0);
      const node = this.ctx.createBufferSource();
      node.buffer = buffer;
      node.connect(this.out);
      node.start(this.nextTime);
      if (s.firstAudio === null) s.firstAudio = { ctx: this.nextTime, wall: performance.now() + (this.nextTime - this.ctx.currentTime) * 1000 };
      this.scheduled.push({ node, t0: this.nextTime, frame0: chunk.frame0, frames: chunk.floats.length, end: chunk.end });
      this.nextTime += chunk.floats.length / this.rate;
    }
    s.maxBufferedBytes = Math.max(s.maxBufferedBytes, s.expected - s.acked);
  }

  heardTime() {
    // The context time of the sample leaving the speakers now (output latency taken off).
    const stamp = this.ctx.getOutputTimestamp ? this.ctx.getOutputTimestamp() : null;
    return stamp && stamp.contextTime ? stamp.contextTime : this.ctx.currentTime;
  }

  tick() {
    const s = this.stats;
    const now = this.heardTime();
    let ackTo = s.acked;
    while (this.scheduled.length) {
      const c = this.scheduled[0];
      if (now < c.t0) break;
      s.heardFrame = Math.max(s.heardFrame, c.frame0 + Math.min(c.frames, Math.floor((now - c.t0) * this.rate)));
      if (now < c.t0 + c.frames / this.rate) break;
      ackTo = c.end;
      this.scheduled.shift();
    }
    if (this.playing && !this.scheduled.length && !this.queue.length) {
      // Out of audio: an underrun if more is coming, the end otherwise.
      this.playing = false;
      if (s.ended && s.received >= s.ended.bytes) {
        s.state = "ended";
        this.model.send({ type: "done", bytes: s.received, crc32: s.crc, verified: s.verified });
      } else {
        s.underruns += 1;
        s.state = "buffering";
      }
    } else if (!this.playing && s.ended && s.state !== "ended" && !this.queue.length && !this.scheduled.length) {
      s.state = "ended"; // nothing (more) was sent
      this.model.send({ type: "done", bytes: s.received, crc32: s.crc, verified: s.verified });
    }
    if (!this.playing) this.schedule();
    while (this.words.length && this.words[0].at <= s.heardFrame) {
      const w = this.words.shift();
      w.heardAt = s.heardFrame;
      s.highlighted.push({ text: w.text, at: w.at, heardAt: s.heardFrame, arrivedAt: w.arrivedAt });
    }
    this.measure(now);
    if (ackTo > s.acked) {
      s.acked = ackTo;
      this.model.send({ type: "ack", bytes: ackTo });
    }
    this.render();
  }

  measure(now) {
    // Sound level at the output: evidence that audio plays, and that Stop silenced it.
    const samples = new Float32Array(this.analyser.fftSize);
    this.analyser.getFloatTimeDomainData(samples);
    let peak = 0;
    for (const x of samples) peak = Math.max(peak, Math.abs(x));
    const s = this.stats;
    if (peak > 0) {
      if (s.stoppedAt !== null && !this.playing && now > s.stoppedAt + 0.1) s.soundAfterStop += 1;
      if (this.playing) s.soundWhilePlaying += 1;
    }
    if (this.playing) s.lastHeard = { ctx: now, wall: performance.now(), frame: s.heardFrame };
  }

  stop() {
    // Barge-in from the page: silence now, and tell the kernel (which resets the session).
    this.silence();
    this.model.send({ type: "stop" });
    this.render();
  }

  silence() {
    // Stop every scheduled sound and drop what is queued; audio still in flight is dropped
    // until the kernel's "stopped" says where the stream resumes.
    const s = this.stats;
    for (const c of this.scheduled) {
      try { c.node.stop(); } catch (e) { /* already ended */ }
      c.node.disconnect();
    }
    this.scheduled = [];
    this.queue = [];
    this.playing = false;
    this.discarding = true;
    for (const w of this.words) w.dropped = true;
    this.words = [];
    s.stops += 1;
    s.stoppedAt = this.ctx.currentTime;
    s.heardAtStop = s.heardFrame;
    s.state = "stopped";
    s.acked = s.expected;
  }

  render() {
    for (const view of this.views) view();
  }

  destroy() {
    clearInterval(this.timer);
    this.model.off("msg:custom", this.onMessage);
    this.ctx.close();
  }
}

// The model handed to initialize() and to render() are different proxies of one model, so
// engines are found by the model's own id (a synced trait set by the kernel).
const engines = new Map();

export default {
  initialize({ model }) {
    const engine = new Engine(model);
    const id = model.get("player_id");
    engines.set(id, engine);
    return () => {
      engines.delete(id);
      engine.destroy();
    };
  },

  render({ model, el }) {
    const engine = engines.get(model.get("player_id"));
    const root = document.createElement("div");
    root.className = "lmnt-player";
    root.lmnt = engine; // for tests and debugging: the stats live on engine.stats
    const bar = document.createElement("progress");
    bar.max = 1;
    bar.value = 0;
    const label = document.createElement("span");
    label.className = "lmnt-status";
    const stop = document.createElement("button");
    stop.className = "lmnt-stop";
    stop.textContent = "■ Stop";
    stop.addEventListener("click", () => engine.stop());
    const sound = document.createElement("button");
    sound.className = "lmnt-sound";
    sound.textContent = "▶ Enable sound";
    sound.addEventListener("click", () => engine.ctx.resume());
    const words = document.createElement("div");
    words.className = "lmnt-words";
    const controls = document.createElement("div");
    controls.className = "lmnt-controls";
    controls.append(stop, sound, bar, label);
    root.append(controls, words);
    el.appendChild(root);
    const spans = [];

    const update = () => {
      const s = engine.stats;
      const fb = engine.frameBytes;
      const heard = s.heardFrame / engine.rate;
      const received = s.received / fb / engine.rate;
      bar.max = Math.max(received, 0.001);
      bar.value = Math.min(heard, received);
      label.textContent = `${s.state} · ${heard.toFixed(1)} s of ${received.toFixed(1)} s`;
      root.dataset.state = s.state;
      root.dataset.received = String(s.received);
      root.dataset.verified = s.verified === null ? "" : String(s.verified);
      root.dataset.highlighted = String(s.highlighted.length);
      sound.hidden = engine.ctx.state === "running";
      while (spans.length < engine.allWords.length) {
        const span = document.createElement("span");
        span.textContent = engine.allWords[spans.length].text;
        spans.push(span);
        words.append(span, " ");
      }
      let current = -1;
      engine.allWords.forEach((w, i) => { if (w.heardAt !== null) current = i; });
      engine.allWords.forEach((w, i) => {
        spans[i].className = "lmnt-word" + (w.heardAt !== null ? " lmnt-heard" : "") +
          (w.dropped ? " lmnt-dropped" : "") + (i === current && engine.playing ? " lmnt-current" : "");
      });
    };
    engine.views.add(update);
    update();
    return () => engine.views.delete(update);
  },
};
