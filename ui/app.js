// Deskrec's window: what the agent engine is doing, for the agent at a
// glance, and diagnostics for support behind a PIN.
//
// Plain JavaScript with no build step (Tauri's `withGlobalTauri`). The
// contract with the app is docs/tray.md: one `status` and one `queue`
// invoke at load, then the page changes only on the `deskrec://status`,
// `deskrec://queue` and `deskrec://notice` events; no polling. A 1 s timer
// only rewrites relative times ("3 min ago") already on the page.
//
// Every piece of data reaches the page through textContent or attributes,
// never through innerHTML.

'use strict';

(() => {
  const tauri = window.__TAURI__;
  const $ = (id) => document.getElementById(id);

  // ---------------------------------------------------------------- helpers

  /** An element with attributes (`class`, `hidden`, others) and children. */
  function h(tag, attrs, ...children) {
    const el = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k === 'class') el.className = v;
      else if (k === 'dataset') Object.assign(el.dataset, v);
      else if (k in el && typeof v !== 'string') el[k] = v;
      else el.setAttribute(k, v === true ? '' : String(v));
    }
    for (const c of children.flat()) {
      if (c === null || c === undefined || c === false) continue;
      el.append(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return el;
  }

  /** Sets an element's text, hiding it when the text is empty. */
  function say(el, text) {
    el.textContent = text || '';
    el.hidden = !text;
  }

  /** Bytes as B, KB, MB or GB (powers of 1024, one decimal). */
  function fmtBytes(n) {
    if (n === null || n === undefined || !Number.isFinite(Number(n))) return '–';
    n = Number(n);
    const units = ['B', 'KB', 'MB', 'GB', 'TB'];
    let i = 0;
    while (Math.abs(n) >= 1024 && i < units.length - 1) {
      n /= 1024;
      i++;
    }
    return i === 0 ? `${n} B` : `${n.toFixed(1)} ${units[i]}`;
  }

  /** A rate in bytes per second as MB/s. */
  function fmtRate(bps) {
    return `${(Number(bps) / 1048576).toFixed(1)} MB/s`;
  }

  const sameDay = (a, b) => a.toDateString() === b.toDateString();

  /** µs since the epoch as local time; the date too unless it is today. */
  function fmtTime(us, seconds = false) {
    if (us === null || us === undefined) return '–';
    const d = new Date(Number(us) / 1000);
    const time = d.toLocaleTimeString([], {
      hour: '2-digit', minute: '2-digit', ...(seconds ? { second: '2-digit' } : {}),
    });
    return sameDay(d, new Date()) ? time : `${d.toLocaleDateString()} ${time}`;
  }

  /** A duration in seconds as "12 s", "4 min", "3 h", "2 d". */
  function fmtDuration(s) {
    s = Math.abs(s);
    if (s < 60) return `${Math.round(s)} s`;
    if (s < 3600) return `${Math.floor(s / 60)} min`;
    if (s < 86400) return `${Math.floor(s / 3600)} h`;
    return `${Math.floor(s / 86400)} d`;
  }

  /** µs since the epoch relative to now: "3 min ago", "in 20 s". */
  function fmtRelative(us) {
    const s = (Number(us) / 1000 - Date.now()) / 1000;
    if (Math.abs(s) < 5) return 'just now';
    return s < 0 ? `${fmtDuration(s)} ago` : `in ${fmtDuration(s)}`;
  }

  /** A <time> showing a relative time, kept current by the 1 s timer. */
  function rel(us) {
    return h('time', {
      datetime: new Date(Number(us) / 1000).toISOString(),
      title: fmtTime(us, true),
      dataset: { at: String(us) },
    }, fmtRelative(us));
  }

  /** "10:42 (3 min ago)" as nodes. */
  function when(us) {
    if (us === null || us === undefined) return ['–'];
    return [fmtTime(us), ' (', rel(us), ')'];
  }

  /** What an invoke's error says: `{code, message}` or anything else. */
  function errorText(e) {
    if (e && typeof e === 'object' && e.message) return String(e.message);
    if (typeof e === 'string') return e;
    try {
      return JSON.stringify(e);
    } catch {
      return String(e);
    }
  }

  function showError(what, e) {
    $('error-text').textContent = `${what}: ${errorText(e)}`;
    $('error').hidden = false;
  }

  async function call(cmd, args) {
    if (!tauri || !tauri.core) throw { code: 'no_app', message: 'This window only works inside the Deskrec app.' };
    return tauri.core.invoke(cmd, args);
  }

  // ----------------------------------------------------------------- status

  let status = null;
  let queue = null;

  const CONNECTION = { connected: 'Connected', connecting: 'Connecting…', offline: 'Offline' };

  function renderStatus(s) {
    status = s;
    const ind = s.indicator || {};
    $('banner').dataset.kind = ind.kind || 'unknown';
    $('headline').textContent = ind.headline || s.state || '–';
    $('detail').textContent = ind.detail || '';
    const meta = [];
    meta.push(s.login ? `Signed in as ${s.login}` : 'No one is signed in');
    if (s.locked) meta.push('screen locked');
    $('banner-meta').textContent = meta.join(' · ');

    const conn = $('connection');
    conn.dataset.connection = s.connection || '';
    conn.replaceChildren();
    if (s.connection === 'connected') {
      conn.append('Connected', ...(s.connected_at ? [' since ', ...when(s.connected_at)] : []));
    } else if (s.connection === 'offline') {
      conn.append('Offline', ...(s.offline_since ? [' since ', ...when(s.offline_since)] : []));
      const more = [];
      if (s.state === 'recording') more.push('Recording goes on under the policy received earlier.');
      more.push('Uploads wait until the server can be reached.');
      conn.append(h('br'), h('span', { class: 'meta' }, more.join(' ')));
    } else {
      conn.append(CONNECTION[s.connection] || String(s.connection || '–'));
    }
    if (s.enrolled === false) {
      $('server-url').textContent = 'This PC is not enrolled with a Deskrec server.';
    } else {
      $('server-url').textContent = [s.server_url, s.device_id && `device ${s.device_id}`].filter(Boolean).join(' · ');
    }
    const err = $('last-error');
    err.replaceChildren();
    if (s.last_error) {
      err.append(h('strong', {}, 'Last error'), ...(s.last_error_at ? [' at ', ...when(s.last_error_at)] : []), ': ', s.last_error);
    }
    err.hidden = !s.last_error;

    renderDisk(s);
    renderPause(s);
    $('quit').hidden = s.allow_quit !== true;
    renderSegments();
  }

  function renderDisk(s) {
    const meter = $('disk-meter');
    const text = $('disk-text');
    const free = s.disk_free_bytes;
    const floor = s.disk_floor_bytes || 0;
    if (free === null || free === undefined) {
      meter.hidden = true;
      text.textContent = 'Free space unknown.';
      return;
    }
    // The full bar is ten times the floor (or the free space, if more):
    // the bar turns amber below twice the floor and red below it.
    meter.hidden = false;
    meter.max = Math.max(free, floor * 10, 1);
    meter.low = floor;
    meter.high = floor * 2;
    meter.optimum = meter.max;
    meter.value = free;
    const below = free < floor;
    meter.dataset.below = below ? 'true' : 'false';
    text.textContent = below
      ? `${fmtBytes(free)} free: below the floor of ${fmtBytes(floor)}. Recording stops and the oldest recordings are deleted.`
      : `${fmtBytes(free)} free; recording stops below ${fmtBytes(floor)}.`;
    text.classList.toggle('problem', below);
  }

  // ------------------------------------------------------------------ pause

  /** A pause reason as people read it (as the engine's `pause_label`):
   * `card_payment` is "Card payment". */
  function reasonLabel(reason) {
    const words = String(reason).replace(/[_-]/g, ' ').trim();
    return words ? words[0].toUpperCase() + words.slice(1) : String(reason);
  }

  const PAUSED_BY = {
    agent: 'You paused recording',
    api: "The contact centre's systems paused recording",
    rule: 'A window in front paused recording',
  };

  /** The pause in effect and what the agent may do, as the tray's menu:
   * the policy's reasons while nothing is paused, "Resume recording"
   * while the agent's own pause is in effect, neither while the contact
   * centre's systems or a window rule pause (only they end theirs). */
  function renderPause(s) {
    const p = s.pause || null;
    const reasons = p ? [] : (s.pause_reasons || []);
    const state = $('pause-state');
    state.replaceChildren();
    if (p) {
      state.dataset.source = p.source;
      state.append(h('strong', {}, `${PAUSED_BY[p.source] || 'Recording is paused'}: ${reasonLabel(p.reason)}`), '. ',
        ...(p.until !== null && p.until !== undefined
          ? ['It resumes by itself at ', ...when(p.until), '.']
          : ['It resumes when that window is no longer in front.']));
    }
    state.hidden = !p;
    $('pause-reasons').replaceChildren(...reasons.map((r) => h('button', { type: 'button', dataset: { reason: r } }, reasonLabel(r))));
    $('pause-offer').hidden = reasons.length === 0;
    $('resume').hidden = !(p && p.source === 'agent');
    $('pause').hidden = !p && reasons.length === 0;
  }

  // ------------------------------------------------------------------ queue

  const ACTIVE = new Set(['queued', 'splicing', 'uploading']);
  const STATE_LABEL = {
    queued: 'Waiting', splicing: 'Preparing', uploading: 'Uploading',
    done: 'Uploaded', unrecoverable: 'Not uploaded',
  };
  // A disposed contact: the server erased it (or its retention ended)
  // before the recording arrived; the recording was deleted here.
  const DISPOSED_LABEL = { erased: 'Erased on the server', expired: 'Expired on the server' };

  function stateLabel(c) {
    if (c.state === 'disposed') return DISPOSED_LABEL[c.reason] || DISPOSED_LABEL.erased;
    return STATE_LABEL[c.state] || c.state;
  }

  function span(c) {
    const secs = (Number(c.end) - Number(c.start)) / 1e6;
    return `Contact ${fmtTime(c.start, true)} – ${fmtTime(c.end, true)} (${fmtDuration(secs)})`;
  }

  function contactItem(c) {
    const waiting = c.next_attempt_at !== null && c.next_attempt_at !== undefined;
    const label = waiting ? 'Waiting to retry' : stateLabel(c);
    const li = h('li', { class: 'contact', dataset: { contact: c.contact_id, state: c.state } },
      h('div', { class: 'contact-head' },
        h('strong', { class: 'contact-id' }, c.contact_id),
        h('span', { class: `badge state-${waiting ? 'backoff' : c.state}` }, label)),
      h('div', { class: 'meta' }, span(c)));
    const known = c.bytes !== null && c.bytes !== undefined;
    if (known) {
      const bar = h('progress', { max: Math.max(Number(c.bytes), 1), value: Number(c.uploaded_bytes || 0) });
      bar.setAttribute('aria-label', `Upload of ${c.contact_id}`);
      li.append(bar);
      const parts = [`${fmtBytes(c.uploaded_bytes || 0)} of ${fmtBytes(c.bytes)}`];
      if (c.state === 'uploading' && !waiting && c.rate_bytes_per_second > 0) parts.push(fmtRate(c.rate_bytes_per_second));
      li.append(h('div', { class: 'progress-text' }, parts.join(' · ')));
    } else if (c.state === 'splicing') {
      const bar = h('progress', {});
      bar.setAttribute('aria-label', `Preparing ${c.contact_id}`);
      li.append(bar);
    }
    if (waiting) {
      li.append(h('div', { class: 'next-attempt' }, 'Next attempt at ', ...when(c.next_attempt_at),
        c.attempts ? ` · ${c.attempts} attempt${c.attempts === 1 ? '' : 's'} so far` : ''));
    }
    if (c.last_error) li.append(h('div', { class: 'problem' }, c.last_error));
    return li;
  }

  function recentItem(c) {
    const ok = c.state === 'done';
    // Not a failure: nothing to fix, nothing kept.
    const disposed = c.state === 'disposed';
    let note = null;
    if (disposed) {
      note = h('div', { class: 'meta' }, 'Not uploaded: the server no longer keeps this contact. The recording was deleted from this PC.');
    } else if (!ok) {
      note = h('div', { class: 'problem' },
        [c.reason && `Reason: ${c.reason.replaceAll('_', ' ')}`, c.last_error].filter(Boolean).join('. '));
    }
    return h('li', { class: `contact ${ok || disposed ? '' : 'failed'}`, dataset: { contact: c.contact_id, state: c.state } },
      h('div', { class: 'contact-head' },
        h('strong', { class: 'contact-id' }, c.contact_id),
        h('span', { class: `badge state-${c.state}` }, stateLabel(c))),
      h('div', { class: 'meta' }, ok
        ? [fmtBytes(c.bytes), ' uploaded at ', fmtTime(c.updated_at)]
        : [span(c)]),
      note);
  }

  function renderQueue(q) {
    queue = q;
    const contacts = q.contacts || [];
    const active = contacts.filter((c) => ACTIVE.has(c.state));
    const recent = contacts.filter((c) => !ACTIVE.has(c.state))
      .sort((a, b) => Number(b.updated_at) - Number(a.updated_at));
    $('contacts').replaceChildren(...active.map(contactItem));
    $('no-contacts').hidden = active.length > 0;
    $('retry-now').hidden = !active.some((c) => c.next_attempt_at !== null && c.next_attempt_at !== undefined);
    $('recent').replaceChildren(...recent.map(recentItem));
    $('recent-box').hidden = recent.length === 0;
    const today = q.uploaded_today || { contacts: 0, bytes: 0 };
    $('uploaded-today').textContent = today.contacts
      ? `Uploaded today: ${today.contacts} contact${today.contacts === 1 ? '' : 's'}, ${fmtBytes(today.bytes)}`
      : 'Nothing uploaded today.';
    renderSegments();
  }

  function renderSegments() {
    if (!queue) return;
    const segs = queue.segments || [];
    const total = segs.reduce((n, s) => n + Number(s.bytes || 0), 0);
    $('segments-summary').textContent = segs.length
      ? `${segs.length} segment${segs.length === 1 ? '' : 's'} on disk, ${fmtBytes(total)}`
      : 'No segments on disk.';
    const oldest = segs[0];
    const oldestEl = $('segments-oldest');
    oldestEl.replaceChildren(...(oldest ? ['Oldest from ', ...when(oldest.started_at)] : []));
    oldestEl.hidden = !oldest;
    const writing = segs.find((s) => s.writing);
    const wEl = $('segments-writing');
    wEl.replaceChildren();
    if (writing) {
      wEl.append('Writing ', h('code', {}, writing.name), ' since ', ...when(writing.started_at),
        `, ${fmtBytes(writing.bytes)} so far`);
    } else if (status && status.current_segment) {
      wEl.append('Writing ', h('code', {}, status.current_segment));
    } else {
      wEl.append('No segment being written.');
    }
  }

  // ---------------------------------------------------------------- notices

  function renderNotice(n) {
    const box = $('notices');
    const item = h('div', { class: 'notice', dataset: { kind: n.kind || '' } },
      h('strong', {}, n.title || ''), ' ', n.body || '',
      n.at ? h('span', { class: 'meta' }, ' · ', rel(n.at)) : null);
    box.prepend(item);
    while (box.children.length > 3) box.lastElementChild.remove();
  }

  // ------------------------------------------------------------ diagnostics

  let unlockedPin;

  function dl(el, rows) {
    el.replaceChildren(...rows.flatMap(([k, v, cls]) => [
      h('dt', {}, k),
      h('dd', { class: cls || null }, ...(Array.isArray(v) ? v : [v ?? '–'])),
    ]));
  }

  function renderDiagnostics(d) {
    dl($('d-device'), [
      ['Device id', d.device_id, 'mono'],
      ['Computer', d.host],
      ['Version', d.version],
      ['Data folder', d.data_dir, 'mono'],
    ]);
    dl($('d-server'), [
      ['Address', d.server_url, 'mono'],
      ['Server key', d.server_fingerprint, 'mono'],
    ]);
    const p = d.policy;
    dl($('d-policy'), p ? [
      ['Record', p.record ? 'yes' : 'no'],
      ['Reason', p.reason],
      ['Login', p.login],
      ['Received', when(p.received_at)],
      ['Expires', when(p.expires_at)],
      ['Frame rate', p.fps !== undefined ? `${p.fps} fps` : '–'],
      ['Segment length', p.segment_seconds !== undefined ? fmtDuration(p.segment_seconds) : '–'],
    ] : [['Policy', 'No policy received yet.']]);
    const off = d.clock_offset_us;
    dl($('d-sync'), [
      ['Clock offset', off === null || off === undefined ? 'not measured'
        : `${off >= 0 ? '+' : ''}${(off / 1000).toFixed(1)} ms (server ${off >= 0 ? 'ahead' : 'behind'})`],
      ['Measured', d.clock_measured_at ? when(d.clock_measured_at) : 'never'],
      ['Contact cursor', d.contact_cursor ?? 'none'],
      ['Watermark', d.watermark ? [fmtTime(d.watermark, true)] : 'none'],
    ]);
    const segs = d.segments || [];
    $('d-segments').replaceChildren(...segs.map((s) => {
      const flags = [s.writing && 'writing', s.complete === false && !s.writing && 'incomplete'].filter(Boolean);
      const disc = s.discrepancies || [];
      return h('li', { class: 'segment' },
        h('code', {}, s.name), flags.length ? ` (${flags.join(', ')})` : '',
        h('div', { class: 'meta' },
          `${fmtTime(s.started_at, true)} – ${s.ended_at ? fmtTime(s.ended_at, true) : 'now'} · ${fmtBytes(s.bytes)}`),
        disc.length
          ? h('ul', { class: 'discrepancies' }, disc.map((x) => h('li', { class: 'problem' }, x)))
          : h('div', { class: 'meta' }, 'No discrepancies'));
    }));
    $('d-segments-none').hidden = segs.length > 0;
    const audit = d.audit || [];
    $('d-audit').replaceChildren(...audit.map((a) => h('li', { class: 'audit' },
      h('span', { class: 'meta' }, fmtTime(a.at, true)), ' ',
      h('strong', {}, a.action), a.target ? [' ', h('code', {}, a.target)] : '',
      a.detail && a.detail !== '{}' ? h('div', { class: 'mono meta' }, a.detail) : null)));
    $('d-audit-none').hidden = audit.length > 0;
    $('diag').hidden = false;
  }

  function lockDiagnostics() {
    unlockedPin = undefined;
    $('diag').hidden = true;
    $('pin').value = '';
    say($('diag-error'), '');
    say($('saved'), '');
  }

  async function unlock(ev) {
    ev.preventDefault();
    const pin = $('pin').value === '' ? null : $('pin').value;
    const button = $('unlock');
    button.disabled = true;
    say($('diag-error'), '');
    try {
      const d = await call('diagnostics', { pin });
      unlockedPin = pin;
      renderDiagnostics(d);
    } catch (e) {
      $('diag').hidden = true;
      say($('diag-error'), errorText(e));
    } finally {
      button.disabled = false;
    }
  }

  async function saveDiagnostics() {
    const out = $('saved');
    const button = $('save-diag');
    button.disabled = true;
    out.classList.remove('problem');
    say(out, 'Saving…');
    try {
      const path = await call('save_diagnostics', { pin: unlockedPin ?? null });
      out.replaceChildren('Saved to ', h('code', {}, String(path)));
      out.hidden = false;
    } catch (e) {
      out.classList.add('problem');
      say(out, `Could not save the diagnostics: ${errorText(e)}`);
    } finally {
      button.disabled = false;
    }
  }

  // ---------------------------------------------------------------- actions

  async function retryNow() {
    const button = $('retry-now');
    button.disabled = true;
    try {
      const n = await call('retry_now');
      say($('retry-result'), n ? `Retrying ${n} upload${n === 1 ? '' : 's'} now.` : 'Nothing to retry.');
    } catch (e) {
      showError('Could not retry the uploads', e);
    } finally {
      button.disabled = false;
    }
  }

  /** Runs `cmd` from the pause card with its buttons disabled; the page
   * changes when the status event follows. A refusal shows the engine's
   * words. */
  async function pauseCommand(cmd, args, what) {
    const buttons = [...document.querySelectorAll('#pause button')];
    for (const b of buttons) b.disabled = true;
    try {
      await call(cmd, args);
    } catch (e) {
      showError(what, e);
    } finally {
      for (const b of buttons) b.disabled = false;
    }
  }

  async function quit() {
    try {
      await call('quit');
    } catch (e) {
      showError('Could not quit', e);
    }
  }

  // ------------------------------------------------------------------ views

  function route() {
    const diag = location.hash === '#diagnostics';
    $('view-status').hidden = diag;
    $('view-diagnostics').hidden = !diag;
    $(diag ? 'tab-diagnostics' : 'tab-status').setAttribute('aria-current', 'page');
    $(diag ? 'tab-status' : 'tab-diagnostics').removeAttribute('aria-current');
    if (!diag) lockDiagnostics();
  }

  /** Rewrites every relative time on the page (no IPC). */
  function tick() {
    for (const t of document.querySelectorAll('time[data-at]')) {
      const text = fmtRelative(t.dataset.at);
      if (t.textContent !== text) t.textContent = text;
    }
  }

  async function start() {
    $('error-close').addEventListener('click', () => { $('error').hidden = true; });
    $('retry-now').addEventListener('click', retryNow);
    $('quit').addEventListener('click', quit);
    $('pause-reasons').addEventListener('click', (ev) => {
      const button = ev.target.closest('button[data-reason]');
      if (button) pauseCommand('pause', { reason: button.dataset.reason }, 'Could not pause recording');
    });
    $('resume').addEventListener('click', () => pauseCommand('resume', undefined, 'Could not resume recording'));
    $('pin-form').addEventListener('submit', unlock);
    $('save-diag').addEventListener('click', saveDiagnostics);
    window.addEventListener('hashchange', route);
    route();
    setInterval(tick, 1000);

    if (!tauri || !tauri.core || !tauri.event) {
      showError('Deskrec is not available', 'this window only works inside the Deskrec app.');
      return;
    }
    // Listen first, so nothing said between the invokes and the listening
    // is lost; an event that arrives before an invoke's answer is newer
    // than that answer, which is then dropped.
    let statusFromEvent = false;
    let queueFromEvent = false;
    const listen = (name, fn) => tauri.event.listen(name, (e) => {
      try {
        fn(e.payload);
      } catch (err) {
        showError(`Could not show ${name}`, err);
      }
    });
    try {
      await Promise.all([
        listen('deskrec://status', (s) => {
          if (status && s.updated_at && status.updated_at && s.updated_at < status.updated_at) return;
          statusFromEvent = true;
          renderStatus(s);
        }),
        listen('deskrec://queue', (q) => { queueFromEvent = true; renderQueue(q); }),
        listen('deskrec://notice', renderNotice),
      ]);
    } catch (e) {
      showError('Could not listen to the app', e);
    }
    await Promise.all([
      call('status').then((s) => { if (!statusFromEvent) renderStatus(s); },
        (e) => showError('Could not read the status', e)),
      call('queue').then((q) => { if (!queueFromEvent) renderQueue(q); },
        (e) => showError('Could not read the upload queue', e)),
    ]);
    document.body.dataset.ready = 'true';
  }

  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', start);
  else start();
})();
