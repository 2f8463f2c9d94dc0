// tokd token playground. Talks to the public API only (/encodings, /encode, /decode,
// /chat_tokenize). Text from the user or the server is only ever set with textContent.
// window.__tokd exposes what the last render did (for the browser test).
'use strict';

const PAGE = 5000;          // tokens shown per page
const PER_FRAME = 1250;     // spans built per animation frame
const DEBOUNCE_MS = 150;
const $ = (id) => document.getElementById(id);
const enc8 = new TextEncoder();
const strict = new TextDecoder('utf-8', { fatal: true });

const state = {
  encodings: [], mode: 'text', seq: 0, frames: 0, renders: 0, requests: 0, busy: 0,
  panes: {},
};
window.__tokd = state;

function setStatus(msg, isError) {
  const s = $('status');
  s.textContent = msg || '';
  s.classList.toggle('error', !!isError);
}

async function api(path, body) {
  state.requests++;
  const opts = body === undefined ? {} : {
    method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(body),
  };
  const r = await fetch(path, opts);
  let j = null;
  try { j = await r.json(); } catch (e) { /* not JSON */ }
  if (!r.ok) throw new Error(j && j.error ? j.error.message : 'HTTP ' + r.status);
  return j;
}

function encodingInfo(name) {
  return state.encodings.find((e) => e.name === name) || null;
}

// ---- panes ---------------------------------------------------------------------------
function makePane(id) {
  const root = $(id);
  root.append($('pane-template').content.cloneNode(true));
  root.querySelector('.tokens').setAttribute('aria-label', `${root.getAttribute('aria-label')} (arrow keys move)`);
  const pane = {
    root, title: root.querySelector('.pane-title'), counts: root.querySelector('.counts'),
    copy: root.querySelector('.copy'), pager: root.querySelector('.pager'),
    label: root.querySelector('.page-label'), list: root.querySelector('.tokens'),
    data: null, page: 0, sel: -1, job: 0,
  };
  pane.copy.addEventListener('click', () => copyIds(pane));
  root.querySelector('.prev').addEventListener('click', () => showPage(pane, pane.page - 1));
  root.querySelector('.next').addEventListener('click', () => showPage(pane, pane.page + 1));
  const pick = (ev) => {
    const t = ev.target.closest('.tok');
    if (t && pane.list.contains(t)) select(pane, Number(t.dataset.i));
  };
  pane.list.addEventListener('mouseover', pick);
  pane.list.addEventListener('click', pick);
  pane.list.addEventListener('keydown', (ev) => {
    if (!pane.data || !pane.data.ids.length) return;
    const first = pane.page * PAGE, last = Math.min(pane.data.ids.length, first + PAGE) - 1;
    let i = pane.sel < first || pane.sel > last ? first : pane.sel;
    if (ev.key === 'ArrowRight' || ev.key === 'ArrowDown') i = Math.min(last, pane.sel < first ? first : i + 1);
    else if (ev.key === 'ArrowLeft' || ev.key === 'ArrowUp') i = Math.max(first, i - 1);
    else if (ev.key === 'Home') i = first;
    else if (ev.key === 'End') i = last;
    else return;
    ev.preventDefault();
    select(pane, i);
  });
  return pane;
}

function hex(bytes) {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join(' ');
}

function visible(text) {
  if (!$('show-ws').checked) return text;
  return text.replace(/ /g, '·').replace(/\t/g, '→').replace(/\r/g, '␍').replace(/\n/g, '↵\n');
}

// one token: its bytes of the UTF-8 text, shown as text when they are whole characters
function tokenView(data, i) {
  const s = data.offsets[i][0], e = data.offsets[i][1];
  const bytes = data.utf8.subarray(s, e);
  let text = null;
  try { text = strict.decode(bytes); } catch (err) { text = null; }
  return { s, e, bytes, text };
}

function countsOf(data) {
  const chars = data.chars;
  const n = data.ids.length;
  return [['tokens', n.toLocaleString()], ['characters', chars.toLocaleString()],
    ['bytes', data.utf8.length.toLocaleString()], ['chars/token', n ? (chars / n).toFixed(2) : '–']];
}

function renderCounts(pane) {
  pane.counts.replaceChildren();
  if (!pane.data) return;
  for (const [k, v] of countsOf(pane.data)) {
    const dt = document.createElement('dt'); dt.textContent = k;
    const dd = document.createElement('dd'); dd.textContent = v;
    dd.dataset.count = k;
    pane.counts.append(dt, dd);
  }
}

function showResult(pane, data, title) {
  pane.data = data;
  pane.sel = -1;
  pane.title.textContent = title;
  renderCounts(pane);
  showPage(pane, 0);
}

// Builds the page's spans a slice per animation frame, so a huge text never blocks the tab.
function showPage(pane, page) {
  const data = pane.data;
  const total = data ? data.ids.length : 0;
  const pages = Math.max(1, Math.ceil(total / PAGE));
  page = Math.max(0, Math.min(pages - 1, page));
  pane.page = page;
  pane.pager.hidden = pages <= 1;
  pane.label.textContent = total ? `tokens ${(page * PAGE + 1).toLocaleString()}–${Math.min(total, (page + 1) * PAGE).toLocaleString()} of ${total.toLocaleString()}` : '';
  pane.list.replaceChildren();
  const job = ++pane.job;
  const start = page * PAGE, end = Math.min(total, start + PAGE);
  state.renders++;
  state.frames = 0;
  state.rendered = 0;
  let i = start;
  const step = () => {
    if (job !== pane.job) return;
    state.frames++;
    const frag = document.createDocumentFragment();
    const stop = Math.min(end, i + PER_FRAME);
    for (; i < stop; i++) frag.append(tokenSpan(data, i));
    pane.list.append(frag);
    state.rendered = i - start;
    if (i < end) requestAnimationFrame(step);
    else pane.list.dataset.done = String(job);
  };
  if (total) requestAnimationFrame(step);
  else pane.list.dataset.done = String(job);
}

function tokenSpan(data, i) {
  const v = tokenView(data, i);
  const span = document.createElement('span');
  span.className = 'tok c' + (i % 8);
  span.dataset.i = String(i);
  span.setAttribute('role', 'option');
  if (v.s === v.e) { // a token with no text of its own (BOS/EOS added by the post-processor)
    span.classList.add('special');
    span.textContent = data.strings ? data.strings[i] : `[${data.ids[i]}]`;
  } else if (v.text === null) { // part of a character: its bytes
    span.classList.add('partial');
    span.textContent = '⟨' + hex(v.bytes) + '⟩';
  } else if (i > 0 && data.offsets[i - 1][1] > v.s) {
    // a normalizing tokenizer maps a token inside a character to the whole character, which
    // the previous token already showed: mark the continuation instead of repeating it
    span.classList.add('partial');
    span.textContent = '⟨+⟩';
  } else {
    span.textContent = visible(v.text);
    if (data.specialIds && data.specialIds.has(data.ids[i])) span.classList.add('special');
  }
  return span;
}

function select(pane, i) {
  if (!pane.data || i < 0 || i >= pane.data.ids.length) return;
  const old = pane.list.querySelector('.tok.sel');
  if (old) { old.classList.remove('sel'); old.removeAttribute('aria-selected'); }
  pane.sel = i;
  const span = pane.list.querySelector(`.tok[data-i="${i}"]`);
  if (span) {
    span.classList.add('sel');
    span.setAttribute('aria-selected', 'true');
    span.scrollIntoView({ block: 'nearest' });
  }
  const v = tokenView(pane.data, i);
  $('details').hidden = false;
  $('d-id').textContent = String(pane.data.ids[i]);
  $('d-str').textContent = pane.data.strings ? JSON.stringify(pane.data.strings[i]) : (v.text === null ? '(part of a character)' : JSON.stringify(v.text));
  const shared = (i > 0 && pane.data.offsets[i - 1][1] > v.s) || (i + 1 < pane.data.ids.length && pane.data.offsets[i + 1][0] < v.e);
  if (shared) $('d-str').textContent += ' (part of a character; the range is the whole character)';
  $('d-bytes').textContent = v.bytes.length ? hex(v.bytes) : '(none)';
  $('d-range').textContent = `[${v.s}, ${v.e})`;
}

async function copyIds(pane) {
  if (!pane.data) return;
  const text = JSON.stringify(pane.data.ids);
  try {
    await navigator.clipboard.writeText(text);
    setStatus(`Copied ${pane.data.ids.length.toLocaleString()} ids.`);
  } catch (e) {
    const t = document.createElement('textarea');
    t.value = text;
    document.body.append(t);
    t.select();
    document.execCommand('copy');
    t.remove();
    setStatus(`Copied ${pane.data.ids.length.toLocaleString()} ids.`);
  }
}

// ---- requests ------------------------------------------------------------------------
function specialSet(name) {
  const info = encodingInfo(name);
  return new Set(info ? Object.values(info.special_tokens) : []);
}

async function encodeText(name, text) {
  const body = {
    text, encoding: name, offsets: true, token_strings: true,
    add_special_tokens: $('add-special').checked,
    allowed_special: $('special').checked ? 'all' : 'none',
  };
  const r = await api('/encode', body);
  const utf8 = enc8.encode(text);
  return { ids: r.tokens, offsets: r.offsets, strings: r.token_strings, utf8, chars: countChars(text), specialIds: specialSet(name) };
}

function countChars(text) {
  let n = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c < 0xdc00 || c > 0xdfff) n++; // a low surrogate continues a character
  }
  return n;
}

async function chatTokens(name, messages) {
  const r = await api('/chat_tokenize', {
    encoding: name, messages, add_generation_prompt: $('gen-prompt').checked,
    add_special_tokens: $('add-special').checked,
  });
  const t = r.templated_text;
  return {
    ids: r.tokenize_response.map((x) => x.id), offsets: r.tokenize_response.map((x) => [x.start, x.stop]),
    strings: null, utf8: enc8.encode(t), chars: countChars(t), specialIds: specialSet(name),
  };
}

function titleOf(name) {
  const info = encodingInfo(name);
  return info ? `${info.name} (${info.kind})` : name;
}

async function update() {
  state.busy++;
  try {
    await refresh();
  } finally {
    state.busy--;
  }
}

async function refresh() {
  const seq = ++state.seq;
  const a = $('enc-a').value, b = $('enc-b').value;
  const both = $('compare').checked;
  $('pane-b').hidden = !both;
  $('results').classList.toggle('two', both);
  try {
    if (state.mode === 'text') {
      const text = $('input').value;
      const jobs = [encodeText(a, text)];
      if (both) jobs.push(encodeText(b, text));
      const res = await Promise.all(jobs);
      if (seq !== state.seq) return;
      showResult(state.panes.a, res[0], titleOf(a));
      if (both) showResult(state.panes.b, res[1], titleOf(b));
      setStatus('');
    } else if (state.mode === 'chat') {
      let messages;
      try { messages = JSON.parse($('chat-input').value); } catch (e) { setStatus('Messages: ' + e.message, true); return; }
      const names = both ? [a, b] : [a];
      const usable = names.filter((n) => (encodingInfo(n) || {}).chat_template);
      const res = await Promise.all(usable.map((n) => chatTokens(n, messages)));
      if (seq !== state.seq) return;
      names.forEach((n, k) => {
        const pane = k ? state.panes.b : state.panes.a;
        const at = usable.indexOf(n);
        if (at >= 0) showResult(pane, res[at], titleOf(n) + ' — chat template');
        else { pane.data = null; pane.list.replaceChildren(); renderCounts(pane); pane.title.textContent = `${n} has no chat template`; }
      });
      setStatus('');
    } else {
      const raw = $('ids-input').value.trim();
      if (!raw) { $('decoded').textContent = ''; return; }
      let ids;
      try { ids = raw.startsWith('[') ? JSON.parse(raw) : raw.split(/[\s,]+/).filter(Boolean).map(Number); } catch (e) { setStatus('Ids: ' + e.message, true); return; }
      const r = await api('/decode', { tokens: ids, encoding: a });
      if (seq !== state.seq) return;
      $('decoded').textContent = r.text;
      setStatus(`${ids.length.toLocaleString()} ids → ${countChars(r.text).toLocaleString()} characters`);
    }
  } catch (e) {
    if (seq === state.seq) setStatus(e.message, true);
  }
}

let timer = 0;
function schedule() {
  if (!timer) state.busy++; // a pending update counts as work in progress
  clearTimeout(timer);
  timer = setTimeout(() => { timer = 0; state.busy--; update(); }, DEBOUNCE_MS);
}

function setMode(mode) {
  state.mode = mode;
  for (const m of ['text', 'chat', 'decode']) {
    $('mode-' + m).setAttribute('aria-pressed', String(m === mode));
    $('panel-' + m).hidden = m !== mode;
  }
  $('results').hidden = mode === 'decode';
  $('details').hidden = true;
  update();
}

function refreshChatAvailability() {
  const info = encodingInfo($('enc-a').value);
  const ok = !!(info && info.chat_template);
  const btn = $('mode-chat');
  btn.disabled = !ok;
  btn.title = ok ? '' : 'This tokenizer has no chat template (load a model directory with --tokenizer)';
  $('chat-note').textContent = ok ? '' : btn.title;
  if (!ok && state.mode === 'chat') setMode('text');
}

async function init() {
  const panes = state.panes;
  panes.a = makePane('pane-a');
  panes.b = makePane('pane-b');
  $('chat-input').value = JSON.stringify([
    { role: 'system', content: 'You are a helpful assistant.' },
    { role: 'user', content: 'How many tokens is this?' },
  ], null, 2);
  $('input').value = 'Hello world! Tokenizers split text into pieces: naïve café, 東京, Привет, 🎉.';
  try {
    const r = await api('/encodings');
    state.encodings = r.encodings;
    for (const sel of [$('enc-a'), $('enc-b')]) {
      for (const e of r.encodings) {
        const o = document.createElement('option');
        o.value = e.name;
        o.textContent = `${e.name} (${e.kind})`;
        sel.append(o);
      }
    }
    $('enc-a').value = r.default;
    const other = r.encodings.find((e) => e.name !== r.default);
    $('enc-b').value = other ? other.name : r.default;
  } catch (e) {
    setStatus('Cannot list tokenizers: ' + e.message, true);
    return;
  }
  $('input').addEventListener('input', schedule);
  $('chat-input').addEventListener('input', schedule);
  $('ids-input').addEventListener('input', schedule);
  for (const id of ['show-ws', 'special', 'add-special', 'gen-prompt', 'enc-b']) $(id).addEventListener('change', update);
  $('enc-a').addEventListener('change', () => { refreshChatAvailability(); update(); });
  $('compare').addEventListener('change', () => { $('enc-b').disabled = !$('compare').checked; update(); });
  for (const m of ['text', 'chat', 'decode']) $('mode-' + m).addEventListener('click', () => setMode(m));
  refreshChatAvailability();
  update();
}

document.addEventListener('DOMContentLoaded', init);
