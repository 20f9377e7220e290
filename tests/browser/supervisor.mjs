// A supervisor plays a contact's recording in Chromium, end to end against
// a running deskrec-server that this script seeds through its APIs:
//
// 1. roles, a supervisor (view_recordings, with a password) and an agent,
//    both in team North (a supervisor sees only their teams' contacts);
// 2. a device enrolled with WORK/device.pub; `deskrec record` (synthetic
//    numbered pictures) as that device, under WORK/server.pub, which is the
//    server's recording key;
// 3. the contact imported (3.3 s to 7.1 s into the recording), spliced with
//    `deskrec vault splice` and uploaded as the device by a standard tus
//    client (tus-js-client, in 16 KiB PATCHes);
// 4. Chromium signs in through the login form, opens the contact from the
//    list and plays its <video> to the end: the duration must match the
//    contact within one frame, the first picture must be frame 16 (on
//    screen from 3.2 s), the last frame 35.
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
import { checkPlayed, launch, playToEnd } from './chromium.mjs';

const [url, dataDir, deskrec, work] = process.argv.slice(2);
const CONTACT = 'browser-2';
const PASSWORD = 'a browser test password';
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
    '--size', '640x360']);
  const [start, end] = [rec.start + 3_300_000, rec.start + 7_100_000];
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
} catch (e) {
  failed.push(String(e));
} finally {
  await browser.close();
}
console.log(JSON.stringify({ url, ...facts, failed }));
process.exit(failed.length ? 1 : 0);
