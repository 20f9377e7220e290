// The tray app's window (ui/) in Debian's Chromium, with Tauri's IPC faked.
//
//   node ui.mjs [SCREENSHOT_DIR] [--docs] [--only=TEXT]
//
// Serves ui/ on 127.0.0.1 (a free port), opens it at the window's size
// (420x640) with a fake `window.__TAURI__` that answers invokes from a
// fixture, records them, and lets a case emit the app's events. Each case
// asserts on what the page shows. A screenshot of each state goes to
// SCREENSHOT_DIR (default $CARGO_TARGET_DIR/ui-screenshots, else
// $HOME/.cache/deskrec/target/ui-screenshots); with --docs the ones
// docs/tray.md shows are copied to docs/img/tray-<state>.png (64 colours,
// with ImageMagick's convert where there is one).
//
// The page's clock is fixed (and its time zone and locale set) so times
// and screenshots are the same on every run.
//
// --only=TEXT runs only the cases whose name contains TEXT.
//
// Prints one line per case, then "N passed, M failed"; exits 1 on failure.

import http from 'node:http';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { spawnSync } from 'node:child_process';
import { chromium } from 'playwright-core';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const ROOT = path.resolve(HERE, '../..');
const UI = path.join(ROOT, 'ui');

const args = process.argv.slice(2);
const DOCS = args.includes('--docs');
const ONLY = args.find((a) => a.startsWith('--only='))?.slice('--only='.length);
const SHOTS = args.find((a) => !a.startsWith('--'))
  ?? process.env.UI_SCREENSHOTS
  ?? path.join(process.env.CARGO_TARGET_DIR ?? path.join(process.env.HOME ?? '/tmp', '.cache/deskrec/target'), 'ui-screenshots');
/** Screenshots docs/tray.md shows, by state name. */
const DOC_SHOTS = ['recording', 'not-recording-locked', 'offline', 'attention-disk-floor',
  'attention-rejected', 'uploading', 'retry', 'diagnostics', 'dark'];

// ------------------------------------------------------------------ fixture

const NOW_MS = Date.UTC(2025, 11, 2, 9, 42, 0); // 10:42 in Berlin
const NOW = NOW_MS * 1000; // µs, as the app speaks
const S = 1e6;
const MIN = 60 * S;
const MB = 1048576;
const GB = 1024 * MB;

const clone = (v) => structuredClone(v);

function status(over = {}) {
  return {
    indicator: {
      kind: 'recording',
      headline: 'Recording',
      detail: "Your screen is being recorded, as the server's policy for DEMO\\agent says.",
    },
    state: 'recording',
    reason: 'eligible',
    login: 'DEMO\\agent',
    locked: false,
    enrolled: true,
    device_id: 'dev-4f2a',
    server_url: 'https://deskrec.example:8443',
    connection: 'connected',
    connected_at: NOW - 42 * MIN,
    offline_since: null,
    current_segment: `${NOW - 2 * MIN}.dseg`,
    last_error: null,
    last_error_at: null,
    disk_free_bytes: 50 * GB,
    disk_floor_bytes: 2 * GB,
    pause: null,
    pause_reasons: [],
    allow_quit: false,
    updated_at: NOW - 1 * S,
    ...over,
  };
}

function segment(startedAgo, minutes, mb, writing = false) {
  const started = NOW - startedAgo;
  return {
    name: `${started}.dseg`, started_at: started,
    ended_at: writing ? null : started + minutes * MIN,
    bytes: mb * MB, complete: !writing, writing,
  };
}

function contact(id, over = {}) {
  return {
    contact_id: id, state: 'uploading',
    start: NOW - 30 * MIN, end: NOW - 30 * MIN + 12 * S,
    bytes: 2 * MB, uploaded_bytes: 1 * MB, rate_bytes_per_second: 524288.0,
    attempts: 0, next_attempt_at: null, last_error: null, reason: null,
    updated_at: NOW - 5 * S,
    ...over,
  };
}

function queue(over = {}) {
  return {
    segments: [
      segment(22 * MIN, 10, 9),
      segment(12 * MIN, 10, 9),
      segment(2 * MIN, 0, 1.5, true),
    ],
    contacts: [],
    uploaded_today: { contacts: 3, bytes: 6 * MB },
    ...over,
  };
}

const diagnostics = {
  device_id: 'dev-4f2a', host: 'PC-042', version: '0.1.0',
  data_dir: 'C:\\ProgramData\\Deskrec',
  server_url: 'https://deskrec.example:8443',
  server_fingerprint: 'sha256:5f1c9a0e77d2c4b1a9e0f3d6c8b7a6e5d4c3b2a1f0e9d8c7b6a5f4e3d2c1b0a9',
  policy: {
    record: true, reason: 'eligible', login: 'DEMO\\agent',
    received_at: NOW - 3 * 60 * MIN, expires_at: NOW + 7 * 24 * 60 * MIN,
    fps: 5.0, segment_seconds: 600,
  },
  clock_offset_us: 1200, clock_measured_at: NOW - 3 * 60 * MIN,
  contact_cursor: 42, watermark: NOW - 40 * MIN,
  segments: [
    { ...segment(22 * MIN, 10, 9), discrepancies: ['time gap of 3.2 s before chunk 7'] },
    { ...segment(12 * MIN, 10, 9), discrepancies: [] },
    { ...segment(2 * MIN, 0, 1.5, true), discrepancies: [] },
  ],
  audit: [
    { at: NOW - 10 * MIN, action: 'contact.uploaded', target: 'demo-1', detail: '{"bytes":2097152}' },
    { at: NOW - 3 * 60 * MIN, action: 'policy.received', target: 'DEMO\\agent', detail: '{}' },
  ],
};

const PIN = '4711';
const SAVED = 'C:\\ProgramData\\Deskrec\\diagnostics-20251202-104200.zip';

/** The answers of a normal running app; cases override some. */
function answers(over = {}) {
  return {
    status: status(),
    queue: queue(),
    retry_now: 1,
    pause: null,
    resume: true,
    diagnostics,
    save_diagnostics: SAVED,
    quit: null,
    ...over,
  };
}

// -------------------------------------------------------- the fake Tauri IPC

// Runs in the page before its scripts. `fx.answers[cmd]` is what an invoke
// returns; `{__error: E}` rejects with E. `diagnostics` and
// `save_diagnostics` refuse any PIN but `fx.pin`, as the app does.
function fakeTauri(fx) {
  const calls = [];
  const listeners = new Map();
  window.__fake = {
    calls,
    emit(name, payload) {
      for (const cb of listeners.get(name) ?? []) cb({ event: name, id: 1, payload });
    },
    answer(cmd, value) { fx.answers[cmd] = value; },
    listening: (name) => (listeners.get(name) ?? []).length,
  };
  window.__TAURI__ = {
    core: {
      async invoke(cmd, args) {
        calls.push({ cmd, args: args ?? null });
        await new Promise((ok) => setTimeout(ok, 5));
        if ((cmd === 'diagnostics' || cmd === 'save_diagnostics') && (args?.pin ?? null) !== fx.pin) {
          throw { code: 'refused', message: 'Wrong PIN: ask support for the diagnostics PIN.' };
        }
        if (!(cmd in fx.answers)) throw { code: 'unknown_command', message: `no command ${cmd}` };
        const a = fx.answers[cmd];
        if (a && typeof a === 'object' && '__error' in a) throw a.__error;
        return structuredClone(a);
      },
    },
    event: {
      async listen(name, cb) {
        if (!listeners.has(name)) listeners.set(name, []);
        listeners.get(name).push(cb);
        return () => listeners.set(name, listeners.get(name).filter((f) => f !== cb));
      },
    },
  };
}

// ------------------------------------------------------------------ server

const TYPES = { '.html': 'text/html', '.js': 'text/javascript', '.css': 'text/css', '.png': 'image/png', '.svg': 'image/svg+xml' };

function serve() {
  const server = http.createServer((req, res) => {
    const url = new URL(req.url, 'http://x');
    const rel = decodeURIComponent(url.pathname === '/' ? '/index.html' : url.pathname);
    const file = path.join(UI, path.normalize(rel));
    if (!file.startsWith(UI + path.sep) || !fs.existsSync(file) || !fs.statSync(file).isFile()) {
      res.writeHead(404).end('not found');
      return;
    }
    res.writeHead(200, { 'content-type': `${TYPES[path.extname(file)] ?? 'application/octet-stream'}; charset=utf-8`, 'cache-control': 'no-store' });
    fs.createReadStream(file).pipe(res);
  });
  return new Promise((ok) => server.listen(0, '127.0.0.1', () => ok(server)));
}

/** Headless Chromium as tests/browser/chromium.mjs launches it. */
function launch(extra = []) {
  return chromium.launch({
    executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync', ...extra],
  });
}

// ------------------------------------------------------------------ checks

class Failed extends Error {}

function check(cond, msg) {
  if (!cond) throw new Failed(msg);
}

/** Fails unless `got` contains `want` (or matches it, if a RegExp). */
function has(what, got, want) {
  const ok = want instanceof RegExp ? want.test(got) : got.includes(want);
  check(ok, `${what}: ${JSON.stringify(got)} does not contain ${want instanceof RegExp ? want : JSON.stringify(want)}`);
}

/** A running window: the page and helpers for the cases. */
class Win {
  constructor(page) { this.page = page; }
  text(sel) { return this.page.locator(sel).first().innerText(); }
  visible(sel) { return this.page.locator(sel).first().isVisible(); }
  attr(sel, name) { return this.page.locator(sel).first().getAttribute(name); }
  prop(sel, name) { return this.page.locator(sel).first().evaluate((el, n) => el[n], name); }
  count(sel) { return this.page.locator(sel).count(); }
  emit(name, payload) { return this.page.evaluate(([n, p]) => window.__fake.emit(n, p), [name, payload]); }
  calls(cmd) { return this.page.evaluate((c) => window.__fake.calls.filter((x) => !c || x.cmd === c), cmd ?? null); }
  answer(cmd, value) { return this.page.evaluate(([c, v]) => window.__fake.answer(c, v), [cmd, value]); }
  async shows(sel, want) { has(sel, await this.text(sel), want); }
  async isShown(sel, yes = true) {
    check(await this.visible(sel) === yes, `${sel} is ${yes ? 'not ' : ''}visible`);
  }
  /** Waits (up to 3 s) until `sel` is visible. */
  async waitShown(sel) {
    await this.page.locator(sel).first().waitFor({ state: 'visible', timeout: 3000 })
      .catch(() => { throw new Failed(`${sel} never became visible`); });
  }
  async kind(want) {
    check(await this.attr('#banner', 'data-kind') === want, `banner kind ${await this.attr('#banner', 'data-kind')}, want ${want}`);
  }
}

// ------------------------------------------------------------------- cases

const cases = [];
/** A case: `opts.answers` for the fixture, `opts.shot` names its screenshot. */
function test(name, opts, fn) {
  cases.push({ name, opts, fn });
}

test('recording: banner, server, uploads today, segments, disk, no quit', { shot: 'recording' }, async (w) => {
  await w.kind('recording');
  await w.shows('#headline', 'Recording');
  await w.shows('#detail', "server's policy for DEMO\\agent");
  check(await w.attr('#banner', 'aria-live') === 'polite', 'the banner is not aria-live');
  await w.shows('#banner-meta', 'Signed in as DEMO\\agent');
  await w.shows('#connection', 'Connected since 10:00 (42 min ago)');
  await w.shows('#server-url', 'https://deskrec.example:8443');
  await w.isShown('#last-error', false);
  await w.shows('#uploaded-today', 'Uploaded today: 3 contacts, 6.0 MB');
  await w.shows('#no-contacts', 'Nothing waiting to upload');
  await w.shows('#segments-summary', '3 segments on disk, 19.5 MB');
  await w.shows('#segments-oldest', 'Oldest from 10:20 (22 min ago)');
  await w.shows('#segments-writing', 'since 10:40 (2 min ago), 1.5 MB so far');
  await w.shows('#disk-text', '50.0 GB free; recording stops below 2.0 GB');
  check(await w.prop('#disk-meter', 'value') === 50 * GB, 'disk meter value');
  await w.isShown('#disk-meter');
  await w.isShown('#quit', false);
  await w.isShown('#retry-now', false);
  await w.isShown('#error', false);
  // The policy gives no pause reason: nothing to pause with.
  await w.isShown('#pause', false);
});

const notRecording = (reason, headline, detail, over = {}) => status({
  indicator: { kind: 'not_recording', headline, detail }, state: 'paused', reason, current_segment: null, ...over,
});

test('not recording: logged off', {
  shot: 'not-recording-logged-off',
  answers: answers({ status: notRecording('no_session_user', 'Not recording', 'No one is signed in to Windows.', { login: '' }) }),
}, async (w) => {
  await w.kind('not_recording');
  await w.shows('#headline', 'Not recording');
  await w.shows('#detail', 'No one is signed in to Windows.');
  await w.shows('#banner-meta', 'No one is signed in');
});

test('not recording: screen locked', {
  shot: 'not-recording-locked',
  answers: answers({ status: notRecording('session_locked', 'Not recording: screen locked', 'Recording resumes when you unlock the screen.', { locked: true }) }),
}, async (w) => {
  await w.kind('not_recording');
  await w.shows('#headline', 'screen locked');
  await w.shows('#detail', 'Recording resumes when you unlock the screen.');
  await w.shows('#banner-meta', 'Signed in as DEMO\\agent · screen locked');
});

test('not recording: not eligible, with the reason', {
  shot: 'not-recording-not-eligible',
  answers: answers({ status: notRecording('unknown_login', 'Not recording: not eligible', 'The Deskrec server has no user with the login DEMO\\agent (unknown login).', { state: 'not_eligible' }) }),
}, async (w) => {
  await w.kind('not_recording');
  await w.shows('#headline', 'not eligible');
  await w.shows('#detail', 'no user with the login DEMO\\agent (unknown login)');
});

test('not recording: the policy says no', {
  shot: 'not-recording-policy',
  answers: answers({ status: notRecording('no_record_permission', 'Not recording', "The server's policy does not record DEMO\\agent: none of their roles grants screen recording.", { state: 'not_eligible' }) }),
}, async (w) => {
  await w.kind('not_recording');
  await w.shows('#detail', "policy does not record DEMO\\agent");
});

test('offline: recording goes on under the cached policy, uploads wait', {
  shot: 'offline',
  answers: answers({
    status: status({
      indicator: { kind: 'offline', headline: 'Recording (server offline)', detail: 'Recording goes on under the policy received at 07:42; recordings upload when the server is back.' },
      connection: 'offline', connected_at: null, offline_since: NOW - 25 * MIN,
    }),
    queue: queue({ contacts: [contact('demo-7', { state: 'queued', uploaded_bytes: 0, rate_bytes_per_second: 0, last_error: 'server unreachable: connection refused' })] }),
  }),
}, async (w) => {
  await w.kind('offline');
  await w.shows('#headline', 'Recording (server offline)');
  await w.shows('#connection', 'Offline since 10:17 (25 min ago)');
  await w.shows('#connection', 'Recording goes on under the policy received earlier.');
  await w.shows('#connection', 'Uploads wait until the server can be reached.');
  await w.shows('#contacts li[data-contact="demo-7"]', 'Waiting');
  await w.shows('#contacts li[data-contact="demo-7"]', 'connection refused');
  check(await w.prop('#contacts li[data-contact="demo-7"] progress', 'value') === 0, 'queued upload has progress');
});

const attention = (headline, detail, over = {}) => status({
  indicator: { kind: 'attention', headline, detail }, state: 'error', ...over,
});

test('needs attention: not enrolled, with what to do', {
  shot: 'attention-not-enrolled',
  answers: answers({
    status: attention('Not enrolled', 'Ask your administrator for an enrollment code, then run "deskrec-agent enroll" on this PC.', {
      state: 'paused', reason: 'not_enrolled', enrolled: false, device_id: null, server_url: null,
      connection: 'offline', connected_at: null, current_segment: null,
    }),
    queue: queue({ segments: [], uploaded_today: { contacts: 0, bytes: 0 } }),
  }),
}, async (w) => {
  await w.kind('attention');
  await w.shows('#headline', 'Not enrolled');
  await w.shows('#detail', 'enrollment code');
  await w.shows('#server-url', 'This PC is not enrolled');
  await w.shows('#segments-summary', 'No segments on disk.');
  await w.shows('#uploaded-today', 'Nothing uploaded today.');
});

test('needs attention: disk floor reached', {
  shot: 'attention-disk-floor',
  answers: answers({
    status: attention('Not recording: disk full', 'Less than 2.0 GB is free on C:. Free some space; recording resumes by itself.', {
      reason: 'disk_full: below the floor', disk_free_bytes: 1.5 * GB, current_segment: null,
    }),
  }),
}, async (w) => {
  await w.kind('attention');
  await w.shows('#headline', 'disk full');
  await w.shows('#disk-text', '1.5 GB free: below the floor of 2.0 GB');
  check(await w.attr('#disk-meter', 'data-below') === 'true', 'the disk meter does not say below the floor');
  check(await w.prop('#disk-meter', 'value') === 1.5 * GB, 'disk meter value');
  check(await w.prop('#disk-meter', 'low') === 2 * GB, 'disk meter low mark is not the floor');
});

test('needs attention: an upload refused by the server', {
  shot: 'attention-rejected',
  answers: answers({
    status: attention('Upload refused', 'The server refused the recording of contact demo-3. Tell your supervisor.', { state: 'recording' }),
    queue: queue({
      contacts: [contact('demo-3', {
        state: 'unrecoverable', reason: 'too_large', uploaded_bytes: 0, bytes: 3 * GB,
        last_error: 'The server accepts at most 2.0 GB per recording.', updated_at: NOW - 1 * MIN,
      })],
    }),
  }),
}, async (w) => {
  await w.emit('deskrec://notice', { kind: 'rejected', title: 'Recording refused', body: 'Contact demo-3 (3.0 GB) is too large for the server.', at: NOW - 1 * MIN });
  await w.kind('attention');
  await w.shows('#notices .notice[data-kind="rejected"]', 'Recording refused Contact demo-3 (3.0 GB) is too large');
  await w.isShown('#recent-box');
  const li = '#recent li[data-contact="demo-3"]';
  await w.shows(li, 'Not uploaded');
  await w.shows(li, 'Reason: too large. The server accepts at most 2.0 GB per recording.');
  await w.shows('#no-contacts', 'Nothing waiting to upload');
});

test('a contact erased on the server before its upload is told apart from a failure', {
  shot: 'queue-disposed',
  answers: answers({
    queue: queue({
      contacts: [
        contact('demo-4', {
          state: 'disposed', reason: 'erased', uploaded_bytes: 0, bytes: 2 * MB, rate_bytes_per_second: 0,
          last_error: 'contact "demo-4" was erased on the server: its recording is not taken; delete the local copy',
          updated_at: NOW - 2 * MIN,
        }),
        contact('demo-5', { state: 'disposed', reason: 'expired', uploaded_bytes: 0, bytes: 2 * MB, rate_bytes_per_second: 0, updated_at: NOW - 3 * MIN }),
      ],
    }),
  }),
}, async (w) => {
  await w.isShown('#recent-box');
  const erased = '#recent li[data-contact="demo-4"]';
  await w.shows(erased, 'Erased on the server');
  await w.shows(erased, 'The recording was deleted from this PC.');
  await w.shows('#recent li[data-contact="demo-5"]', 'Expired on the server');
  check(!(await w.prop(erased, 'className')).includes('failed'), 'an erased contact is not shown as failed');
  await w.shows('#no-contacts', 'Nothing waiting to upload');
});

test('needs attention: engine error', {
  shot: 'attention-error',
  answers: answers({
    status: attention('Not recording: error', 'Deskrec could not record. It tries again by itself; tell support if this stays.', {
      reason: 'recorder_failed: DXGI device lost', current_segment: null,
      last_error: 'the recorder stopped with an error: DXGI device lost', last_error_at: NOW - 3 * MIN,
    }),
  }),
}, async (w) => {
  await w.kind('attention');
  await w.isShown('#last-error');
  await w.shows('#last-error', 'Last error at 10:39 (3 min ago): the recorder stopped with an error: DXGI device lost');
});

test('uploading: progress advances on a queue event, then the contact is uploaded', {
  answers: answers({ queue: queue({ contacts: [contact('demo-1'), contact('demo-2', { state: 'splicing', bytes: null, uploaded_bytes: 0, rate_bytes_per_second: 0 })] }) }),
}, async (w) => {
  const li = '#contacts li[data-contact="demo-1"]';
  await w.shows(li, 'Uploading');
  await w.shows(li, '1.0 MB of 2.0 MB · 0.5 MB/s');
  check(await w.prop(`${li} progress`, 'value') === 1 * MB, 'progress is not 1 MB');
  check(await w.prop(`${li} progress`, 'max') === 2 * MB, 'progress max is not 2 MB');
  await w.shows('#contacts li[data-contact="demo-2"]', 'Preparing');
  await w.isShown('#retry-now', false);
  await w.emit('deskrec://queue', queue({ contacts: [contact('demo-1', { uploaded_bytes: 1.5 * MB, rate_bytes_per_second: 786432 }), contact('demo-2', { state: 'queued', bytes: 3 * MB, uploaded_bytes: 0 })] }));
  check(await w.prop(`${li} progress`, 'value') === 1.5 * MB, 'progress did not advance to 1.5 MB');
  await w.shows(li, '1.5 MB of 2.0 MB · 0.8 MB/s');
  await w.page.screenshot({ path: path.join(SHOTS, 'uploading.png') });
  await w.emit('deskrec://queue', queue({
    contacts: [contact('demo-1', { state: 'done', uploaded_bytes: 2 * MB, rate_bytes_per_second: 0, updated_at: NOW }), contact('demo-2', { state: 'queued', bytes: 3 * MB, uploaded_bytes: 0 })],
    uploaded_today: { contacts: 4, bytes: 8 * MB },
  }));
  await w.emit('deskrec://notice', { kind: 'uploaded', title: 'Recording uploaded', body: 'Contact demo-1 (2.0 MB) is on the server.', at: NOW });
  check(await w.count(li) === 0, 'demo-1 is still in the upload list');
  await w.shows('#recent li[data-contact="demo-1"]', 'Uploaded');
  await w.shows('#recent li[data-contact="demo-1"]', '2.0 MB uploaded at 10:42');
  await w.shows('#uploaded-today', 'Uploaded today: 4 contacts, 8.0 MB');
  await w.shows('#notices .notice[data-kind="uploaded"]', 'Contact demo-1 (2.0 MB) is on the server.');
  return { shot: 'uploaded' };
});

test('retry now: shown only while an upload waits on a back-off, and calls retry_now', {
  answers: answers({ queue: queue({ contacts: [contact('demo-5')] }) }),
}, async (w) => {
  await w.isShown('#retry-now', false);
  await w.emit('deskrec://queue', queue({
    contacts: [contact('demo-5', { uploaded_bytes: 512 * 1024, rate_bytes_per_second: 0, attempts: 3, next_attempt_at: NOW + 2 * MIN, last_error: 'the server answered 503 Service Unavailable' })],
  }));
  await w.isShown('#retry-now');
  const li = '#contacts li[data-contact="demo-5"]';
  await w.shows(li, 'Waiting to retry');
  await w.shows(li, 'Next attempt at 10:44 (in 2 min) · 3 attempts so far');
  await w.shows(li, '503 Service Unavailable');
  check(!(await w.text(li)).includes('MB/s'), 'a waiting upload shows a rate');
  await w.page.screenshot({ path: path.join(SHOTS, 'retry.png') });
  await w.page.click('#retry-now');
  await w.waitShown('#retry-result');
  await w.shows('#retry-result', 'Retrying 1 upload now.');
  check((await w.calls('retry_now')).length === 1, 'retry_now was not called once');
  await w.emit('deskrec://queue', queue({ contacts: [contact('demo-5', { attempts: 4 })] }));
  await w.isShown('#retry-now', false);
});

test('diagnostics: refused with a wrong PIN, shown with the right one, saved', { shot: 'diagnostics', hash: '#diagnostics' }, async (w) => {
  await w.isShown('#view-status', false);
  await w.isShown('#pin-form');
  check(await w.attr('#tab-diagnostics', 'aria-current') === 'page', 'the Diagnostics tab is not current');
  await w.page.fill('#pin', '0000');
  await w.page.click('#unlock');
  await w.waitShown('#diag-error');
  await w.shows('#diag-error', 'Wrong PIN: ask support for the diagnostics PIN.');
  await w.isShown('#diag', false);
  let calls = await w.calls('diagnostics');
  check(calls.length === 1 && calls[0].args.pin === '0000', `diagnostics called with ${JSON.stringify(calls)}`);
  await w.page.fill('#pin', PIN);
  await w.page.click('#unlock');
  await w.waitShown('#diag');
  await w.isShown('#diag-error', false);
  await w.shows('#d-device', 'dev-4f2a');
  await w.shows('#d-device', 'PC-042');
  await w.shows('#d-server', 'https://deskrec.example:8443');
  await w.shows('#d-server', 'sha256:5f1c9a0e77d2');
  await w.shows('#d-policy', 'eligible');
  await w.shows('#d-policy', 'Expires\n09/12/2025 10:42 (in 7 d)');
  await w.shows('#d-sync', '+1.2 ms (server ahead)');
  await w.shows('#d-sync', 'Contact cursor\n42');
  await w.shows('#d-sync', 'Watermark\n10:02:00');
  check(await w.count('#d-segments > li') === 3, 'not 3 segments');
  await w.shows('#d-segments > li:nth-child(1)', '10:20:00 – 10:30:00 · 9.0 MB');
  await w.shows('#d-segments > li:nth-child(1)', 'time gap of 3.2 s before chunk 7');
  await w.shows('#d-segments > li:nth-child(2)', 'No discrepancies');
  await w.shows('#d-segments > li:nth-child(3)', '(writing)');
  await w.shows('#d-audit', 'contact.uploaded demo-1');
  await w.shows('#d-audit', 'policy.received');
  await w.page.click('#save-diag');
  await w.page.waitForFunction(() => document.getElementById('saved').textContent.startsWith('Saved to'), null, { timeout: 3000 })
    .catch(() => { throw new Failed('the saved path never appeared'); });
  await w.shows('#saved', `Saved to ${SAVED}`);
  calls = await w.calls('save_diagnostics');
  check(calls.length === 1 && calls[0].args.pin === PIN, `save_diagnostics called with ${JSON.stringify(calls)}`);
  await w.page.screenshot({ path: path.join(SHOTS, 'diagnostics-saved.png') });
  await w.page.evaluate(() => window.scrollTo(0, 0));
});

/** A pause in effect, as the engine's status has it. */
function pauseView(source, reason, until) {
  return { id: `${source}-0123456789abcdef`, source, reason, started_at: NOW - 1 * MIN, until };
}

/** The status while `pause` is in effect, `headline` saying so (`reasons`
 * the policy's). */
function paused(pause, headline, reasons = ['card_payment', 'private_call']) {
  return status({
    indicator: { kind: 'not_recording', headline, detail: 'Your screen is not recorded.' },
    state: 'paused', reason: 'paused', pause, pause_reasons: reasons, updated_at: NOW,
  });
}

/** The labels of the pause card's reason buttons. */
const reasonButtons = (w) => w.page.locator('#pause-reasons button:visible').allInnerTexts();

test("pause: the policy's reasons pause; the agent's own pause shows its reason and end, and resumes", {
  shot: 'paused',
  answers: answers({ status: status({ pause_reasons: ['card_payment', 'private_call'] }) }),
}, async (w) => {
  await w.isShown('#pause');
  const labels = await reasonButtons(w);
  check(JSON.stringify(labels) === '["Card payment","Private call"]', `reason buttons ${JSON.stringify(labels)}`);
  await w.isShown('#resume', false);
  await w.isShown('#pause-state', false);
  await w.page.click('#pause-reasons button[data-reason="card_payment"]');
  await w.page.waitForFunction(() => window.__fake.calls.some((c) => c.cmd === 'pause'), null, { timeout: 3000 })
    .catch(() => { throw new Failed('pause was not called'); });
  const calls = await w.calls('pause');
  check(calls.length === 1 && calls[0].args.reason === 'card_payment', `pause called with ${JSON.stringify(calls)}`);
  await w.emit('deskrec://status', paused(pauseView('agent', 'card_payment', NOW + 5 * MIN), 'Paused: Card payment'));
  await w.shows('#pause-state', 'You paused recording: Card payment');
  await w.shows('#pause-state', 'It resumes by itself at 10:47 (in 5 min)');
  check((await reasonButtons(w)).length === 0, 'reasons offered while paused');
  await w.isShown('#resume');
  await w.page.click('#resume');
  await w.page.waitForFunction(() => window.__fake.calls.some((c) => c.cmd === 'resume'), null, { timeout: 3000 })
    .catch(() => { throw new Failed('resume was not called'); });
  await w.isShown('#error', false);
});

test("pause: a refusal shows the engine's words", {
  answers: answers({
    status: status({ pause_reasons: ['card_payment'] }),
    pause: { __error: { code: 'refused', message: '"card_payment" is not a pause reason the policy allows (private_call)' } },
  }),
}, async (w) => {
  await w.page.click('#pause-reasons button[data-reason="card_payment"]');
  await w.waitShown('#error');
  await w.shows('#error', 'Could not pause recording: "card_payment" is not a pause reason the policy allows (private_call)');
});

test("pause: the contact centre's or a window rule's pause shows, and the agent cannot end it", {
  answers: answers({ status: paused(pauseView('api', 'supervisor_call', NOW + 3 * MIN), 'Paused: Supervisor call') }),
}, async (w) => {
  await w.isShown('#pause');
  await w.shows('#pause-state', "The contact centre's systems paused recording: Supervisor call");
  await w.shows('#pause-state', 'It resumes by itself at 10:45 (in 3 min)');
  await w.isShown('#resume', false);
  check((await reasonButtons(w)).length === 0, 'reasons offered during the API pause');
  await w.emit('deskrec://status', paused(pauseView('rule', 'card_payment', null), 'Paused: Card payment', []));
  await w.shows('#pause-state', 'A window in front paused recording: Card payment');
  await w.shows('#pause-state', 'no longer in front');
  await w.isShown('#resume', false);
});

test('quit: hidden unless the status allows it, then calls quit', { shot: 'quit' }, async (w) => {
  await w.isShown('#quit', false);
  await w.emit('deskrec://status', status({ allow_quit: true, updated_at: NOW }));
  await w.isShown('#quit');
  await w.page.click('#quit');
  await w.page.waitForFunction(() => window.__fake.calls.some((c) => c.cmd === 'quit'), null, { timeout: 3000 })
    .catch(() => { throw new Failed('quit was not called'); });
  await w.emit('deskrec://status', status({ allow_quit: false, updated_at: NOW + 1 }));
  await w.isShown('#quit', false);
});

test('no polling: only the first status and queue invokes in 3 s; events update the page', {}, async (w) => {
  await w.page.waitForTimeout(3000);
  const calls = (await w.calls()).map((c) => c.cmd).sort();
  check(JSON.stringify(calls) === '["queue","status"]', `invokes in 3 s: ${JSON.stringify(calls)}`);
  const listening = await w.page.evaluate(() => ['deskrec://status', 'deskrec://queue', 'deskrec://notice'].map(window.__fake.listening));
  check(listening.every((n) => n === 1), `listeners per event: ${listening}`);
  await w.emit('deskrec://status', status({ indicator: { kind: 'not_recording', headline: 'Not recording', detail: 'Locked.' }, locked: true, updated_at: NOW }));
  await w.kind('not_recording');
  // An older status than the one shown is ignored.
  await w.emit('deskrec://status', status({ updated_at: NOW - 10 * S }));
  await w.kind('not_recording');
  check((await w.calls()).length === 2, 'an event caused an invoke');
});

test('errors from invoke are shown', {
  shot: 'error',
  answers: answers({ status: { __error: { code: 'internal', message: 'the engine is not running' } }, retry_now: { __error: { code: 'internal', message: 'the database is busy' } } }),
}, async (w) => {
  await w.isShown('#error');
  await w.shows('#error', 'Could not read the status: the engine is not running');
  await w.page.click('#error-close');
  await w.isShown('#error', false);
  await w.emit('deskrec://queue', queue({ contacts: [contact('demo-9', { next_attempt_at: NOW + 30 * S })] }));
  await w.page.click('#retry-now');
  await w.waitShown('#error');
  await w.shows('#error', 'Could not retry the uploads: the database is busy');
});

test('data is shown as text, never as markup', {
  answers: answers({
    status: status({ indicator: { kind: 'recording', headline: '<b id="x1">bold</b>', detail: '<img src=x onerror="window.__pwned=1">' } }),
    queue: queue({ contacts: [contact('<img src=y onerror="window.__pwned=2">')] }),
  }),
}, async (w) => {
  await w.shows('#headline', '<b id="x1">bold</b>');
  await w.shows('#detail', '<img src=x');
  await w.shows('#contacts', '<img src=y');
  check(await w.count('#banner b, #banner img, #contacts img') === 0, 'data became markup');
  check(await w.page.evaluate(() => window.__pwned) === undefined, 'a data script ran');
});

test('dark: the page follows prefers-color-scheme', { shot: 'dark', colorScheme: 'dark', answers: answers({ queue: queue({ contacts: [contact('demo-1')] }) }) }, async (w) => {
  const rgb = await w.page.evaluate(() => getComputedStyle(document.body).backgroundColor);
  const [r, g, b] = rgb.match(/\d+/g).map(Number);
  check(0.2126 * r + 0.7152 * g + 0.0722 * b < 60, `dark background is ${rgb}`);
  await w.kind('recording');
  await w.shows('#contacts', '1.0 MB of 2.0 MB');
});

// ------------------------------------------------------------------- runner

async function main() {
  fs.mkdirSync(SHOTS, { recursive: true });
  for (const f of fs.readdirSync(SHOTS)) if (f.endsWith('.png')) fs.rmSync(path.join(SHOTS, f));
  const server = await serve();
  const base = `http://127.0.0.1:${server.address().port}/`;
  const browser = await launch();
  let passed = 0;
  let failed = 0;
  for (const c of cases) {
    if (ONLY && !c.name.includes(ONLY)) continue;
    const context = await browser.newContext({
      viewport: { width: 420, height: 640 },
      deviceScaleFactor: 1,
      colorScheme: c.opts.colorScheme ?? 'light',
      locale: 'en-GB',
      timezoneId: 'Europe/Berlin',
    });
    const page = await context.newPage();
    const problems = [];
    page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
    page.on('console', (m) => { if (m.type() === 'error') problems.push(`console error: ${m.text()}`); });
    try {
      await page.clock.setFixedTime(NOW_MS);
      await page.addInitScript(fakeTauri, { answers: c.opts.answers ?? answers(), pin: PIN });
      await page.goto(base + (c.opts.hash ?? ''));
      await page.waitForSelector('body[data-ready="true"]', { timeout: 5000 });
      const w = new Win(page);
      const more = await c.fn(w);
      // Readable at the window's size: nothing wider than it.
      const width = await page.evaluate(() => document.documentElement.scrollWidth);
      check(width <= 420, `the page is ${width} px wide at 420 px`);
      check(problems.length === 0, problems.join('; '));
      if (c.opts.shot) await page.screenshot({ path: path.join(SHOTS, `${c.opts.shot}.png`) });
      if (more?.shot) await page.screenshot({ path: path.join(SHOTS, `${more.shot}.png`) });
      passed++;
      console.log(`ok    ${c.name}`);
    } catch (e) {
      failed++;
      console.log(`FAIL  ${c.name}: ${e instanceof Failed ? e.message : e.stack}`);
      await page.screenshot({ path: path.join(SHOTS, `failed-${cases.indexOf(c)}.png`) }).catch(() => {});
    } finally {
      await context.close();
    }
  }
  await browser.close();
  server.close();
  if (DOCS && failed === 0 && !ONLY) {
    const img = path.join(ROOT, 'docs/img');
    fs.mkdirSync(img, { recursive: true });
    for (const s of DOC_SHOTS) {
      const from = path.join(SHOTS, `${s}.png`);
      const to = path.join(img, `tray-${s}.png`);
      // 64 colours without dithering halve the committed files; where
      // ImageMagick is missing they are copied as they are.
      const q = spawnSync('convert', [from, '+dither', '-colors', '64', `PNG8:${to}`]);
      if (q.status !== 0) fs.copyFileSync(from, to);
    }
    console.log(`copied ${DOC_SHOTS.length} screenshots to ${img}`);
  }
  console.log(`screenshots in ${SHOTS}`);
  console.log(`${passed} passed, ${failed} failed`);
  process.exit(failed ? 1 : 0);
}

main().catch((e) => {
  console.error(e);
  console.log('0 passed, 1 failed');
  process.exit(1);
});
