// Plays an exported MP4 in headless Chromium's <video> and checks what a
// supervisor would see: the duration, the first and last pictures (read
// from the synthetic source's frame-number code), and that it plays to the
// end. Usage: node play.mjs FILE.mp4 DURATION_S FIRST_FRAME LAST_FRAME
//
// Prints one JSON line with the facts and exits non-zero when a check fails.

import { createServer } from 'node:http';
import { createReadStream, statSync } from 'node:fs';
import { chromium } from 'playwright-core';

const [file, wantDuration, wantFirst, wantLast] = process.argv.slice(2);
const FRAME_S = 0.2;

// A static server with Range support, as the recording server will have.
function serve(path) {
  const size = statSync(path).size;
  const server = createServer((req, res) => {
    if (req.url === '/') {
      res.writeHead(200, { 'content-type': 'text/html' });
      res.end('<!doctype html><video id="v" muted playsinline src="/r.mp4"></video><canvas id="c"></canvas>');
      return;
    }
    const m = /bytes=(\d+)-(\d*)/.exec(req.headers.range ?? '');
    const [start, end] = m ? [Number(m[1]), m[2] ? Number(m[2]) : size - 1] : [0, size - 1];
    res.writeHead(m ? 206 : 200, {
      'content-type': 'video/mp4',
      'accept-ranges': 'bytes',
      'content-length': end - start + 1,
      ...(m ? { 'content-range': `bytes ${start}-${end}/${size}` } : {}),
    });
    createReadStream(path, { start, end }).pipe(res);
  });
  return new Promise((ok) => server.listen(0, '127.0.0.1', () => ok(server)));
}

// Runs in the page: the frame number drawn by deskrec-capture's synthetic
// source (4 rows of 16 cells of 32 px; rows 0-1 the bits, rows 2-3 inverted).
function readFrameNumber() {
  const v = document.getElementById('v');
  const c = document.getElementById('c');
  c.width = v.videoWidth;
  c.height = v.videoHeight;
  const g = c.getContext('2d', { willReadFrequently: true });
  g.drawImage(v, 0, 0);
  const cell = (col, row) => {
    const d = g.getImageData(col * 32 + 8, row * 32 + 8, 16, 16).data;
    let sum = 0;
    for (let i = 0; i < d.length; i += 4) sum += 0.2126 * d[i] + 0.7152 * d[i + 1] + 0.0722 * d[i + 2];
    return sum / (d.length / 4);
  };
  let n = 0;
  for (let bit = 0; bit < 32; bit++) {
    const row = bit < 16 ? 0 : 1;
    const col = bit % 16;
    const on = cell(col, row);
    const off = cell(col, row + 2);
    if (Math.abs(on - off) < 40) return null;
    n = n * 2 + (on > off ? 1 : 0);
  }
  return n >>> 0;
}

const server = await serve(file);
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync',
    '--autoplay-policy=no-user-gesture-required'],
});
let failed = [];
const facts = {};
try {
  const page = await browser.newPage();
  await page.goto(`http://127.0.0.1:${server.address().port}/`);
  await page.waitForFunction(() => document.getElementById('v').readyState >= 2, null, { timeout: 20000 });
  facts.duration = await page.evaluate(() => document.getElementById('v').duration);
  facts.first = await page.evaluate(readFrameNumber);
  facts.ended = await page.evaluate(() => new Promise((ok) => {
    const v = document.getElementById('v');
    v.addEventListener('ended', () => ok(true));
    v.addEventListener('error', () => ok(`error ${v.error && v.error.code}`));
    v.play().catch((e) => ok(`play() failed: ${e}`));
  }));
  facts.last = await page.evaluate(readFrameNumber);
  facts.error = await page.evaluate(() => document.getElementById('v').error?.code ?? null);
} catch (e) {
  failed.push(String(e));
} finally {
  await browser.close();
  server.close();
}
if (Math.abs(facts.duration - Number(wantDuration)) > FRAME_S) failed.push(`duration ${facts.duration} s, want ${wantDuration} s`);
if (facts.first !== Number(wantFirst)) failed.push(`first picture ${facts.first}, want ${wantFirst}`);
if (facts.last !== Number(wantLast)) failed.push(`last picture ${facts.last}, want ${wantLast}`);
if (facts.ended !== true) failed.push(`did not play to the end: ${facts.ended}`);
console.log(JSON.stringify({ file, ...facts, failed }));
process.exit(failed.length ? 1 : 0);
