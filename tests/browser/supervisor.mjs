// A supervisor plays a contact's recording in Chromium, end to end against
// a running deskrec-server that this script seeds through its APIs:
//
// 1. roles, a supervisor (view_recordings, with a password) and an agent,
//    both in team North (a supervisor sees only their teams' contacts);
// 2. a device enrolled with WORK/device.pub; `deskrec record` (synthetic
//    numbered pictures) as that device, under WORK/server.pub, which is the
//    server's recording key, paused for a while as an agent would pause
//    (`--pause`: blank "paused" pictures carrying the reason);
// 3. the contact imported (3.3 s to 7.1 s into the recording), spliced with
//    `deskrec vault splice` and uploaded as the device by a standard tus
//    client (tus-js-client, in 16 KiB PATCHes);
// 4. Chromium signs in through the login form, opens the contact from the
//    list and plays its <video> to the end: the duration must match the
//    contact within one frame, the first picture must be frame 16 (on
//    screen from 3.2 s), the last frame 35. The timeline marks the pause
//    where its paused pictures are, with its reason, and the screen shows
//    no numbered picture there.
// 5. The call audio: a 440 Hz tone of the contact's length, made by ffmpeg
//    in each format ACDs export (WAV PCM, mu-law, A-law, MP3, M4A,
//    Ogg/Opus), is imported through the admin API and played by the
//    page's player: the tone is heard (Web Audio's analyser finds 440 Hz)
//    and the screen shows the picture of the player's time. After seeks and
//    speed changes the audio and video clocks stay within 100 ms, and the
//    timeline's markers sit where the contact's times put them.
// 6. The download, the screen with the call audio muxed in, plays to its
//    end in Chromium with sound, lasting the contact.
//
// Every HTTPS connection, Node's and Chromium's, trusts exactly the
// server's certificate: Node pins its SHA-256, Chromium its public key
// (--ignore-certificate-errors-spki-list), never "any certificate".
//
// Usage: node supervisor.mjs URL DATA_DIR DESKREC WORK
// Prints one JSON line with the facts; exits non-zero when a check fails.

import https from 'node:https';
import { X509Certificate, createHash, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { DefaultHttpStack, Upload } from 'tus-js-client';
import { checkPlayed, launch, playToEnd, readFrameNumberOf } from './chromium.mjs';

const [url, dataDir, deskrec, work] = process.argv.slice(2);
const CONTACT = 'browser-2';
const PASSWORD = 'a browser test password';
/** The pause in the recording (`deskrec record --pause`), seconds after
 * its start. Pictures are due every 0.2 s: the first paused one is the one
 * due at 4.6 s, the first after the pause the one due at 5.8 s, so the
 * span the server reads from the recording is 4.6 s to 5.8 s. */
const PAUSE = { arg: '4.5..5.7=card_payment', reason: 'card_payment', from: 4.6, until: 5.8 };
/** Where the contact starts in the recording, seconds. */
const CONTACT_AT = 3.3;
/** How far a marker's edge may be from its time, seconds: the recorder
 * stamps a paused picture when its tick comes, a few ms late on a busy
 * machine. */
const EDGE_S = 0.1;
const certPem = readFileSync(`${dataDir}/tls/cert.pem`, 'utf8');
const cert = new X509Certificate(certPem);
const spki = createHash('sha256').update(cert.publicKey.export({ type: 'spki', format: 'der' })).digest('base64');
const adminToken = readFileSync(`${dataDir}/admin-token`, 'utf8').trim();
/** TLS options that accept the server's certificate and nothing else. */
const pinned = {
  ca: certPem,
  checkServerIdentity: (_host, c) =>
    c.fingerprint256 === cert.fingerprint256 ? undefined : new Error('not the server certificate'),
};

/** One HTTPS request to the server: {status, headers, body (Buffer)}. */
function call(method, path, { token, json, body, headers = {} } = {}) {
  const data = json !== undefined ? Buffer.from(JSON.stringify(json)) : body;
  return new Promise((ok, fail) => {
    const req = https.request(new URL(path, url), {
      method,
      ...pinned,
      headers: {
        ...(token ? { authorization: `Bearer ${token}` } : {}),
        ...(json !== undefined ? { 'content-type': 'application/json' } : {}),
        ...(data ? { 'content-length': data.length } : {}),
        ...headers,
      },
    }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => ok({ status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks) }));
    });
    req.on('error', fail);
    req.end(data);
  });
}

/**
 * The device says Hello on the RTE WebSocket as an agent does at logon,
 * naming `login`, and waits for its policy: the server relays (and takes
 * uploads of) a login's contacts only to devices that reported it. Node 20
 * has no WebSocket client, so this is the RFC 6455 handshake and one
 * masked text frame, by hand.
 */
function hello(credential, deviceId, login) {
  const text = Buffer.from(JSON.stringify({
    type: 'hello', version: 1, device_id: deviceId, windows_login: login, host: 'BROWSER-PC',
    agent_version: 'browser-test', last_contact_cursor: null,
  }));
  return new Promise((ok, fail) => {
    const req = https.request(new URL('/api/v1/rte', url), {
      ...pinned,
      headers: {
        authorization: `Bearer ${credential}`, connection: 'Upgrade', upgrade: 'websocket',
        'sec-websocket-version': '13', 'sec-websocket-key': randomBytes(16).toString('base64'),
      },
    });
    req.on('response', (res) => fail(new Error(`rte: no upgrade (${res.statusCode})`)));
    req.on('error', fail);
    req.on('upgrade', (_res, socket) => {
      const mask = randomBytes(4);
      const len = text.length < 126 ? Buffer.from([0x80 | text.length])
        : Buffer.from([0x80 | 126, text.length >> 8, text.length & 0xff]);
      const masked = Buffer.from(text.map((b, i) => b ^ mask[i % 4]));
      socket.write(Buffer.concat([Buffer.from([0x81]), len, mask, masked]));
      let got = Buffer.alloc(0);
      socket.on('data', (d) => {
        got = Buffer.concat([got, d]);
        if (got.includes('"policy"')) {
          socket.destroy();
          ok();
        }
      });
      socket.on('error', fail);
    });
    req.end();
  });
}

/** An admin API call that must succeed; its JSON answer. */
async function admin(method, path, json) {
  const r = await call(method, `/api/v1/admin${path}`, { token: adminToken, json });
  if (r.status >= 300) throw new Error(`${method} ${path}: ${r.status} ${r.body}`);
  return r.body.length ? JSON.parse(r.body) : null;
}

/** RFC 3339 UTC with microseconds. */
function rfc3339(us) {
  return `${new Date(Math.floor(us / 1000)).toISOString().slice(0, 19)}.${String(us % 1e6).padStart(6, '0')}Z`;
}

function cli(args) {
  return JSON.parse(execFileSync(deskrec, args, { cwd: work, encoding: 'utf8' }));
}

async function seed() {
  await admin('PUT', '/roles/supervisor', { permissions: ['view_recordings'] });
  await admin('PUT', '/roles/agent', { permissions: ['record_screen'] });
  const vic = await admin('POST', '/users', { name: 'Vic Visor', windows_login: 'CORP\\vic', roles: ['supervisor'], teams: ['North'] });
  await admin('PUT', `/users/${vic.id}/password`, { password: PASSWORD });
  await admin('POST', '/users', { name: 'Ann Agent', windows_login: 'CORP\\ann', roles: ['agent'], teams: ['North'] });

  const { token } = await admin('POST', '/enrollment-tokens');
  const enrolled = await call('POST', '/api/v1/enroll', {
    json: { token, public_key_pem: readFileSync(`${work}/device.pub`, 'utf8'), host: 'BROWSER-PC' },
  });
  if (enrolled.status !== 200) throw new Error(`enroll: ${enrolled.status} ${enrolled.body}`);
  const device = JSON.parse(enrolled.body);
  await hello(device.credential, device.device_id, 'CORP\\ann');

  const rec = cli(['record', '--source', 'synthetic', '--out', 'segments', '--server-pub', 'server.pub',
    '--device-id', device.device_id, '--seconds', '8', '--gop-seconds', '2', '--segment-seconds', '3',
    '--size', '640x360', '--pause', PAUSE.arg]);
  const [start, end] = [rec.start + CONTACT_AT * 1e6, rec.start + 7_100_000];
  await admin('POST', '/contacts', {
    contacts: [{ contact_id: CONTACT, windows_login: 'CORP\\ann', start: rfc3339(start), end: rfc3339(end),
      direction: 'inbound', queue: 'billing' }],
  });
  cli(['vault', 'splice', '--device-key', 'device.key', '--contact', CONTACT, '--agent', 'CORP\\ann',
    '--start', String(start), '--end', String(end), '--out', 'contact.dskr',
    ...rec.segments.map((s) => s.path)]);
  await upload(device.credential, readFileSync(`${work}/contact.dskr`));
  return (end - start) / 1e6;
}

/**
 * The device uploads the recording with tus-js-client, a standard tus 1.0
 * client, in 16 KiB PATCHes over TLS pinned like `call`. The last PATCH is
 * answered only once the server has verified and stored the recording.
 */
async function upload(credential, bytes) {
  await new Promise((onSuccess, onError) => {
    new Upload(bytes, {
      endpoint: new URL('/api/v1/uploads', url).href,
      headers: { authorization: `Bearer ${credential}` },
      metadata: { contact_id: CONTACT, filename: `${CONTACT}.dskr` },
      chunkSize: 16 * 1024, // several PATCHes for one recording
      retryDelays: [], // any failure fails the test
      httpStack: new DefaultHttpStack(pinned),
      onSuccess,
      onError,
    }).start();
  });
  const c = await admin('GET', `/contacts/${CONTACT}`);
  if (c.status !== 'uploaded') throw new Error(`tus upload answered, but the contact is ${JSON.stringify(c)}`);
}

/** The tone's frequency, Hz. */
const TONE_HZ = 440;

/** The call audio in each format, made by ffmpeg: [name, file, codec args]. */
const FORMATS = [
  ['wav-pcm', 'call.wav', ['-ar', '16000', '-c:a', 'pcm_s16le']],
  ['wav-mulaw', 'call-u.wav', ['-ar', '8000', '-c:a', 'pcm_mulaw']],
  ['wav-alaw', 'call-a.wav', ['-ar', '8000', '-c:a', 'pcm_alaw']],
  ['mp3', 'call.mp3', ['-ar', '16000', '-c:a', 'libmp3lame']],
  ['m4a', 'call.m4a', ['-ar', '16000', '-c:a', 'aac']],
  ['opus', 'call.opus', ['-ar', '48000', '-c:a', 'libopus']],
];

/** Imports a `seconds` tone made in format `args` as the contact's audio. */
async function importAudio(file, args, seconds) {
  execFileSync('ffmpeg', ['-v', 'error', '-y', '-f', 'lavfi', '-i', `sine=frequency=${TONE_HZ}:duration=${seconds}`,
    ...args, file], { cwd: work });
  const body = readFileSync(`${work}/${file}`);
  const r = await call('PUT', `/api/v1/admin/contacts/${CONTACT}/audio`, {
    token: adminToken, body, headers: { 'content-type': 'application/octet-stream' },
  });
  if (r.status !== 201) throw new Error(`audio ${file}: ${r.status} ${r.body}`);
}

// Runs in the page: plays the player from `at` for `ms` and listens to the
// audio element through Web Audio; the strongest frequency heard, Hz, and
// whether the audio clock moved.
async function listen({ at, ms }) {
  const p = window.deskrecPlayer;
  const audio = document.querySelector('#contact-player audio');
  const ctx = new AudioContext();
  const analyser = ctx.createAnalyser();
  analyser.fftSize = 4096;
  ctx.createMediaElementSource(audio).connect(analyser);
  analyser.connect(ctx.destination);
  await ctx.resume();
  p.seek(at);
  p.play();
  const before = audio.currentTime;
  const bins = new Float32Array(analyser.frequencyBinCount);
  const peaks = [];
  const end = performance.now() + ms;
  while (performance.now() < end) {
    await new Promise((r) => setTimeout(r, 100));
    analyser.getFloatFrequencyData(bins);
    let best = 0;
    for (let i = 1; i < bins.length; i++) if (bins[i] > bins[best]) best = i;
    if (bins[best] > -60) peaks.push((best * ctx.sampleRate) / analyser.fftSize);
  }
  p.pause();
  const moved = audio.currentTime - before;
  await ctx.close();
  peaks.sort((a, b) => a - b);
  return { hz: peaks.length ? peaks[Math.floor(peaks.length / 2)] : null, moved, error: audio.error?.code ?? null };
}

// Runs in the page: applies each step (a seek or a speed) to the player
// while it plays, and reads both clocks 600 ms later.
async function syncAfter(steps) {
  const p = window.deskrecPlayer;
  const out = [];
  p.seek(0);
  p.play();
  for (const [kind, value] of steps) {
    if (kind === 'seek') p.seek(value);
    else p.setRate(value);
    await new Promise((r) => setTimeout(r, 600));
    const c = p.clocks();
    out.push({ step: `${kind} ${value}`, ...c, apart: Math.abs(c.audio - c.video) });
  }
  p.pause();
  return out;
}

// Runs in the page: where each marker is on the bar, as a fraction of it,
// with the time it stands for; a span's (a gap's, a pause's) left edge and
// its right edge (`end`) with the time it ends, and its title.
function markers() {
  const bar = document.querySelector('#bar').getBoundingClientRect();
  return [...document.querySelectorAll('#bar .marker')].map((m) => {
    const box = m.getBoundingClientRect();
    const span = m.dataset.until !== undefined;
    const x = span ? box.left : box.left + box.width / 2;
    return {
      kind: m.className, at: Number(m.dataset.at), x: (x - bar.left) / bar.width,
      ...(span ? { until: Number(m.dataset.until), end: (box.right - bar.left) / bar.width } : {}),
      title: m.title,
    };
  });
}

let failed = [];
let facts = {};
const browser = await launch([`--ignore-certificate-errors-spki-list=${spki}`]);
try {
  const seconds = await seed();
  const page = await browser.newPage();
  // Signed out, the contacts list sends the browser to the login form.
  await page.goto(`${url}/`);
  facts.redirected = new URL(page.url()).pathname;
  await page.fill('input[name=login]', 'CORP\\vic');
  await page.fill('input[name=password]', PASSWORD);
  await Promise.all([page.waitForURL(`${url}/`), page.click('button[type=submit]')]);
  await Promise.all([page.waitForURL(/\/contacts\//), page.click(`a[href="/contacts/browser%2D2"]`)]);
  facts = { ...facts, ...(await playToEnd(page, 'video')) };
  failed = checkPlayed(facts, seconds, 16, 35);
  if (facts.redirected !== '/login') failed.push(`signed out, / led to ${facts.redirected}, not /login`);

  // The markers: contact start at the bar's left end, its end at the right.
  const marks = await page.evaluate(markers);
  facts.markers = marks;
  for (const m of marks) {
    if (Math.abs(m.x - m.at / seconds) > 0.01) failed.push(`marker ${m.kind} at ${m.x} of the bar, want ${m.at / seconds}`);
  }
  if (!marks.some((m) => m.kind.includes('start') && m.at === 0)) failed.push('no contact-start marker at 0');
  if (!marks.some((m) => m.kind.includes('end') && Math.abs(m.at - seconds) < 0.001)) failed.push(`no contact-end marker at ${seconds} s`);

  // The pause: one span from where its first paused picture is to where
  // the screen is recorded again, named with its reason.
  const pauses = marks.filter((m) => m.kind.split(' ').includes('pause'));
  const [from, until] = [PAUSE.from - CONTACT_AT, PAUSE.until - CONTACT_AT];
  if (pauses.length !== 1) failed.push(`${pauses.length} pause markers, want 1: ${JSON.stringify(marks)}`);
  for (const p of pauses) {
    if (!(Math.abs(p.x * seconds - from) <= EDGE_S)) failed.push(`the pause marker starts at ${p.x * seconds} s, want ${from} s`);
    if (!(Math.abs(p.end * seconds - until) <= EDGE_S)) failed.push(`the pause marker ends at ${p.end * seconds} s, want ${until} s`);
    if (Math.abs(p.end - p.until / seconds) > 0.01) failed.push(`the pause marker ends at ${p.end} of the bar, its time at ${p.until / seconds}`);
    if (!p.title.includes(PAUSE.reason)) failed.push(`the pause marker's title ${JSON.stringify(p.title)} lacks ${PAUSE.reason}`);
  }
  // Where the marker is, the screen shows the paused picture (no number).
  await page.evaluate((t) => window.deskrecPlayer.seek(t), (from + until) / 2);
  await page.waitForFunction(() => {
    const v = document.querySelector('#contact-player video');
    return !v.seeking && v.readyState >= 2;
  });
  facts.pausedPicture = await page.evaluate(readFrameNumberOf, '#contact-player video');
  if (facts.pausedPicture !== null) failed.push(`inside the pause the screen shows picture ${facts.pausedPicture}`);

  // The call audio, in every format: heard with the screen.
  facts.formats = {};
  for (const [name, file, args] of FORMATS) {
    await importAudio(file, args, seconds);
    await page.reload();
    await page.waitForFunction(() => document.querySelector('#contact-player audio')?.readyState >= 2
      && document.querySelector('#contact-player video')?.readyState >= 2, null, { timeout: 30000 });
    const heard = await page.evaluate(listen, { at: 0.5, ms: 1500 });
    // The picture at a known time: frame n is on screen from n * 0.2 s of
    // the recording, which starts 3.3 s before the contact.
    await page.evaluate(() => window.deskrecPlayer.seek(1.0));
    await page.waitForFunction(() => {
      const v = document.querySelector('#contact-player video');
      return !v.seeking && v.readyState >= 2;
    });
    const frame = await page.evaluate(readFrameNumberOf, '#contact-player video');
    facts.formats[name] = { ...heard, frame };
    if (heard.error !== null) failed.push(`${name}: the audio element failed (${heard.error})`);
    if (!(heard.moved > 0.5)) failed.push(`${name}: the audio clock moved ${heard.moved} s in 1.5 s`);
    if (heard.hz === null || Math.abs(heard.hz - TONE_HZ) > 15) failed.push(`${name}: heard ${heard.hz} Hz, not ${TONE_HZ}`);
    if (frame !== 21) failed.push(`${name}: at 1.0 s the screen shows picture ${frame}, not 21`);
  }

  // Seeks and speed changes: the two clocks stay within 100 ms. (A fresh
  // page: the last one's audio went through a Web Audio graph, now closed.)
  await page.reload();
  await page.waitForFunction(() => document.querySelector('#contact-player audio')?.readyState >= 2
    && document.querySelector('#contact-player video')?.readyState >= 2, null, { timeout: 30000 });
  facts.sync = await page.evaluate(syncAfter, [['seek', 0.5], ['rate', 2], ['seek', 2.0], ['rate', 0.5],
    ['seek', 1.2], ['rate', 1.5], ['seek', 0.2], ['rate', 1]]);
  for (const s of facts.sync) {
    if (!(s.apart <= 0.1)) failed.push(`after ${s.step}, audio at ${s.audio} s and video at ${s.video} s`);
  }

  // The download (screen and call audio muxed) plays in Chromium, with sound.
  facts.download = await page.evaluate((src) => new Promise((ok) => {
    const v = document.createElement('video');
    v.muted = false;
    v.addEventListener('ended', () => ok({ duration: v.duration, audioBytes: v.webkitAudioDecodedByteCount, ended: true }));
    v.addEventListener('error', () => ok({ error: v.error?.code }));
    v.src = src;
    document.body.append(v);
    v.play().catch((e) => ok({ error: String(e) }));
  }), `/api/v1/recordings/${CONTACT}/download.mp4`);
  const d = facts.download;
  if (d.ended !== true) failed.push(`the download did not play: ${JSON.stringify(d)}`);
  if (!(Math.abs(d.duration - seconds) <= 0.2)) failed.push(`the download lasts ${d.duration} s, not ${seconds}`);
  if (!(d.audioBytes > 0)) failed.push('the download played no audio');
} catch (e) {
  failed.push(String(e));
} finally {
  await browser.close();
}
console.log(JSON.stringify({ url, ...facts, failed }));
process.exit(failed.length ? 1 : 0);
