// Drives Debian's chromium (headless, through playwright-core) against `hangar serve`'s status
// page and checks what a user sees (issue 15). Run by tests/ui/status_page_test.cc:
//   node status_page.mjs BASE_URL API_KEY SCREENSHOT_DIR SPEC_JSON CHROMIUM
// SPEC_JSON names the models and device the test set up:
//   {"load": id, "download": id, "never_fits": id, "device": name, "load_bytes": N}
// Prints one line per step; exits 0 when every step passed, 1 on the first failure (after a
// screenshot failure-<step>.png), 3 when the hang detector fired. Every wait is a hang detector,
// never a speed assertion.
import { chromium } from 'playwright-core';
import path from 'node:path';

const [base, key, shots, specJson, executable] = process.argv.slice(2);
if (!base || !key || !shots || !specJson || !executable) {
  console.error('usage: node status_page.mjs BASE_URL API_KEY SCREENSHOT_DIR SPEC_JSON CHROMIUM');
  process.exit(2);
}
const spec = JSON.parse(specJson);
const kWait = 60_000;            // hang detector of one wait
const kWholeRun = 300_000;       // hang detector of the whole script
const kStates = ['unloaded', 'downloading', 'waiting', 'loading', 'loaded', 'unloading'];

let browser;
const watchdog = setTimeout(async () => {
  console.log(`FAIL hang detector: the script ran past ${kWholeRun / 1000} s`);
  try { await browser?.close(); } catch {}
  process.exit(3);
}, kWholeRun);

// Console errors, page errors and navigations. The browser itself logs every non-2xx fetch as a
// console error ("Failed to load resource: ... status of 507"): such a line is accepted only
// while a step that expects that status runs (a wrong key's 401, the never-fits 507).
const consoleErrors = [];
let expectedStatuses = [];
let navigations = 0;

async function main() {
  browser = await chromium.launch({ executablePath: executable, args: ['--no-sandbox'] });
  const context = await browser.newContext({ viewport: { width: 1440, height: 900 } });
  const page = await context.newPage();
  page.setDefaultTimeout(kWait);
  page.on('console', (m) => {
    if (m.type() !== 'error') return;
    const status = /status of (\d{3})/.exec(m.text());
    if (status && expectedStatuses.includes(Number(status[1]))) return;
    consoleErrors.push(`console.error: ${m.text()} (${m.location().url})`);
  });
  page.on('pageerror', (e) => consoleErrors.push(`page error: ${e.message}`));
  page.on('framenavigated', (f) => { if (f === page.mainFrame()) ++navigations; });
  const dialogs = [];
  page.on('dialog', async (d) => {
    dialogs.push(`${d.type()}: ${d.message()}`);
    await d.accept();
  });

  let navigationsAfterGoto = null;
  async function step(name, body, { allow = [] } = {}) {
    expectedStatuses = allow;
    try {
      await body();
    } catch (e) {
      console.log(`FAIL ${name}: ${e.message.split('\n').slice(0, 8).join('\n  ')}`);
      await dump(page);
      const file = `failure-${name.replace(/[^a-z0-9]+/gi, '-')}.png`;
      await page.screenshot({ path: path.join(shots, file), fullPage: true }).catch(() => {});
      e.reported = true;
      throw e;
    } finally {
      expectedStatuses = [];
    }
    if (consoleErrors.length > 0) {
      console.log(`FAIL ${name}: ${consoleErrors.join('\n  ')}`);
      throw Object.assign(new Error('console errors'), { reported: true });
    }
    // Every state change must reach the page without a reload (or a form submission).
    navigationsAfterGoto ??= navigations;
    if (navigations !== navigationsAfterGoto) {
      console.log(`FAIL ${name}: the page navigated (reloaded) ${navigations - navigationsAfterGoto} time(s)`);
      throw Object.assign(new Error('navigated'), { reported: true });
    }
    console.log(`ok   ${name}`);
  }
  const check = (cond, what) => { if (!cond) throw new Error(what); };
  // `promise`, or an error naming `what` after the hang detector.
  const within = (promise, what) => Promise.race([promise, new Promise((_, reject) =>
    setTimeout(() => reject(new Error(`waited ${kWait / 1000} s for ${what}`)), kWait).unref())]);

  // What the page shows, read in the page. Ids are compared as attributes (they hold "/", ":").
  const view = () => page.evaluate(() => {
    const out = { models: {}, devices: {}, message: '', conn: '' };
    for (const m of document.querySelectorAll('#models .model')) {
      const progress = m.querySelector('progress.model-progress');
      const buttons = [...m.querySelectorAll('button[data-action]')].map((b) => b.dataset.action);
      out.models[m.getAttribute('data-model')] = {
        state: (m.querySelector('.model-state')?.textContent ?? '').trim(),
        error: (m.querySelector('.model-error')?.textContent ?? '').trim(),
        progress: progress ? Number(progress.getAttribute('value') ?? NaN) : null,
        buttons,
      };
    }
    for (const d of document.querySelectorAll('#devices .device')) {
      const segs = {};
      for (const s of d.querySelectorAll('.device-bar .device-seg')) {
        segs[s.getAttribute('data-model')] = Number(s.getAttribute('data-bytes'));
      }
      const free = d.querySelector('.device-free');
      out.devices[d.getAttribute('data-device')] = {
        segs,
        free: free ? Number(free.getAttribute('data-bytes')) : null,
        summary: (d.querySelector('.device-summary')?.textContent ?? '').trim(),
      };
    }
    out.message = (document.querySelector('#message')?.textContent ?? '').trim();
    out.conn = (document.querySelector('#conn')?.textContent ?? '').trim();
    return out;
  });
  // Waits until `pred(view)` holds; the error names what was awaited and what the page showed.
  async function until(what, pred) {
    const deadline = Date.now() + kWait;
    let last;
    for (;;) {
      last = await view();
      if (pred(last)) return last;
      if (Date.now() > deadline) {
        throw new Error(`waited ${kWait / 1000} s for ${what}; the page shows ${JSON.stringify(last)}`);
      }
      // Re-read after the page's next DOM change (or 250 ms): causal, not a timing assertion.
      await page.evaluate(() => new Promise((resolve) => {
        const o = new MutationObserver(() => { o.disconnect(); resolve(); });
        o.observe(document.body, { subtree: true, childList: true, characterData: true, attributes: true });
        setTimeout(() => { o.disconnect(); resolve(); }, 250);
      }));
    }
  }
  const model = (id) => page.locator(`#models .model[data-model="${id}"]`);
  const button = (id, action) => model(id).locator(`button[data-action="${action}"]`);

  // Records every state and progress value each model shows, as the page renders them.
  const installHistory = () => page.evaluate(() => {
    window.__history = {};
    const record = () => {
      for (const m of document.querySelectorAll('#models .model')) {
        const id = m.getAttribute('data-model');
        const progress = m.querySelector('progress.model-progress');
        const entry = {
          state: (m.querySelector('.model-state')?.textContent ?? '').trim(),
          progress: progress ? Number(progress.getAttribute('value') ?? NaN) : null,
        };
        const h = (window.__history[id] ??= []);
        const last = h[h.length - 1];
        if (!last || last.state !== entry.state || !Object.is(last.progress, entry.progress)) h.push(entry);
      }
    };
    record();
    new MutationObserver(record).observe(document.body,
      { subtree: true, childList: true, characterData: true, attributes: true });
  });
  const history = (id) => page.evaluate((id) => window.__history[id] ?? [], id);

  const { device } = spec;
  const segOf = (v, id) => v.devices[device]?.segs[id] ?? 0;
  let freeBefore = 0;

  await step('the page shows only the key form before a key is given', async () => {
    await page.goto(base + '/');
    await page.locator('#key-form').waitFor({ state: 'visible' });
    check(await page.locator('#models .model').count() === 0, 'models are listed before the key');
  });

  await step('a wrong key shows the key form again', async () => {
    await page.fill('#key-input', key + '-wrong');
    const refused = page.waitForResponse((r) => r.url().startsWith(base) && r.status() === 401);
    await page.click('#key-submit');
    await refused;
    await page.locator('#key-form').waitFor({ state: 'visible' });
    check(await page.locator('#models .model').count() === 0, 'models are listed after a 401');
  }, { allow: [401] });

  await step('the right key shows every model, unloaded, and the stream is live', async () => {
    await page.fill('#key-input', key);
    await page.click('#key-submit');
    await page.locator('#key-form').waitFor({ state: 'hidden' });
    const v = await until('the models and a live stream', (v) =>
      v.conn === 'live' && [spec.load, spec.download, spec.never_fits].every((id) => v.models[id]));
    for (const id of [spec.load, spec.download, spec.never_fits]) {
      check(v.models[id].state === 'unloaded', `${id} shows state "${v.models[id].state}"`);
      check(v.models[id].buttons.includes('load'), `${id} has no load button`);
    }
    // Delete is offered for a model from the hub, not for a file of the models folder.
    check(!v.models[spec.load].buttons.includes('delete'), `${spec.load} (models folder) has a delete button`);
    check(v.models[spec.download].buttons.includes('delete'), `${spec.download} (from the hub) has no delete button`);
    check(v.devices[device], `no .device[data-device="${device}"]: ${JSON.stringify(v.devices)}`);
    check(segOf(v, spec.load) === 0, `${spec.load} holds memory before it loads`);
    freeBefore = v.devices[device].free;
    check(Number.isFinite(freeBefore) && freeBefore > 0, `${device} .device-free data-bytes is ${freeBefore}`);
    const stored = await page.evaluate(() => Object.keys(sessionStorage).map((k) => sessionStorage.getItem(k)));
    check(stored.includes(key), 'the key is not kept in sessionStorage');
    await page.evaluate(() => { window.__notReloaded = true; });
    await installHistory();
  });

  await step(`load: ${spec.load} goes loading → loaded and the ${device} bar grows, no reload`, async () => {
    const dialogsBefore = dialogs.length;
    await button(spec.load, 'load').click();
    const v = await until(`${spec.load} loaded`, (v) => v.models[spec.load]?.state === 'loaded');
    const h = await history(spec.load);
    const loading = h.findIndex((e) => e.state === 'loading');
    const loaded = h.findIndex((e) => e.state === 'loaded');
    check(loading >= 0 && loading < loaded, `states shown: ${JSON.stringify(h)}`);
    check(h.some((e) => e.state === 'loading' && e.progress !== null),
      `no progress.model-progress while loading: ${JSON.stringify(h)}`);
    check(v.models[spec.load].progress === null, 'progress.model-progress still shown once loaded');
    check(segOf(v, spec.load) === spec.load_bytes,
      `${device} segment of ${spec.load}: ${segOf(v, spec.load)} bytes, expected ${spec.load_bytes}`);
    check(v.devices[device].free < freeBefore, `${device} free ${v.devices[device].free} did not shrink from ${freeBefore}`);
    check(v.devices[device].summary !== '', `${device} .device-summary is empty`);
    check(await page.evaluate(() => window.__notReloaded === true), 'the page reloaded');
    check(dialogs.length === dialogsBefore, `load asked: ${JSON.stringify(dialogs.slice(dialogsBefore))}`);
    await page.screenshot({ path: path.join(shots, '1440-loaded.png'), fullPage: true });
  });

  await step(`chat: the answer of ${spec.load} streams into #chat-output piece by piece`, async () => {
    // The page's request is held until the text before the answer is read, then sent on with the
    // fake worker's "fake_gate": it sends the first piece and holds the rest until released. The
    // first piece alone on the page proves the answer is drawn as it streams.
    let sent = null;
    let forward;
    const intercepted = new Promise((resolve) => {
      page.route('**/v1/chat/completions', (route) => {
        sent = JSON.parse(route.request().postData() ?? '{}');
        forward = () => route.continue({ postData: JSON.stringify({ ...sent, fake_gate: 'ui-chat' }) });
        resolve();
      });
    });
    await page.locator('select#chat-model').selectOption(spec.load);
    await page.fill('textarea#chat-input', 'hello there');
    await page.click('button#chat-send');
    await within(intercepted, 'the page to send POST /v1/chat/completions');
    check(sent.stream === true && sent.model === spec.load, `the page sent ${JSON.stringify(sent)}`);
    const output = () => page.evaluate(() => document.querySelector('#chat-output')?.textContent ?? '');
    const before = await output();
    await forward();
    await page.waitForFunction((b) => (document.querySelector('#chat-output')?.textContent ?? '') !== b, before);
    const first = await output();
    check(first.startsWith(before), `#chat-output lost its text: "${before}" became "${first}"`);
    check(first.slice(before.length).trim() === spec.load,
      `#chat-output shows "${first.slice(before.length)}" once the first piece ("${spec.load} ") came`);
    const release = await fetch(base + '/tokenize', {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${key}` },
      body: JSON.stringify({ model: spec.load, content: 'x', fake_release: 'ui-chat' }),
    });
    check(release.ok, `releasing the stream: HTTP ${release.status}`);
    const answer = `${spec.load} heard: hello there`;
    await page.waitForFunction(([b, a]) => (document.querySelector('#chat-output')?.textContent ?? '').slice(b.length).includes(a),
      [before, answer]);
    await page.unroute('**/v1/chat/completions');
  });

  await step(`unload: ${spec.load} goes unloaded after the confirm and its ${device} segment goes`, async () => {
    const before = dialogs.length;
    await button(spec.load, 'unload').click();
    const v = await until(`${spec.load} unloaded without a ${device} segment`, (v) =>
      v.models[spec.load]?.state === 'unloaded' && segOf(v, spec.load) === 0);
    check(dialogs.length > before && dialogs[before].startsWith('confirm'), `no confirm dialog: ${JSON.stringify(dialogs)}`);
    check(v.devices[device].free === freeBefore, `${device} free is ${v.devices[device].free}, was ${freeBefore} before the load`);
  });

  await step(`download: ${spec.download} shows a progress bar that advances, then loads`, async () => {
    await button(spec.download, 'load').click();
    await until(`${spec.download} downloading`, (v) => v.models[spec.download]?.state === 'downloading');
    await page.screenshot({ path: path.join(shots, '1440-downloading.png'), fullPage: true });
    await until(`${spec.download} loaded`, (v) => v.models[spec.download]?.state === 'loaded');
    const h = await history(spec.download);
    const values = h.filter((e) => e.state === 'downloading' && e.progress !== null).map((e) => e.progress);
    check(values.length >= 2, `fewer than two progress values while downloading: ${JSON.stringify(h)}`);
    check(values.every((x, i) => Number.isFinite(x) && x >= 0 && x <= 1 && (i === 0 || x >= values[i - 1])),
      `progress values not in 0..1 or went backwards: ${JSON.stringify(values)}`);
    check(values[values.length - 1] > values[0], `the progress bar did not advance: ${JSON.stringify(values)}`);
  });

  await step(`never fits: loading ${spec.never_fits} shows the router's message`, async () => {
    await button(spec.never_fits, 'load').click();
    const v = await until('a message in #message', (v) => v.message !== '');
    check(v.message.includes(device), `#message "${v.message}" does not name ${device}`);
    check(await page.locator('#message').getAttribute('role') === 'alert', '#message has no role=alert');
    check(v.models[spec.never_fits].state === 'unloaded', `${spec.never_fits} shows "${v.models[spec.never_fits].state}"`);
    check(v.models[spec.download].state === 'loaded', `${spec.download} shows "${v.models[spec.download].state}"`);
    await page.screenshot({ path: path.join(shots, '1440-final.png'), fullPage: true });
  }, { allow: [507] });

  await step('at 375 px: no horizontal scrolling, states readable, buttons reachable', async () => {
    await page.setViewportSize({ width: 375, height: 812 });
    await page.evaluate(() => new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r))));
    const m = await page.evaluate(() => {
      const inside = (el) => { const b = el.getBoundingClientRect(); return b.width > 0 && b.left >= 0 && b.right <= 375; };
      return {
        scrollWidth: document.documentElement.scrollWidth,
        states: [...document.querySelectorAll('#models .model-state')].map((s) =>
          ({ text: s.textContent.trim(), shown: s.getClientRects().length > 0 })),
        outside: [...document.querySelectorAll('#models button[data-action], #chat-send, #chat-input, #chat-model')]
          .filter((b) => !inside(b)).map((b) => b.outerHTML.slice(0, 80)),
      };
    });
    check(m.scrollWidth <= 375, `document scrollWidth is ${m.scrollWidth} at 375 px`);
    check(m.states.length > 0 && m.states.every((s) => s.shown && kStates.includes(s.text)),
      `states not readable as text: ${JSON.stringify(m.states)}`);
    check(m.outside.length === 0, `controls outside the 375 px viewport: ${JSON.stringify(m.outside)}`);
    await page.screenshot({ path: path.join(shots, '375-final.png'), fullPage: true });
  });
}

// The page's regions, for a failing step's output.
async function dump(page) {
  const html = await page.evaluate(() => ['#models', '#devices', '#message', '#conn', '#chat-output']
    .map((s) => `${s}: ${(document.querySelector(s)?.outerHTML ?? '(missing)').slice(0, 1500)}`)
    .join('\n')).catch((e) => `(could not read the page: ${e.message})`);
  console.log(html);
}

let code = 0;
try {
  await main();
  console.log('all steps passed');
} catch (e) {
  if (!e.reported) console.log(`FAIL ${e.stack}`);
  code = 1;
} finally {
  clearTimeout(watchdog);
  await browser?.close().catch(() => {});
}
process.exit(code);
