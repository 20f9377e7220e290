// Plays an exported MP4 in headless Chromium's <video> and checks what a
// supervisor would see: the duration, the first and last pictures (read
// from the synthetic source's frame-number code), and that it plays to the
// end. Usage: node play.mjs FILE.mp4 DURATION_S FIRST_FRAME LAST_FRAME
//
// Prints one JSON line with the facts and exits non-zero when a check fails.

import { createServer } from 'node:http';
import { createReadStream, statSync } from 'node:fs';
import { checkPlayed, launch, playToEnd } from './chromium.mjs';

const [file, wantDuration, wantFirst, wantLast] = process.argv.slice(2);

// A static server with Range support, as the recording server has.
function serve(path) {
  const size = statSync(path).size;
  const server = createServer((req, res) => {
    if (req.url === '/') {
      res.writeHead(200, { 'content-type': 'text/html' });
      res.end('<!doctype html><video id="v" muted playsinline src="/r.mp4"></video>');
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

const server = await serve(file);
const browser = await launch();
let failed = [];
let facts = {};
try {
  const page = await browser.newPage();
  await page.goto(`http://127.0.0.1:${server.address().port}/`);
  facts = await playToEnd(page, '#v');
  failed = checkPlayed(facts, wantDuration, wantFirst, wantLast);
} catch (e) {
  failed.push(String(e));
} finally {
  await browser.close();
  server.close();
}
console.log(JSON.stringify({ file, ...facts, failed }));
process.exit(failed.length ? 1 : 0);
