// The web UI end to end in headless Chromium (playwright-core, Debian's /usr/bin/chromium).
//
// Run by tests/it/ui.rs, which starts kinesalite, moto (STS) and `tributary serve`, creates the
// Kinesis streams and keeps putting records; this script only uses the browser, like a user.
// Prints `ok - <step>` per step and `UI FLOW OK` at the end; exits 1 on the first failure
// (with a screenshot of that moment in the temp directory).
//
// Environment (set by tests/it/ui.rs):
//   TRIBUTARY_UI_URL, TRIBUTARY_UI_TOKEN            the server and its API token
//   TRIBUTARY_UI_IMPORT_STREAM, _TRIGGER_STREAM     Kinesis streams on kinesalite
//   TRIBUTARY_UI_ACCESS_KEY_ID, _SECRET_ACCESS_KEY  keys the AWS-keys authorization holds
//   TRIBUTARY_UI_PLAYWRIGHT                         playwright-core's package.json (.peers/node)
//   TRIBUTARY_UI_PROFILE_DIR                        a fresh browser user-data-dir
//   TRIBUTARY_UI_SCREENSHOT_DIR                     where screenshots go (docs/screenshots when
//                                                   TRIBUTARY_SCREENSHOTS=1)
import { createRequire } from 'node:module';
import fs from 'node:fs';
import os from 'node:os';
import { createInterface } from 'node:readline';
import path from 'node:path';

const env = process.env;
const need = (k) => { if (!env[k]) { console.error(`missing ${k}`); process.exit(2); } return env[k]; };
const BASE = need('TRIBUTARY_UI_URL').replace(/\/$/, '');
const TOKEN = need('TRIBUTARY_UI_TOKEN');
const IMPORT_STREAM = need('TRIBUTARY_UI_IMPORT_STREAM');
const TRIGGER_STREAM = need('TRIBUTARY_UI_TRIGGER_STREAM');
const KEY_ID = need('TRIBUTARY_UI_ACCESS_KEY_ID');
const SECRET = need('TRIBUTARY_UI_SECRET_ACCESS_KEY');
const SHOTS = need('TRIBUTARY_UI_SCREENSHOT_DIR');
const { chromium } = createRequire(need('TRIBUTARY_UI_PLAYWRIGHT'))('playwright-core');

const WAIT = 60_000;
fs.mkdirSync(SHOTS, { recursive: true });

function check(cond, what) { if (!cond) throw new Error(`expected: ${what}`); }
async function shot(page, name) { await page.screenshot({ path: path.join(SHOTS, `${name}.png`), fullPage: true }); }

const context = await chromium.launchPersistentContext(need('TRIBUTARY_UI_PROFILE_DIR'), {
  executablePath: env.TRIBUTARY_UI_CHROMIUM || '/usr/bin/chromium',
  headless: true,
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  viewport: { width: 1280, height: 900 },
});
const page = context.pages()[0] || await context.newPage();
page.setDefaultTimeout(WAIT);
const pageErrors = [];
page.on('pageerror', (e) => pageErrors.push(e.message));
page.on('console', (m) => { if (m.type() === 'error' && !/Failed to load resource/.test(m.text())) pageErrors.push(m.text()); });
page.on('dialog', (d) => d.accept());

// Requests to tests/it/ui.rs (a line on stdout), answered `@@ done` on stdin.
const stdinReader = createInterface({ input: process.stdin });
const stdinLines = stdinReader[Symbol.asyncIterator]();
// The test process holds our stdin: when it dies (a killed test), stop too, browser and all.
let finished = false;
stdinReader.on('close', () => { if (!finished) { console.log('not ok - the test process went away'); process.exit(3); } });
async function control(what) {
  console.log(`@@ ${what}`);
  const reply = await stdinLines.next();
  check(!reply.done && reply.value.trim() === '@@ done', `the test harness did "${what}"`);
}

let current = 'start';
async function step(name, fn) {
  current = name;
  const t = Date.now();
  const outcome = await fn();
  check(pageErrors.length === 0, `no script errors, got: ${pageErrors.join(' | ')}`);
  console.log(`${outcome === 'skipped' ? 'skip' : 'ok'} - ${name} (${((Date.now() - t) / 1000).toFixed(1)} s)`);
}

/** Calls the API from the page (same origin, the user's token) to see which routes exist. */
async function apiStatus(p, route) {
  return page.evaluate(async ([r, token]) => {
    const res = await fetch(r, { headers: { Authorization: `Bearer ${token}` } });
    const body = await res.text();
    return { status: res.status, missing: res.status === 404 && body.includes('no such API route') };
  }, [route, TOKEN]);
}

/** Every visible form control has a label (own label, aria-label, or a legend for radios). */
async function checkLabels(where) {
  const unlabelled = await page.evaluate(() => Array.from(document.querySelectorAll('main input, main select, main textarea'))
    .filter((el) => el.offsetParent !== null && el.type !== 'hidden')
    .filter((el) => !(el.labels && el.labels.length) && !el.getAttribute('aria-label'))
    .map((el) => el.id || el.name || el.outerHTML.slice(0, 60)));
  check(unlabelled.length === 0, `${where}: every control has a label, unlabelled: ${unlabelled.join(', ')}`);
}

const statValue = async (name) => Number((await page.locator(`[data-stat="${name}"] .value`).innerText()).replace(/[^\d]/g, '') || 0);

let jobId;
try {
  await step('the token is asked once and a wrong one is refused', async () => {
    await page.goto(`${BASE}/`);
    await page.locator('#token').fill('not-the-token');
    await page.locator('#token').press('Enter');
    await page.getByText('The server refused this token.').waitFor();
    check((await page.locator('#token-form').boundingBox()).width > 350, 'the sign-in box uses the page width');
    check(await page.locator('#token').getAttribute('aria-invalid') === 'true', 'the token field is marked invalid');
    await page.locator('#token').fill(TOKEN);
    await page.getByRole('button', { name: 'Continue' }).click();
    await page.getByRole('navigation', { name: 'Main' }).waitFor();
    await page.getByRole('heading', { name: 'Jobs', level: 1 }).waitFor();
    // Kept in the tab's session: a reload does not ask again.
    await page.reload();
    await page.getByRole('heading', { name: 'Jobs', level: 1 }).waitFor();
    check(await page.locator('#token').count() === 0, 'no token form after reload');
  });

  await step('an AWS-keys authorization: inline error from the API, then saved; the secret is never shown', async () => {
    await page.getByRole('link', { name: 'Authorizations' }).click();
    await page.getByRole('heading', { name: 'New authorization' }).waitFor();
    await checkLabels('authorization form');
    await page.getByLabel('Label', { exact: true }).fill('local keys');
    await page.getByLabel('Description').fill('kinesalite for the browser test');
    await page.getByLabel('Access key ID').fill('short');
    await page.getByLabel('Secret access key').fill(SECRET);
    await page.getByRole('button', { name: 'Save authorization' }).click();
    const err = page.locator('[data-error-for="access_key_id"]');
    await err.filter({ hasText: '16–128 letters and digits' }).waitFor();
    check(await page.getByLabel('Access key ID').getAttribute('aria-invalid') === 'true', 'access key marked invalid');
    await page.getByLabel('Access key ID').fill(KEY_ID);
    await page.getByRole('button', { name: 'Save authorization' }).click();
    await page.locator('[data-saved]').filter({ hasText: 'will not be shown again' }).waitFor();
    check(await page.getByLabel('Secret access key').inputValue() === '', 'the secret field is cleared');
    const row = page.locator('table[data-table="authorizations"] tr', { hasText: 'local keys' });
    await row.waitFor();
    check((await row.innerText()).includes('****'), 'the list shows **** for the secret');
    check(!(await page.content()).includes(SECRET), 'the secret is nowhere in the page');
    await row.getByRole('button', { name: 'Verify' }).click();
    await row.locator('[data-verified]').filter({ hasText: 'ui-user' }).waitFor();
  });

  await step('a delegated-role authorization shows the trust and permission policies with its external ID', async () => {
    await page.getByLabel('Delegated IAM role (recommended)').check();
    await page.getByLabel('Label', { exact: true }).fill('delegated role');
    await page.getByLabel('Role ARN').fill('arn:aws:iam::123456789012:role/TributaryKinesis');
    const externalId = await page.getByLabel('External ID').inputValue();
    check(/^tributary-[0-9a-f]{32}$/.test(externalId), `a generated external ID, got ${externalId}`);
    await page.locator('#pol-stream').fill(IMPORT_STREAM);
    await page.getByRole('button', { name: 'Show policies' }).click();
    const trust = page.locator('pre[data-policy="trust"]');
    await trust.waitFor();
    const trustText = await trust.innerText();
    check(trustText.includes('sts:ExternalId') && trustText.includes(externalId), 'the trust policy requires the external ID');
    const perm = await page.locator('pre[data-policy="permission"]').innerText();
    check(perm.includes('kinesis:GetRecords') && !perm.includes('kinesis:PutRecord'), 'the import permission policy');
    await page.getByRole('button', { name: 'Copy trust policy' }).waitFor();
    await shot(page, 'authorizations');
    await page.getByRole('button', { name: 'Save authorization' }).click();
    await page.locator('[data-saved]').filter({ hasText: externalId }).waitFor();
    await page.locator('table[data-table="authorizations"] tr', { hasText: 'delegated role' }).waitFor();
  });

  await step('the form is keyboard usable with a visible focus', async () => {
    await page.getByLabel('Label', { exact: true }).focus();
    await page.keyboard.press('Tab');
    const focused = await page.evaluate(() => document.activeElement && document.activeElement.id);
    check(focused === 'auth-description', `Tab moves from Label to Description, got ${focused}`);
    const outline = await page.evaluate(() => getComputedStyle(document.activeElement).outlineStyle);
    check(outline !== 'none', 'the focused field shows an outline');
  });

  await step('an import job through the form: inline validation, then the Kinesis stream from the drop-down', async () => {
    await page.getByRole('link', { name: 'Jobs' }).click();
    await page.getByRole('link', { name: 'New job' }).click();
    await page.getByRole('heading', { name: 'New job' }).waitFor();
    await checkLabels('new job form');
    await page.getByLabel('Authorization', { exact: true }).selectOption({ label: 'local keys (keys)' });
    await page.getByRole('button', { name: 'Create job' }).click();
    await page.locator('[data-error-for="label"]').filter({ hasText: 'is required' }).waitFor();
    await page.getByLabel('Label', { exact: true }).fill('Web clicks');
    await page.getByLabel('Description').fill('The storefront clickstream');
    await page.getByLabel('Tributary event stream', { exact: true }).fill('bad name!');
    await page.getByLabel('Region', { exact: true }).selectOption('us-east-1');
    const kinesisSelect = page.locator('select#f-kinesis_stream');
    await kinesisSelect.locator(`option[value="${IMPORT_STREAM}"]`).waitFor({ state: 'attached' });
    await kinesisSelect.selectOption(IMPORT_STREAM);
    await page.getByRole('button', { name: 'Create job' }).click();
    await page.locator('[data-error-for="config.stream"]').filter({ hasText: /.+/ }).waitFor();
    check(await page.getByLabel('Tributary event stream', { exact: true }).getAttribute('aria-invalid') === 'true', 'the stream field is marked');
    await page.getByLabel('Tributary event stream', { exact: true }).fill('web_events');
    await page.getByLabel('Oldest record (trim horizon)').check();
    await shot(page, 'new-import-job');
    await page.getByRole('button', { name: 'Create job' }).click();
    await page.waitForURL(/#\/jobs\/(?!new$)[^/]+$/);
    jobId = decodeURIComponent(page.url().split('#/jobs/')[1]);
    await page.getByRole('heading', { name: 'Web clicks', level: 1 }).waitFor();
  });

  await step('the job screen updates live: records, shards with lag charts, events, dead letters', async () => {
    await page.evaluate(() => { window.__sameDocument = true; });
    await page.waitForFunction(() => Number((document.querySelector('[data-stat="events_out"] .value') || {}).textContent?.replace(/\D/g, '') || 0) >= 40, null, { timeout: WAIT });
    const before = await statValue('events_out');
    // New records keep arriving from the test: the count rises without a reload.
    await page.waitForFunction((b) => Number(document.querySelector('[data-stat="events_out"] .value').textContent.replace(/\D/g, '')) > b, before, { timeout: WAIT });
    check(await page.evaluate(() => window.__sameDocument === true), 'no page reload');
    check(await page.locator('table[data-table="shards"] tbody tr').count() === 2, 'two shards');
    await page.locator('table[data-table="shards"] svg.spark polyline').first().waitFor({ state: 'attached' });
    await page.locator('table[data-table="events"] tbody tr', { hasText: 'example.com' }).first().waitFor();
    const dead = page.locator('table[data-table="dead-letters"] tbody tr', { hasText: 'UTF-8' });
    await dead.first().waitFor();
    check((await dead.first().locator('pre[data-raw="hex"]').innerText()).includes('ff fe'), 'the raw payload as hex');
    check((await dead.first().locator('pre[data-raw="text"]').innerText()).includes('not json at all'), 'the raw payload as text');
    await page.waitForTimeout(4500); // a few more polls: the lag charts get points
    await shot(page, 'job-detail');
  });

  await step('pause and resume from the job screen', async () => {
    await page.getByRole('button', { name: 'Pause' }).click();
    await page.locator('.page-head [data-state="paused"]').waitFor();
    await page.getByRole('button', { name: 'Resume' }).click();
    await page.locator('.page-head [data-state="running"]').waitFor();
    await page.getByRole('link', { name: '← Jobs' }).click();
    await page.locator('table[data-table="jobs"] tr', { hasText: 'Web clicks' }).locator('[data-state="running"]').waitFor();
  });

  await step('streams and their newest events', async () => {
    await page.getByRole('link', { name: 'Streams & events' }).click();
    await page.locator('table[data-table="streams"] a', { hasText: 'web_events' }).click();
    await page.getByRole('heading', { name: 'web_events', level: 1 }).waitFor();
    await page.locator('[data-event-count]').waitFor();
    const first = Number(await page.locator('[data-event-count]').getAttribute('data-event-count'));
    await page.waitForFunction((n) => Number(document.querySelector('[data-event-count]')?.dataset.eventCount || 0) > n, first, { timeout: WAIT });
    check(await page.locator('table[data-table="events"] tbody tr').count() > 5, 'events listed');
  });

  // The ListStreams-denied path, for real: tests/it/ui.rs makes the fault proxy between
  // Tributary and kinesalite answer ListStreams with AccessDeniedException while this step runs.
  await step('ListStreams denied: a text field with a one-line explanation', async () => {
    await control('deny ListStreams');
    try {
      await page.goto(`${BASE}/#/jobs/new`);
      await page.getByLabel('Authorization', { exact: true }).selectOption({ label: 'delegated role (role)' });
      const text = page.locator('input#f-kinesis_stream');
      await text.waitFor();
      check(await page.locator('[data-list-error]').getAttribute('data-list-error') === 'list_streams_denied', 'the API answered list_streams_denied');
      check(await page.locator('#f-kinesis_stream-hint').innerText().then((t) => t.includes('may not list streams')), 'the explanation');
      check(await page.getByLabel('Kinesis stream', { exact: true }).evaluate((el) => el.tagName) === 'INPUT', 'the label names the text field');
      await text.fill(IMPORT_STREAM);
      await shot(page, 'list-streams-denied');
    } finally {
      await control('allow ListStreams');
    }
  });

  // Mapping, profiles, audiences and the export job.
  const mappingRoute = await apiStatus(page, '/api/streams/web_events/mapping');
  check(!mappingRoute.missing, 'GET /api/streams/{name}/mapping answers');
  {
    await step('the mapping editor shows errors at their line and column, then saves', async () => {
      await page.goto(`${BASE}/#/streams/web_events`);
      const editor = page.getByLabel('Mapping for web_events');
      await editor.waitFor();
      await editor.fill('SELECT\n    email(email) AS email KIND string\n    count(*) AS visits KIND int\nFROM web_events\nINTO user BY email\nALIAS web_events\n');
      await page.getByRole('button', { name: 'Save mapping' }).click();
      const err = page.locator('.lang-error');
      await err.waitFor();
      check(Number(await err.getAttribute('data-line')) === 3, `the error is on line 3, got ${await err.getAttribute('data-line')}`);
      await page.locator('section', { has: page.locator('#mapping-form') }).screenshot({ path: path.join(SHOTS, 'mapping-error.png') });
      await editor.fill([
        'SELECT',
        '    email(email)     AS email        KIND string,',
        '    user_id          AS user_id      KIND string,',
        '    count(*)         AS visit_count  KIND int,',
        '    sum(amount)      AS total_spent  KIND number,',
        '    set(page)        AS pages_seen   KIND []string',
        'FROM web_events',
        'INTO user BY email OR user_id',
        'ALIAS web_events',
        '',
      ].join('\n'));
      await page.getByRole('button', { name: 'Save mapping' }).click();
      await page.locator('[data-saved="mapping"]').waitFor();
    });

    await step('a stream\'s retention: a bad age is explained, a good one saved', async () => {
      const keep = page.getByLabel('Keep events for');
      await keep.fill('a month');
      await page.getByRole('button', { name: 'Save retention' }).click();
      const err = page.locator('#retention-result .error-box, #retention-result [role="alert"]');
      await err.first().waitFor();
      check((await keep.getAttribute('aria-invalid')) === 'true', 'the bad age is marked invalid');
      await keep.fill('400d');
      await page.getByRole('button', { name: 'Save retention' }).click();
      await page.locator('[data-saved="retention"]').waitFor();
      check((await page.locator('[data-retention]').getAttribute('data-retention')) === '400d', 'the saved age is shown');
      const stored = await apiStatus(page, '/api/streams/web_events/retention');
      check(!stored.missing, 'GET /api/streams/{name}/retention answers');
      await page.getByRole('button', { name: 'Keep for ever' }).click();
      await page.locator('[data-retention="forever"]').waitFor();
    });
  }

  const audiencesRoute = await apiStatus(page, '/api/audiences');
  check(!audiencesRoute.missing, 'GET /api/audiences answers');
  {
    await step('an audience with filter validation and a live member count', async () => {
      await page.goto(`${BASE}/#/audiences/new`);
      await page.getByLabel('Slug').fill('ui_shoppers');
      await page.getByLabel('Name').fill('Shoppers');
      const filter = page.getByLabel('Filter');
      // A comparison without its value (arguments on separate lines need no commas: FilterQL).
      await filter.fill('FILTER AND (\n    visit_count >= ,\n    EXISTS email\n    EXISTS user_id\n)\nFROM user\nALIAS ui_shoppers\n');
      await page.getByRole('button', { name: 'Create audience' }).click();
      await page.locator('.lang-error').waitFor();
      await filter.fill('FILTER AND (\n    visit_count >= 1,\n    EXISTS email,\n)\nFROM user\nALIAS ui_shoppers\n');
      await page.getByRole('button', { name: 'Create audience' }).click();
      await page.waitForURL(/#\/audiences\/ui_shoppers$/);
      await page.waitForFunction(() => Number(document.querySelector('[data-member-count]')?.dataset.memberCount || 0) >= 7, null, { timeout: 120_000 });
      await page.locator('table[data-table="members"] tbody tr a').first().waitFor();
      await shot(page, 'audience');
    });

    await step('a profile looked up by an identifier', async () => {
      await page.getByRole('link', { name: 'Profiles' }).click();
      await page.getByLabel('Identifier field').fill('email');
      await page.getByLabel('Value').fill('user3@example.com');
      await page.getByRole('button', { name: 'Find profile' }).click();
      const profile = page.locator('[data-profile]');
      await profile.waitFor();
      check((await profile.innerText()).includes('ui_shoppers'), 'the profile lists its audience');
      await shot(page, 'profile');
    });

    const exportAllowed = await page.evaluate(async ([token]) => {
      const res = await fetch('/api/jobs', { method: 'POST', headers: { Authorization: `Bearer ${token}`, 'Content-Type': 'application/json' }, body: '{}' });
      return res.status;
    }, [TOKEN]);
    check(exportAllowed === 400, 'POST /api/jobs answers');
    await step('an export job with backfill: the trigger count rises', async () => {
      await page.goto(`${BASE}/#/jobs/new`);
      await page.getByLabel('Export Audience Triggers').check();
      await page.getByLabel('Authorization', { exact: true }).selectOption({ label: 'local keys (keys)' });
      await page.getByLabel('Label', { exact: true }).fill('Shopper triggers');
      await page.getByLabel(/Shoppers \(ui_shoppers\)/).check();
      await page.getByLabel('Region', { exact: true }).selectOption('us-east-1');
      const kinesisSelect = page.locator('select#f-kinesis_stream');
      await kinesisSelect.locator(`option[value="${TRIGGER_STREAM}"]`).waitFor({ state: 'attached' });
      await kinesisSelect.selectOption(TRIGGER_STREAM);
      await page.getByLabel('User identifier field').selectOption('email');
      await page.locator('input[name="export_fields"][value="email"]').check();
      await page.locator('input[name="export_fields"][value="visit_count"]').check();
      await page.getByLabel(/Send existing audience members/).check();
      await checkLabels('export job form');
      await shot(page, 'new-export-job');
      await page.getByRole('button', { name: 'Create job' }).click();
      await page.waitForURL(/#\/jobs\/(?!new$)[^/]+$/);
      await page.locator('#backfill, #job-last-error').first().waitFor();
      if (await page.locator('#backfill').count() === 0) {
        const why = await page.locator('#job-last-error').innerText();
        check(false, `the export job failed: ${why}`);
      }
      // Some numeric status other than the import counters counts what was sent.
      await page.waitForFunction(() => {
        const done = document.querySelector('[data-backfill="done"]');
        const sent = Array.from(document.querySelectorAll('[data-stat]')).some((s) => s.dataset.stat !== 'dead_letters' && Number(s.querySelector('.value').textContent.replace(/\D/g, '')) > 0);
        return done && sent;
      }, null, { timeout: 120_000 });
      // A new person enters the audience: one more trigger, live.
      const sent = await statValue('events_out');
      check(sent >= 7, `the backfill sent every member, got ${sent}`);
      const collected = await page.evaluate(async ([token]) => (await fetch('/api/collect/web_events', {
        method: 'POST', headers: { Authorization: `Bearer ${token}`, 'Content-Type': 'application/json' },
        body: JSON.stringify({ email: 'newcomer@example.com', user_id: 'u-new', page: '/welcome', amount: 5 }),
      })).status, [TOKEN]);
      check(collected === 202, `collect answered ${collected}`);
      await page.waitForFunction((b) => Number(document.querySelector('[data-stat="events_out"] .value').textContent.replace(/\D/g, '')) > b, sent, { timeout: WAIT });
      check((await page.locator('[data-stat="events_out"] .name').innerText()) === 'Triggers sent', 'export counters are named for exports');
      await shot(page, 'export-job');
    });
  }

  await step('narrow screens: one column, navigation on top, nothing wider than the screen', async () => {
    await page.goto(`${BASE}/#/jobs`);
    await page.locator('table[data-table="jobs"] tr', { hasText: 'Web clicks' }).waitFor();
    await shot(page, 'jobs');
    await page.setViewportSize({ width: 390, height: 844 });
    await page.goto(`${BASE}/#/jobs/${encodeURIComponent(jobId)}`);
    await page.locator('[data-stat="events_out"]').waitFor();
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    check(overflow <= 1, `no horizontal page scroll, overflow ${overflow}px`);
    const navBox = await page.getByRole('navigation', { name: 'Main' }).boundingBox();
    const mainBox = await page.locator('main').boundingBox();
    check(navBox.y + navBox.height <= mainBox.y + 1, 'the navigation sits above the content');
    await shot(page, 'job-detail-narrow');
    await page.setViewportSize({ width: 1280, height: 900 });
  });

  await context.close();
  console.log('UI FLOW OK');
  finished = true;
  stdinReader.close();
  process.exit(0);
} catch (e) {
  console.log(`not ok - ${current}: ${e.message}`);
  const failed = path.join(os.tmpdir(), `tributary-ui-failed-${Date.now()}.png`);
  try { await page.screenshot({ path: failed, fullPage: true }); console.log(`screenshot: ${failed}`); } catch (_) { /* best effort */ }
  console.log(`page: ${page.url()}`);
  await context.close().catch(() => {});
  process.exit(1);
}
