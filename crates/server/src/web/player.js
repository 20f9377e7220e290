// The contact page's player: the screen recording and the call audio on
// one timeline, the contact's. Served as /static/player.js (the pages'
// Content-Security-Policy allows scripts from this origin only, and no
// inline script); it reads everything from the #contact-player element's
// data attributes, written by the server:
//
//   data-duration   the contact's length, s
//   data-video-at   where the screen recording starts on the timeline, s
//                   (its trim start minus the contact's start)
//   data-audio-at   where the call audio starts, s (0: with the contact)
//
// The audio, when there is one, is the clock: people hear a skip in a
// voice, not in a screen. The video follows it: every 200 ms it is put
// back when it has drifted more than 60 ms, so the two never drift more
// than a frame or so apart. Keyboard: space or k play/pause, arrows
// seek 5 s, j and l seek 10 s, < and > change the speed, Home and End.

(() => {
  const root = document.getElementById('contact-player');
  if (!root) return;
  const num = (name) => Number(root.dataset[name] ?? 0);
  const duration = num('duration');
  const videoAt = num('videoAt');
  const audioAt = num('audioAt');
  const video = root.querySelector('video');
  const audio = root.querySelector('audio');
  const seek = root.querySelector('#seek');
  const playButton = root.querySelector('#play');
  const rate = root.querySelector('#rate');
  const clock = root.querySelector('#clock');
  const RATES = [0.5, 0.75, 1, 1.25, 1.5, 2];
  const DRIFT_S = 0.06;
  let playing = false;

  const clamp = (t) => Math.min(Math.max(t, 0), duration);
  // The timeline's time, from the clock element.
  const now = () => {
    if (audio) return audio.currentTime + audioAt;
    if (video) return video.currentTime + videoAt;
    return 0;
  };
  // Puts `el`, which starts at `at` on the timeline, where time `t` is:
  // before its start or after its end, it waits paused.
  const place = (el, at, t) => {
    if (!el) return;
    const local = t - at;
    const inside = local >= 0 && (!Number.isFinite(el.duration) || local < el.duration);
    if (Math.abs(el.currentTime - Math.max(local, 0)) > DRIFT_S) el.currentTime = Math.max(local, 0);
    if (playing && inside && el.paused) el.play().catch(() => {});
    if ((!playing || !inside) && !el.paused) el.pause();
  };
  const fmt = (s) => {
    const t = Math.max(0, Math.round(s));
    return `${Math.floor(t / 60)}:${String(t % 60).padStart(2, '0')}`;
  };
  const show = () => {
    const t = now();
    if (document.activeElement !== seek) seek.value = String(t);
    clock.textContent = `${fmt(t)} / ${fmt(duration)}`;
    playButton.textContent = playing ? 'Pause' : 'Play';
  };

  const player = {
    play() {
      if (now() >= duration - 0.05) this.seek(0);
      playing = true;
      this.sync();
    },
    pause() {
      playing = false;
      for (const el of [audio, video]) if (el && !el.paused) el.pause();
      show();
    },
    toggle() {
      if (playing) this.pause();
      else this.play();
    },
    seek(t) {
      const to = clamp(t);
      if (audio) audio.currentTime = Math.max(to - audioAt, 0);
      if (video) video.currentTime = Math.max(to - videoAt, 0);
      this.sync(to);
    },
    setRate(r) {
      for (const el of [audio, video]) if (el) el.playbackRate = r;
      rate.value = String(r);
    },
    // Brings the follower to the clock's time.
    sync(t = now()) {
      place(audio, audioAt, t);
      place(video, videoAt, t);
      if (playing && t >= duration) this.pause();
      show();
    },
    // For tests and the curious: each clock's time on the timeline.
    clocks() {
      return {
        audio: audio ? audio.currentTime + audioAt : null,
        video: video ? video.currentTime + videoAt : null,
        rate: Number(rate.value),
        playing,
      };
    },
  };
  window.deskrecPlayer = player;

  seek.max = String(duration);
  seek.addEventListener('input', () => player.seek(Number(seek.value)));
  playButton.addEventListener('click', () => player.toggle());
  rate.addEventListener('change', () => player.setRate(Number(rate.value)));
  for (const el of [audio, video]) {
    if (!el) continue;
    el.controls = false;
    el.addEventListener('ended', () => player.sync());
  }
  // Markers sit where their times put them on the bar (set here: the
  // pages' policy allows no inline style); a click on one seeks to it.
  const bar = root.querySelector('#bar');
  for (const marker of bar.querySelectorAll('[data-at]')) {
    const at = Number(marker.dataset.at);
    marker.style.left = `${(at / duration) * 100}%`;
    if (marker.dataset.until !== undefined) {
      marker.style.width = `${((Number(marker.dataset.until) - at) / duration) * 100}%`;
    }
    marker.addEventListener('click', (e) => {
      e.stopPropagation();
      player.seek(at);
    });
  }
  bar.addEventListener('click', (e) => {
    const box = bar.getBoundingClientRect();
    player.seek(((e.clientX - box.left) / box.width) * duration);
  });
  document.addEventListener('keydown', (e) => {
    if (e.target instanceof HTMLInputElement && e.target.type !== 'range') return;
    if (e.target instanceof HTMLSelectElement) return;
    const step = { ArrowLeft: -5, ArrowRight: 5, j: -10, l: 10 }[e.key];
    const i = RATES.indexOf(Number(rate.value));
    if (e.key === ' ' || e.key === 'k') player.toggle();
    else if (step !== undefined) player.seek(now() + step);
    else if (e.key === '<') player.setRate(RATES[Math.max(i - 1, 0)]);
    else if (e.key === '>') player.setRate(RATES[Math.min(i + 1, RATES.length - 1)]);
    else if (e.key === 'Home') player.seek(0);
    else if (e.key === 'End') player.seek(duration);
    else return;
    e.preventDefault();
  });
  setInterval(() => {
    if (playing) player.sync();
  }, 200);
  show();
})();
