// Shared by the browser tests: launching Debian's Chromium headless, and
// watching a <video> element play the numbered synthetic pictures.

import { chromium } from 'playwright-core';

/** Seconds per picture of the test recordings (5 fps). */
export const FRAME_S = 0.2;

/** Headless Chromium with autoplay allowed; `args` are added. */
export function launch(args = []) {
  return chromium.launch({
    executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync',
      '--autoplay-policy=no-user-gesture-required', ...args],
  });
}

// Runs in the page: the frame number drawn by deskrec-capture's synthetic
// source (4 rows of 16 cells of 32 px; rows 0-1 the bits, rows 2-3
// inverted) in the picture `video` shows now.
function readFrameNumber(selector) {
  const v = document.querySelector(selector);
  const c = document.createElement('canvas');
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

/** `readFrameNumber`, for `page.evaluate` with a selector. */
export const readFrameNumberOf = readFrameNumber;

/**
 * Waits until the <video> at `selector` has its first picture, then plays
 * it to the end. Returns {duration, first, ended, last, error}: `first` and
 * `last` are the frame numbers shown at the start and at the end, `ended`
 * is true or why playback did not end.
 */
export async function playToEnd(page, selector) {
  const facts = {};
  await page.waitForFunction((s) => document.querySelector(s)?.readyState >= 2, selector, { timeout: 30000 });
  facts.duration = await page.evaluate((s) => document.querySelector(s).duration, selector);
  facts.first = await page.evaluate(readFrameNumber, selector);
  facts.ended = await page.evaluate((s) => new Promise((ok) => {
    const v = document.querySelector(s);
    v.addEventListener('ended', () => ok(true));
    v.addEventListener('error', () => ok(`error ${v.error && v.error.code}`));
    v.play().catch((e) => ok(`play() failed: ${e}`));
  }), selector);
  facts.last = await page.evaluate(readFrameNumber, selector);
  facts.error = await page.evaluate((s) => document.querySelector(s).error?.code ?? null, selector);
  return facts;
}

/** The checks both tests make of what played; returns the failures. */
export function checkPlayed(facts, wantDuration, wantFirst, wantLast) {
  const failed = [];
  if (!(Math.abs(facts.duration - Number(wantDuration)) <= FRAME_S)) failed.push(`duration ${facts.duration} s, want ${wantDuration} s`);
  if (facts.first !== Number(wantFirst)) failed.push(`first picture ${facts.first}, want ${wantFirst}`);
  if (facts.last !== Number(wantLast)) failed.push(`last picture ${facts.last}, want ${wantLast}`);
  if (facts.ended !== true) failed.push(`did not play to the end: ${facts.ended}`);
  return failed;
}
