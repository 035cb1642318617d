// Tributary web UI. Plain JavaScript, no framework, no build step: see src/api/ui/mod.rs.
//
// Everything on screen comes from the JSON API under /api (the same routes the CLI uses), sent
// with the token the user typed once (kept in sessionStorage). Data is always inserted as text
// (the `h` helper below never parses HTML). Screens poll every 2 s while they are shown.
'use strict';

(function () {
  // ---------------------------------------------------------------------------------------
  // Small helpers
  // ---------------------------------------------------------------------------------------

  const TOKEN_KEY = 'tributary.token';
  const POLL_MS = 2000;
  const LAG_WINDOW_MS = 10 * 60 * 1000;
  const REGIONS = [
    'us-east-1', 'us-east-2', 'us-west-1', 'us-west-2', 'af-south-1', 'ap-east-1',
    'ap-south-1', 'ap-south-2', 'ap-southeast-1', 'ap-southeast-2', 'ap-southeast-3',
    'ap-southeast-4', 'ap-northeast-1', 'ap-northeast-2', 'ap-northeast-3', 'ca-central-1',
    'ca-west-1', 'eu-central-1', 'eu-central-2', 'eu-west-1', 'eu-west-2', 'eu-west-3',
    'eu-south-1', 'eu-south-2', 'eu-north-1', 'il-central-1', 'me-south-1', 'me-central-1',
    'sa-east-1', 'us-gov-east-1', 'us-gov-west-1', 'cn-north-1', 'cn-northwest-1',
  ];

  /** Builds an element. attrs: class, for, text, on<Event>, boolean and string attributes. */
  function h(tag, attrs, ...children) {
    const el = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === undefined || v === null || v === false) continue;
      if (k === 'class') el.className = v;
      else if (k === 'text') el.textContent = v;
      else if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2).toLowerCase(), v);
      else if (k === 'value') el.value = v;
      else if (k === 'checked' || k === 'selected' || k === 'disabled' || k === 'multiple' || k === 'required') el[k] = !!v;
      else el.setAttribute(k, v === true ? '' : String(v));
    }
    append(el, children);
    return el;
  }
  function append(el, children) {
    for (const c of children.flat(Infinity)) {
      if (c === null || c === undefined || c === false) continue;
      el.append(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return el;
  }
  function clear(el) { while (el.firstChild) el.removeChild(el.firstChild); return el; }
  function replace(el, ...children) { if (el.dataset) delete el.dataset.sig; return append(clear(el), children); }
  /** `replace` for polled content: nothing happens when the data (`sig`) is unchanged, and
   *  keyboard focus inside the slot stays on the equivalent element after a redraw. */
  function refresh(slot, sig, ...children) {
    const key = typeof sig === 'string' ? sig : JSON.stringify(sig);
    if (slot.dataset.sig === key) return;
    const active = document.activeElement;
    let find = null;
    if (active && active !== slot && slot.contains(active)) {
      if (active.id) find = `#${CSS.escape(active.id)}`;
      else if (active.getAttribute('href')) find = `[href="${CSS.escape(active.getAttribute('href'))}"]`;
      else find = { tag: active.tagName, text: active.textContent };
    }
    replace(slot, children);
    slot.dataset.sig = key;
    if (find) {
      const el = typeof find === 'string' ? slot.querySelector(find)
        : Array.from(slot.querySelectorAll(find.tag)).find((e) => e.textContent === find.text);
      if (el) el.focus();
    }
  }
  const $ = (sel, root) => (root || document).querySelector(sel);
  const $$ = (sel, root) => Array.from((root || document).querySelectorAll(sel));

  let uid = 0;
  const nextId = (p) => `${p}-${++uid}`;

  function fmtBytes(n) {
    if (typeof n !== 'number') return '—';
    const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
    let i = 0;
    while (n >= 1024 && i < units.length - 1) { n /= 1024; i += 1; }
    return `${i ? n.toFixed(1) : n} ${units[i]}`;
  }
  function fmtNum(n) { return typeof n === 'number' ? n.toLocaleString('en-US') : (n ?? '—'); }
  function fmtTime(t) {
    if (!t) return '—';
    const d = new Date(t);
    return isNaN(d) ? String(t) : d.toLocaleString();
  }
  function humanize(key) {
    const s = key.replace(/_/g, ' ');
    return s.charAt(0).toUpperCase() + s.slice(1);
  }
  function say(text) { const live = $('#live'); live.textContent = ''; setTimeout(() => { live.textContent = text; }, 30); }

  /** The first array in an API answer: `[…]`, `{key: […]}` or any `{…: […]}`. */
  function listOf(data, key) {
    if (Array.isArray(data)) return data;
    if (data && Array.isArray(data[key])) return data[key];
    if (data && typeof data === 'object') for (const v of Object.values(data)) if (Array.isArray(v)) return v;
    return [];
  }
  function firstKey(obj, keys) {
    for (const k of keys) if (obj && obj[k] !== undefined && obj[k] !== null) return obj[k];
    return undefined;
  }

  // ---------------------------------------------------------------------------------------
  // The API
  // ---------------------------------------------------------------------------------------

  function token() { return sessionStorage.getItem(TOKEN_KEY); }

  /** Calls the API; resolves to {ok, status, data} and never throws. Errors keep the API's
   *  `{error, message}`; a network failure becomes status 0. A 401 asks for the token again. */
  async function api(method, path, body, opts) {
    const headers = { Authorization: `Bearer ${token() || ''}` };
    let payload;
    if (body !== undefined) {
      if (opts && opts.text) { headers['Content-Type'] = 'text/plain; charset=utf-8'; payload = body; }
      else { headers['Content-Type'] = 'application/json'; payload = JSON.stringify(body); }
    }
    let resp;
    try {
      resp = await fetch(path, { method, headers, body: payload, cache: 'no-store' });
    } catch (e) {
      return { ok: false, status: 0, data: { error: 'unreachable', message: `Could not reach Tributary (${e.message}). Is the server running?` } };
    }
    const type = resp.headers.get('content-type') || '';
    const raw = await resp.text();
    let data = raw;
    if (type.includes('json') || /^\s*[{[]/.test(raw)) { try { data = JSON.parse(raw); } catch (_) { /* keep text */ } }
    if (!resp.ok && (typeof data !== 'object' || data === null)) {
      data = { error: `http_${resp.status}`, message: raw || resp.statusText };
    }
    if (resp.status === 401 && !(opts && opts.noAuthRedirect)) {
      sessionStorage.removeItem(TOKEN_KEY);
      showTokenForm('The server refused the API token; enter it again.');
    }
    return { ok: resp.ok, status: resp.status, data };
  }
  const q = (params) => new URLSearchParams(Object.entries(params).filter(([, v]) => v !== undefined && v !== null && v !== '')).toString();

  /** An error box for a failed call: the API's code and message. */
  function errorBox(res, context) {
    const d = res.data || {};
    const missing = res.status === 404 && d.error === 'not_found' && /no such API route/.test(d.message || '');
    return h('div', { class: 'error-box', role: 'alert' },
      context ? h('strong', {}, context, ': ') : null,
      missing ? 'this server does not offer this yet. ' : null,
      d.message || 'request failed', ' ',
      h('code', { class: 'small' }, `(${res.status || 'network'} ${d.error || ''})`));
  }

  // ---------------------------------------------------------------------------------------
  // Forms: labelled fields with a slot for the API's message about them
  // ---------------------------------------------------------------------------------------

  /** A labelled control. `field` is the name the API uses in its messages (`config.region`). */
  function field(label, control, opts) {
    opts = opts || {};
    const id = control.id || (control.id = nextId('f'));
    const errId = `${id}-error`;
    const hintId = opts.hint ? `${id}-hint` : null;
    control.setAttribute('aria-describedby', [hintId, errId].filter(Boolean).join(' '));
    if (opts.field) control.dataset.field = opts.field;
    const wrap = h('div', { class: 'field', 'data-field-wrap': opts.field || '' },
      h('label', { for: id }, label, opts.optional ? h('span', { class: 'muted' }, ' (optional)') : null),
      opts.hint ? h('div', { class: 'hint', id: hintId }, opts.hint) : null,
      control,
      h('div', { class: 'field-error', id: errId, 'data-error-for': opts.field || id }));
    return wrap;
  }
  /** A group of checkboxes or radios in a fieldset, with a legend and an error slot. */
  function group(legend, items, opts) {
    opts = opts || {};
    const errId = nextId('err');
    const fs = h('fieldset', { 'data-field': opts.field || '', 'aria-describedby': errId },
      h('legend', {}, legend, opts.optional ? h('span', { class: 'muted' }, ' (optional)') : null),
      opts.hint ? h('div', { class: 'hint' }, opts.hint) : null,
      h('div', { class: opts.list ? 'checklist' : 'choices' }, items),
      h('div', { class: 'field-error', id: errId, 'data-error-for': opts.field || '' }));
    return fs;
  }
  function choice(type, name, value, label, checked, extra) {
    const id = nextId('c');
    return h('label', { class: 'choice', for: id },
      h('input', Object.assign({ type, name, value, id, checked }, extra || {})), label);
  }
  function input(attrs) { return h('input', Object.assign({ type: 'text', autocomplete: 'off', spellcheck: 'false' }, attrs)); }
  function select(options, attrs) {
    return h('select', attrs || {}, options.map((o) => (typeof o === 'string' ? h('option', { value: o }, o) : h('option', { value: o.value, selected: o.selected, disabled: o.disabled }, o.label))));
  }

  function clearErrors(form) {
    $$('[data-error-for]', form).forEach((e) => { e.textContent = ''; });
    $$('[aria-invalid]', form).forEach((e) => e.removeAttribute('aria-invalid'));
    $$('.form-error', form).forEach((e) => e.remove());
  }

  /** Puts the API's error next to the field its message names (`config.region: …`), or at the
   *  top of the form when no field matches. Returns the element that got it. */
  function showError(form, res) {
    clearErrors(form);
    const d = res.data || {};
    const msg = d.message || 'request failed';
    const m = /^([A-Za-z_][\w.[\]]*): ([\s\S]*)$/.exec(msg);
    if (m) {
      let name = m[1].replace(/\[\d+\]/g, '');
      while (name) {
        const slot = $(`[data-error-for="${CSS.escape(name)}"]`, form);
        if (slot) {
          slot.textContent = m[2];
          const ctl = $(`[data-field="${CSS.escape(name)}"]`, form);
          if (ctl) { ctl.setAttribute('aria-invalid', 'true'); (ctl.matches('fieldset') ? $('input,select,textarea', ctl) : ctl)?.focus(); }
          say(`Error: ${msg}`);
          return slot;
        }
        // config.kinesis_stream → kinesis_stream → …: the closest field the form has.
        name = name.includes('.') ? name.slice(name.indexOf('.') + 1) : '';
      }
    }
    const box = errorBox(res);
    box.classList.add('form-error');
    form.prepend(box);
    box.setAttribute('tabindex', '-1');
    box.focus();
    return box;
  }

  /** Shows a language error (`line 3, column 12: expected …`) under an editor with the line and
   *  a caret, and a button that puts the cursor there. */
  function showLangError(slot, textarea, res) {
    const d = res.data || {};
    const msg = d.message || '';
    const m = /line (\d+), column (\d+)/i.exec(msg);
    const line = Number(firstKey(d, ['line']) || (m && m[1]) || 0);
    const col = Number(firstKey(d, ['column']) || (m && m[2]) || 0);
    clear(slot);
    textarea.setAttribute('aria-invalid', 'true');
    if (!line) { slot.append(errorBox(res)); return; }
    const text = textarea.value.split('\n')[line - 1] ?? '';
    const goTo = () => {
      const lines = textarea.value.split('\n');
      let pos = 0;
      for (let i = 0; i < line - 1 && i < lines.length; i++) pos += lines[i].length + 1;
      pos += Math.max(0, col - 1);
      textarea.focus();
      textarea.setSelectionRange(pos, Math.min(pos + 1, textarea.value.length));
    };
    slot.append(h('div', { class: 'error-box lang-error', role: 'alert', 'data-line': line, 'data-column': col },
      h('strong', {}, `Line ${line}, column ${col}: `), msg.replace(/^.*?line \d+, column \d+:\s*/i, ''),
      h('pre', { 'aria-hidden': 'true' }, `${String(line).padStart(4)} | ${text}\n       ${' '.repeat(Math.max(0, col - 1))}^`),
      h('button', { type: 'button', class: 'secondary small', onClick: goTo }, `Go to line ${line}, column ${col}`)));
    say(`Error at line ${line}, column ${col}`);
  }

  function copyButton(getText, label) {
    const b = h('button', { type: 'button', class: 'secondary small' }, label || 'Copy');
    b.addEventListener('click', async () => {
      try { await navigator.clipboard.writeText(getText()); b.textContent = 'Copied'; }
      catch (_) { b.textContent = 'Select and copy'; }
      setTimeout(() => { b.textContent = label || 'Copy'; }, 1500);
    });
    return b;
  }

  function table(columns, rows, opts) {
    opts = opts || {};
    return h('div', { class: 'table-wrap' }, h('table', { 'data-table': opts.name || '' },
      opts.caption ? h('caption', { class: 'visually-hidden' }, opts.caption) : null,
      h('thead', {}, h('tr', {}, columns.map((c) => h('th', { scope: 'col', class: c.num ? 'num' : '' }, c.label)))),
      h('tbody', {}, rows.length ? rows.map((r) => {
        const tr = h('tr', { class: opts.href ? 'clickable' : '' }, columns.map((c) => h('td', { class: c.num ? 'num' : '' }, c.cell(r))));
        if (opts.href) tr.addEventListener('click', (e) => { if (!e.target.closest('a,button')) location.hash = opts.href(r); });
        return tr;
      }) : h('tr', {}, h('td', { colspan: columns.length, class: 'muted' }, opts.empty || 'Nothing here yet.')))));
  }

  function badge(state) { return h('span', { class: `badge ${state || ''}`, 'data-state': state || '' }, state || 'unknown'); }

  // ---------------------------------------------------------------------------------------
  // Routing and polling
  // ---------------------------------------------------------------------------------------

  let generation = 0; // bumped on every navigation: stale pollers and fetches stop
  const main = () => $('#main');

  /** Runs `fn` now and every 2 s until the screen changes; never two at once. */
  function poll(fn) {
    const gen = generation;
    const tick = async () => {
      if (gen !== generation) return;
      try { await fn(); } catch (e) { console.error(e); }
      if (gen === generation) setTimeout(tick, POLL_MS);
    };
    tick();
  }
  const current = (gen) => gen === generation;

  const routes = [
    [/^\/authorizations$/, authorizationsScreen, 'authorizations'],
    [/^\/jobs$/, jobsScreen, 'jobs'],
    [/^\/jobs\/new$/, newJobScreen, 'jobs'],
    [/^\/jobs\/([^/]+)$/, jobScreen, 'jobs'],
    [/^\/streams$/, streamsScreen, 'streams'],
    [/^\/streams\/([^/]+)$/, streamScreen, 'streams'],
    [/^\/profiles$/, profilesScreen, 'profiles'],
    [/^\/profiles\/([^/]+)$/, profileScreen, 'profiles'],
    [/^\/audiences$/, audiencesScreen, 'audiences'],
    [/^\/audiences\/new$/, audienceScreen, 'audiences'],
    [/^\/audiences\/([^/]+)$/, audienceScreen, 'audiences'],
    [/^\/cluster$/, clusterScreen, 'cluster'],
  ];

  function route() {
    generation++;
    if (!token()) { showTokenForm(); return; }
    $('#nav').hidden = false;
    $('#sign-out').hidden = false;
    const path = (location.hash.replace(/^#/, '') || '/jobs').split('?')[0];
    for (const [re, screen, nav] of routes) {
      const m = re.exec(path);
      if (m) {
        $$('#nav a').forEach((a) => (a.dataset.nav === nav ? a.setAttribute('aria-current', 'page') : a.removeAttribute('aria-current')));
        clear(main());
        screen(...m.slice(1).map(decodeURIComponent));
        const h1 = $('h1', main());
        document.title = `${h1 ? h1.textContent : 'Tributary'} · Tributary`;
        return;
      }
    }
    location.hash = '#/jobs';
  }

  function pageHead(title, crumbs, actions) {
    return h('div', { class: 'page-head' },
      h('div', {}, crumbs ? h('div', { class: 'crumbs' }, crumbs) : null, h('h1', { tabindex: '-1' }, title)),
      actions ? h('div', { class: 'actions' }, actions) : null);
  }

  function showTokenForm(message) {
    generation++;
    $('#nav').hidden = true;
    $('#sign-out').hidden = true;
    const tokenInput = input({ type: 'password', name: 'token', id: 'token', autocomplete: 'current-password', required: true });
    const form = h('form', { class: 'panel stack token-box', id: 'token-form' },
      h('h1', {}, 'Sign in to Tributary'),
      h('p', { class: 'muted' }, 'Enter the API token: the ', h('code', {}, 'TRIBUTARY_API_TOKEN'), ' setting, or the ', h('code', {}, 'api-token'),
        ' file in the data directory (printed when the server first started). It is kept only in this browser tab, until you close it or sign out.'),
      message ? h('div', { class: 'error-box', role: 'alert' }, message) : null,
      field('API token', tokenInput),
      h('div', { class: 'form-actions' }, h('button', { type: 'submit' }, 'Continue')));
    form.addEventListener('submit', async (e) => {
      e.preventDefault();
      clearErrors(form);
      sessionStorage.setItem(TOKEN_KEY, tokenInput.value.trim());
      const res = await api('GET', '/api/authorizations', undefined, { noAuthRedirect: true });
      if (res.status === 401) {
        sessionStorage.removeItem(TOKEN_KEY);
        $('[data-error-for="token"]', form).textContent = 'The server refused this token.';
        tokenInput.setAttribute('aria-invalid', 'true');
        tokenInput.focus();
        return;
      }
      if (!location.hash || location.hash === '#/') location.hash = '#/jobs'; else route();
    });
    $('[data-error-for]', form).dataset.errorFor = 'token';
    replace(main(), form);
    tokenInput.focus();
  }

  // ---------------------------------------------------------------------------------------
  // Authorizations
  // ---------------------------------------------------------------------------------------

  function authorizationsScreen() {
    const listSlot = h('div', {}, h('p', { class: 'muted' }, 'Loading…'));
    const gen = generation;
    append(main(), [
      pageHead('Authorizations', null, h('a', { class: 'button', href: '#/jobs/new' }, 'New job')),
      h('p', { class: 'muted' }, 'AWS credentials that jobs use. Secrets are encrypted at rest and never shown again after saving.'),
      h('section', { class: 'panel', 'aria-labelledby': 'auth-list-h' }, h('h2', { id: 'auth-list-h' }, 'Saved authorizations'), listSlot),
      authorizationForm(() => load()),
    ]);
    async function load() {
      const res = await api('GET', '/api/authorizations');
      if (!current(gen)) return;
      if (!res.ok) { replace(listSlot, errorBox(res)); return; }
      const auths = listOf(res.data, 'authorizations');
      replace(listSlot, table([
        { label: 'Label', cell: (a) => h('strong', {}, a.label) },
        { label: 'Method', cell: (a) => (a.method === 'aws_role' ? 'Delegated IAM role' : 'AWS keys') },
        { label: 'Identity', cell: (a) => h('span', { class: 'mono' }, a.method === 'aws_role' ? a.role_arn : `${a.access_key_id} / ${a.secret_access_key}`) },
        { label: 'Description', cell: (a) => a.description || '' },
        { label: 'Created', cell: (a) => fmtTime(a.created_at) },
        { label: 'Actions', cell: (a) => authActions(a, load) },
      ], auths, { name: 'authorizations', empty: 'No authorizations yet: add one below.' }));
    }
    load();
  }

  function authActions(a, reload) {
    const result = h('div', { class: 'small', 'aria-live': 'polite' });
    const verify = h('button', { type: 'button', class: 'secondary small', 'data-action': 'verify' }, 'Verify');
    verify.addEventListener('click', async () => {
      verify.disabled = true;
      replace(result, h('span', { class: 'muted' }, 'Asking AWS STS who these credentials are…'));
      const res = await api('POST', `/api/authorizations/${encodeURIComponent(a.id)}/verify`);
      verify.disabled = false;
      replace(result, res.ok
        ? h('div', { class: 'ok-box', 'data-verified': 'true' }, h('strong', {}, 'Verified. '), `Account ${res.data.account}, ${res.data.arn}`)
        : errorBox(res, 'Verification failed'));
    });
    const del = h('button', { type: 'button', class: 'danger small' }, 'Delete');
    del.addEventListener('click', async () => {
      if (!confirm(`Delete the authorization "${a.label}"? Jobs cannot use it afterwards.`)) return;
      const res = await api('DELETE', `/api/authorizations/${encodeURIComponent(a.id)}`);
      if (res.ok) reload(); else replace(result, errorBox(res, 'Not deleted'));
    });
    return h('div', {}, h('div', { class: 'inline' }, verify, del), result);
  }

  function randomExternalId() {
    const bytes = new Uint8Array(16);
    crypto.getRandomValues(bytes);
    return `tributary-${Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('')}`;
  }

  function authorizationForm(onSaved) {
    const label = input({ name: 'label', id: 'auth-label', required: true });
    const description = input({ name: 'description', id: 'auth-description' });
    const keyId = input({ name: 'access_key_id', id: 'auth-access-key', placeholder: 'AKIA…' });
    const secret = input({ type: 'password', name: 'secret_access_key', id: 'auth-secret', autocomplete: 'new-password' });
    const roleArn = input({ name: 'role_arn', id: 'auth-role-arn', placeholder: 'arn:aws:iam::123456789012:role/Tributary' });
    const externalId = input({ name: 'external_id', id: 'auth-external-id', value: randomExternalId() });
    const keysPart = h('div', { class: 'stack', 'data-method': 'aws_keys' },
      field('Access key ID', keyId, { field: 'access_key_id' }),
      field('Secret access key', secret, { field: 'secret_access_key', hint: 'Stored encrypted; it is never shown again, not even to you.' }));
    const policySlot = h('div', { id: 'auth-policies' });
    const polRegion = select(REGIONS, { id: 'pol-region' });
    const polStream = input({ id: 'pol-stream', placeholder: 'clickstream' });
    const polDirection = select([{ value: 'import', label: 'Import (read)' }, { value: 'export', label: 'Export (write)' }, { value: 'both', label: 'Both, and list streams' }], { id: 'pol-direction' });
    const rolePart = h('div', { class: 'stack', 'data-method': 'aws_role', hidden: true },
      field('Role ARN', roleArn, { field: 'role_arn', hint: 'The role in your account that Tributary assumes.' }),
      field('External ID', externalId, { field: 'external_id', hint: 'Generated for you; the trust policy below requires it, so only Tributary can assume the role.' }),
      h('div', { class: 'panel' },
        h('h3', {}, 'Policies to paste into IAM'),
        h('p', { class: 'hint' }, 'The trust policy lets Tributary assume the role with this external ID; the permission policy grants only the Kinesis actions the job needs.'),
        h('div', { class: 'grid-2' },
          field('Region', polRegion),
          field('Kinesis stream', polStream),
          field('Direction', polDirection)),
        h('div', { class: 'form-actions' }, h('button', { type: 'button', class: 'secondary', id: 'show-policies', onClick: showPolicies }, 'Show policies')),
        policySlot));
    const methodGroup = group('Method', [
      choice('radio', 'method', 'aws_keys', 'AWS keys', true),
      choice('radio', 'method', 'aws_role', 'Delegated IAM role (recommended)', false),
    ], { field: 'method' });
    const result = h('div', { 'aria-live': 'polite' });
    const form = h('form', { class: 'panel stack', id: 'auth-form', novalidate: true },
      h('h2', {}, 'New authorization'),
      group('Provider', [choice('radio', 'provider', 'aws', 'Amazon Web Services', true)]),
      methodGroup,
      field('Label', label, { field: 'label', hint: 'A unique name, e.g. "production".' }),
      field('Description', description, { field: 'description', optional: true }),
      keysPart, rolePart,
      h('div', { class: 'form-actions' }, h('button', { type: 'submit' }, 'Save authorization')),
      result);
    const method = () => $('input[name=method]:checked', form).value;
    $$('input[name=method]', form).forEach((r) => r.addEventListener('change', () => {
      keysPart.hidden = method() !== 'aws_keys';
      rolePart.hidden = method() !== 'aws_role';
      clearErrors(form);
    }));

    async function showPolicies() {
      const account = (/^arn:[\w-]+:iam::(\d{12}):/.exec(roleArn.value.trim()) || [])[1];
      clear(policySlot);
      if (!account) {
        policySlot.append(h('div', { class: 'error-box', role: 'alert' }, 'Enter the role ARN first: the policies name its account.'));
        return;
      }
      policySlot.append(h('p', { class: 'muted' }, 'Asking Tributary for the policies…'));
      const res = await api('GET', `/api/aws/policies?${q({ region: polRegion.value, account, stream: polStream.value.trim() || 'YOUR_STREAM', direction: polDirection.value, external_id: externalId.value.trim() })}`);
      clear(policySlot);
      if (!res.ok) { policySlot.append(errorBox(res, 'Policies unavailable')); return; }
      const trust = res.data.trust_policy ? JSON.stringify(res.data.trust_policy, null, 2) : null;
      const perm = JSON.stringify(res.data.permission_policy, null, 2);
      append(policySlot, [
        trust ? [h('div', { class: 'inline' }, h('h3', {}, 'Trust policy'), copyButton(() => trust, 'Copy trust policy')),
          h('pre', { 'data-policy': 'trust', tabindex: '0', 'aria-label': 'Trust policy JSON' }, trust)] : null,
        h('div', { class: 'inline' }, h('h3', {}, 'Permission policy'), copyButton(() => perm, 'Copy permission policy')),
        h('pre', { 'data-policy': 'permission', tabindex: '0', 'aria-label': 'Permission policy JSON' }, perm),
      ]);
    }

    form.addEventListener('submit', async (e) => {
      e.preventDefault();
      clear(result);
      const body = { label: label.value, description: description.value, method: method() };
      if (body.method === 'aws_keys') { body.access_key_id = keyId.value; body.secret_access_key = secret.value; }
      else { body.role_arn = roleArn.value; body.external_id = externalId.value; }
      const res = await api('POST', '/api/authorizations', body);
      if (!res.ok) { showError(form, res); return; }
      clearErrors(form);
      secret.value = '';
      keyId.value = '';
      label.value = '';
      description.value = '';
      externalId.value = randomExternalId();
      replace(result, h('div', { class: 'ok-box', role: 'status', 'data-saved': res.data.id },
        h('strong', {}, `Saved "${res.data.label}". `),
        res.data.method === 'aws_keys' ? 'The secret key is stored encrypted and will not be shown again.' : `External ID: ${res.data.external_id}.`));
      onSaved(res.data);
    });
    return form;
  }

  // ---------------------------------------------------------------------------------------
  // Jobs
  // ---------------------------------------------------------------------------------------

  /** What the status counters mean for each job type. */
  const STAT_NAMES = {
    kinesis_import: { records_in: 'Records in', events_out: 'Events out', dead_letters: 'Dead letters' },
    kinesis_export: { records_in: 'Changes read', events_out: 'Triggers sent', dead_letters: 'Dead letters' },
  };
  const JOB_TYPES = { kinesis_import: 'Import Activity Data (Kinesis)', kinesis_export: 'Export Audience Triggers' };

  function jobsScreen() {
    const slot = h('div', {}, h('p', { class: 'muted' }, 'Loading…'));
    const gen = generation;
    append(main(), [
      pageHead('Jobs', null, h('a', { class: 'button', href: '#/jobs/new' }, 'New job')),
      h('section', { class: 'panel' }, h('h2', {}, h('span', { class: 'live-dot', 'aria-hidden': 'true' }), 'All jobs'), slot),
    ]);
    poll(async () => {
      const res = await api('GET', '/api/jobs');
      if (!current(gen)) return;
      if (!res.ok) { replace(slot, errorBox(res)); return; }
      const jobs = listOf(res.data, 'jobs');
      refresh(slot, jobs, table([
        { label: 'Label', cell: (j) => h('a', { href: `#/jobs/${encodeURIComponent(j.id)}` }, j.label) },
        { label: 'Type', cell: (j) => JOB_TYPES[j.type] || j.type },
        { label: 'State', cell: (j) => badge(j.state) },
        { label: 'Records in', num: true, cell: (j) => fmtNum(j.status && j.status.records_in) },
        { label: 'Out', num: true, cell: (j) => fmtNum(j.status && firstKey(j.status, ['events_out', 'records_out', 'records_sent', 'sent'])) },
        { label: 'Dead letters', num: true, cell: (j) => fmtNum(j.status && j.status.dead_letters) },
        { label: 'Updated', cell: (j) => fmtTime(j.updated_at) },
      ], jobs, { name: 'jobs', href: (j) => `#/jobs/${encodeURIComponent(j.id)}`, empty: 'No jobs yet. Create one with "New job".' }));
    });
  }

  /** The Kinesis stream control: a drop-down filled by ListStreams, or a text field when the
   *  credentials may not list streams (403 list_streams_denied) or listing failed. */
  function kinesisStreamControl(params) {
    const wrap = h('div', { class: 'field', 'data-field-wrap': 'config.kinesis_stream' });
    const errSlot = h('div', { class: 'field-error', id: 'f-kinesis_stream-error', 'data-error-for': 'config.kinesis_stream' });
    let mode = 'select';
    let streams = [];
    let note = null;
    let value = '';
    let seq = 0;
    const ctl = () => $('#f-kinesis_stream', wrap);
    let shownLoading = false;
    function render(loading) {
      const prev = ctl();
      // The user's choice survives reloads (the "Loading…" placeholder has no value of its own).
      if (prev && !shownLoading) value = prev.value;
      shownLoading = !!loading && mode === 'select';
      const label = h('label', { for: 'f-kinesis_stream' }, 'Kinesis stream');
      let control;
      if (mode === 'text') {
        control = input({ id: 'f-kinesis_stream', name: 'kinesis_stream', value, placeholder: 'clickstream', 'aria-describedby': 'f-kinesis_stream-hint f-kinesis_stream-error' });
      } else {
        const opts = loading ? [{ value: '', label: 'Loading streams…' }]
          : streams.length ? [{ value: '', label: 'Choose a stream…' }].concat(streams.map((s) => ({ value: s, label: s, selected: s === value })))
            : [{ value: '', label: params() ? 'No streams in this region' : 'Choose an authorization and region first' }];
        control = select(opts, { id: 'f-kinesis_stream', name: 'kinesis_stream', disabled: loading || !streams.length, 'aria-describedby': 'f-kinesis_stream-hint f-kinesis_stream-error' });
      }
      control.dataset.field = 'config.kinesis_stream';
      const toggle = h('button', { type: 'button', class: 'link-button small', onClick: () => { mode = mode === 'text' ? 'select' : 'text'; note = null; render(false); ctl().focus(); } },
        mode === 'text' ? 'Choose from the list instead' : 'Type a name instead');
      const refresh = h('button', { type: 'button', class: 'secondary small', onClick: () => load() }, 'Refresh list');
      replace(wrap, label,
        h('div', { class: 'hint', id: 'f-kinesis_stream-hint', 'data-hint': mode }, note || (mode === 'text' ? 'Type the name of the Kinesis stream.' : 'Streams found with ListStreams in the chosen region.')),
        h('div', { class: 'inline' }, control, mode === 'select' ? refresh : null),
        toggle, errSlot);
    }
    async function load() {
      const p = params();
      const mine = ++seq;
      if (!p) { streams = []; render(false); return; }
      if (mode === 'select') render(true);
      const res = await api('GET', `/api/aws/streams?${q(p)}`);
      if (mine !== seq) return;
      errSlot.textContent = '';
      if (res.ok) {
        streams = listOf(res.data, 'streams');
        if (note) { note = null; }
        if (mode !== 'text' || !value) mode = 'select';
        render(false);
      } else {
        streams = [];
        mode = 'text';
        note = res.data.error === 'list_streams_denied'
          ? `These credentials may not list streams (kinesis:ListStreams): type the stream name.`
          : `The stream list is unavailable (${res.data.message || res.data.error}); type the stream name.`;
        render(false);
        wrap.dataset.listError = res.data.error || '';
      }
    }
    render(false);
    return { el: wrap, load, value: () => (ctl() ? ctl().value.trim() : '') };
  }

  function newJobScreen() {
    const gen = generation;
    const form = h('form', { class: 'stack', id: 'job-form', novalidate: true });
    append(main(), [pageHead('New job', h('a', { href: '#/jobs' }, '← Jobs')), form]);

    const typeCards = h('fieldset', { class: '', 'data-field': 'type' },
      h('legend', { class: 'label' }, 'What should this job do?'),
      h('div', { class: 'cards' },
        h('label', { class: 'card-choice' }, h('input', { type: 'radio', name: 'type', value: 'kinesis_import', checked: true }),
          h('span', {}, h('strong', {}, 'Import Activity Data (Kinesis)'), h('span', { class: 'hint' }, 'Read every shard of a Kinesis stream into a Tributary event stream, in real time.'))),
        h('label', { class: 'card-choice' }, h('input', { type: 'radio', name: 'type', value: 'kinesis_export' }),
          h('span', {}, h('strong', {}, 'Export Audience Triggers'), h('span', { class: 'hint' }, 'Publish every audience entry and exit to a Kinesis stream.')))),
      h('div', { class: 'field-error', 'data-error-for': 'type' }));

    const auth = select([{ value: '', label: 'Loading…' }], { id: 'f-authorization', name: 'authorization' });
    const label = input({ id: 'f-label', name: 'label' });
    const description = h('textarea', { id: 'f-description', name: 'description', rows: 2, class: 'plain' });
    const region = select(REGIONS.map((r) => ({ value: r, label: r, selected: r === 'us-east-1' })), { id: 'f-region', name: 'region' });
    const roleArn = input({ id: 'f-role_arn', name: 'role_arn', placeholder: 'arn:aws:iam::123456789012:role/TributaryKinesis' });
    const stream = input({ id: 'f-stream', name: 'stream', list: 'known-streams', placeholder: 'web_events' });
    const knownStreams = h('datalist', { id: 'known-streams' });
    const params = () => (auth.value ? { authorization: auth.value, region: region.value, role_arn: roleArn.value.trim() } : null);
    const kinesis = kinesisStreamControl(params);
    const authNote = h('div', {});

    // Import: start position.
    const atTime = h('input', { type: 'datetime-local', id: 'f-at', step: 1, disabled: true });
    const startGroup = group('Start position', [
      choice('radio', 'start', 'trim_horizon', 'Oldest record (trim horizon)', true),
      choice('radio', 'start', 'latest', 'New records only (latest)', false),
      choice('radio', 'start', 'at_timestamp', 'From a time:', false),
      h('label', { for: 'f-at', class: 'visually-hidden' }, 'Start time (your local time)'), atTime,
    ], { field: 'config.start_position', hint: 'Used only for shards without a checkpoint.' });
    $$('input[name=start]', startGroup).forEach((r) => r.addEventListener('change', () => { atTime.disabled = r.value !== 'at_timestamp' || !r.checked; }));

    // Export: audiences, identifier, fields.
    const audienceSlot = h('div', {}, h('span', { class: 'muted' }, 'Loading audiences…'));
    const audiencesGroup = h('fieldset', { 'data-field': 'config.audiences' },
      h('legend', { class: 'label' }, 'Audiences'), h('div', { class: 'hint' }, 'Entries and exits of these audiences are sent.'),
      audienceSlot, h('div', { class: 'field-error', 'data-error-for': 'config.audiences' }));
    const idField = select([{ value: '', label: 'Profile id (default)' }], { id: 'f-user_identifier_field', name: 'user_identifier_field' });
    const fieldsSlot = h('div', {}, h('span', { class: 'muted' }, 'Loading the profile schema…'));
    const exportFieldsGroup = h('fieldset', { 'data-field': 'config.export_fields' },
      h('legend', { class: 'label' }, 'Fields to send', h('span', { class: 'muted' }, ' (none chosen = all fields)')),
      fieldsSlot, h('div', { class: 'field-error', 'data-error-for': 'config.export_fields' }));
    const existing = h('input', { type: 'checkbox', id: 'f-existing_users', name: 'existing_users', 'data-field': 'config.existing_users' });

    const importPart = h('div', { class: 'stack', 'data-part': 'import' },
      field('Tributary event stream', stream, { field: 'config.stream', hint: 'Where the events go; created on first use (letters, digits, _ and -).' }), knownStreams);
    const sharedAws = h('div', { class: 'stack' },
      field('Region', region, { field: 'config.region' }),
      field('Role ARN', roleArn, { field: 'config.role_arn', optional: true, hint: 'A role the job assumes with the authorization\'s credentials.' }),
      kinesis.el);
    const importTail = h('div', { class: 'stack', 'data-part': 'import' }, startGroup);
    const exportHead = h('div', { class: 'stack', 'data-part': 'export', hidden: true }, audiencesGroup);
    const exportTail = h('div', { class: 'stack', 'data-part': 'export', hidden: true },
      field('User identifier field', idField, { field: 'config.user_identifier_field', hint: 'Its value becomes the Kinesis partition key; the profile id when a profile lacks it.' }),
      exportFieldsGroup,
      h('div', { class: 'field' }, h('label', { class: 'choice', for: 'f-existing_users' }, existing, 'Send existing audience members once as "enter" (backfill)'),
        h('div', { class: 'field-error', 'data-error-for': 'config.existing_users' })));

    append(form, [
      h('div', { class: 'panel stack' }, typeCards),
      h('div', { class: 'panel stack' },
        h('h2', {}, 'Basics'),
        field('Authorization', auth, { field: 'authorization', hint: 'The AWS credentials this job uses.' }), authNote,
        field('Label', label, { field: 'label' }),
        field('Description', description, { field: 'description', optional: true })),
      h('div', { class: 'panel stack' }, h('h2', { id: 'conf-h' }, 'Import settings'), importPart, exportHead, sharedAws, importTail, exportTail),
      h('div', { class: 'form-actions' }, h('button', { type: 'submit', id: 'create-job' }, 'Create job'), h('a', { href: '#/jobs' }, 'Cancel')),
    ]);

    const type = () => $('input[name=type]:checked', form).value;
    $$('input[name=type]', form).forEach((r) => r.addEventListener('change', () => {
      const isImport = type() === 'kinesis_import';
      $$('[data-part=import]', form).forEach((e) => { e.hidden = !isImport; });
      $$('[data-part=export]', form).forEach((e) => { e.hidden = isImport; });
      $('#conf-h', form).textContent = isImport ? 'Import settings' : 'Export settings';
      clearErrors(form);
      if (!isImport) loadExportChoices();
    }));
    let reloadTimer;
    const reloadStreams = () => { clearTimeout(reloadTimer); reloadTimer = setTimeout(() => kinesis.load(), 250); };
    auth.addEventListener('change', reloadStreams);
    region.addEventListener('change', reloadStreams);
    roleArn.addEventListener('change', reloadStreams);

    (async () => {
      const res = await api('GET', '/api/authorizations');
      if (!current(gen)) return;
      if (!res.ok) { replace(authNote, errorBox(res)); return; }
      const auths = listOf(res.data, 'authorizations');
      replace(auth, h('option', { value: '' }, auths.length ? 'Choose an authorization…' : 'No authorizations yet'),
        auths.map((a) => h('option', { value: a.id }, `${a.label} (${a.method === 'aws_role' ? 'role' : 'keys'})`)));
      if (auths.length === 1) { auth.value = auths[0].id; kinesis.load(); }
      if (!auths.length) replace(authNote, h('div', { class: 'info-box' }, 'Add AWS credentials first: ', h('a', { href: '#/authorizations' }, 'Authorizations'), '.'));
      const s = await api('GET', '/api/streams');
      if (s.ok && current(gen)) replace(knownStreams, listOf(s.data, 'streams').map((x) => h('option', { value: x.name })));
    })();

    let exportLoaded = false;
    async function loadExportChoices() {
      if (exportLoaded) return;
      exportLoaded = true;
      const [aud, schema] = await Promise.all([api('GET', '/api/audiences'), api('GET', '/api/schema')]);
      if (!current(gen)) return;
      if (aud.ok) {
        const list = listOf(aud.data, 'audiences');
        replace(audienceSlot, list.length
          ? h('div', { class: 'checklist' }, list.map((a) => choice('checkbox', 'audiences', a.slug, `${a.name || a.slug} (${a.slug})`, false)))
          : h('div', { class: 'info-box' }, 'No audiences yet: ', h('a', { href: '#/audiences/new' }, 'create one'), '.'));
      } else replace(audienceSlot, errorBox(aud, 'Audiences unavailable'));
      if (schema.ok) {
        const fields = listOf(schema.data, 'fields').map((f) => (typeof f === 'string' ? { name: f } : f));
        append(idField, fields.map((f) => h('option', { value: f.name }, `${f.name}${f.kind ? ` (${f.kind})` : ''}`)));
        replace(fieldsSlot, fields.length
          ? h('div', { class: 'checklist' }, fields.map((f) => choice('checkbox', 'export_fields', f.name, `${f.name}${f.kind ? ` · ${f.kind}` : ''}`, false)))
          : h('div', { class: 'muted' }, 'The profile schema has no fields yet (set a stream mapping first).'));
      } else replace(fieldsSlot, errorBox(schema, 'Profile schema unavailable'));
    }

    form.addEventListener('submit', async (e) => {
      e.preventDefault();
      const t = type();
      const config = { region: region.value, role_arn: roleArn.value.trim() || null, kinesis_stream: kinesis.value() };
      if (t === 'kinesis_import') {
        config.stream = stream.value.trim();
        const start = $('input[name=start]:checked', form).value;
        if (start === 'at_timestamp') {
          const d = new Date(atTime.value);
          if (!atTime.value || isNaN(d)) {
            showError(form, { status: 400, data: { error: 'invalid_field', message: 'config.start_position: choose the date and time to start from' } });
            return;
          }
          config.start_position = { at_timestamp: d.toISOString() };
        } else config.start_position = start;
      } else {
        config.audiences = $$('input[name=audiences]:checked', form).map((c) => c.value);
        config.user_identifier_field = idField.value || null;
        config.export_fields = $$('input[name=export_fields]:checked', form).map((c) => c.value);
        config.existing_users = existing.checked;
      }
      const body = { type: t, label: label.value, description: description.value, authorization: auth.value, config };
      const btn = $('#create-job', form);
      btn.disabled = true;
      const res = await api('POST', '/api/jobs', body);
      btn.disabled = false;
      if (!res.ok) { showError(form, res); return; }
      say(`Job ${res.data.label} created`);
      location.hash = `#/jobs/${encodeURIComponent(res.data.id)}`;
    });
    label.focus();
  }

  // Per-shard lag history, kept in this tab: jobId → shardId → [[time, millis]].
  const lagHistory = new Map();
  function recordLag(jobId, shards) {
    const now = Date.now();
    let byShard = lagHistory.get(jobId);
    if (!byShard) lagHistory.set(jobId, (byShard = new Map()));
    for (const s of shards) {
      if (typeof s.millis_behind_latest !== 'number') continue;
      const pts = byShard.get(s.shard_id) || [];
      pts.push([now, s.millis_behind_latest]);
      while (pts.length && pts[0][0] < now - LAG_WINDOW_MS) pts.shift();
      byShard.set(s.shard_id, pts);
    }
    return byShard;
  }
  /** A small inline SVG line chart of millis-behind over the last minutes. */
  function sparkline(points) {
    const W = 160, H = 34;
    if (!points || !points.length) return h('span', { class: 'muted small' }, 'no data yet');
    const now = Date.now();
    const max = Math.max(1000, ...points.map((p) => p[1]));
    const xy = points.map(([t, v]) => [W - ((now - t) / LAG_WINDOW_MS) * W, H - 2 - (v / max) * (H - 4)]);
    const line = xy.map(([x, y]) => `${x.toFixed(1)},${y.toFixed(1)}`).join(' ');
    const ns = 'http://www.w3.org/2000/svg';
    const svg = document.createElementNS(ns, 'svg');
    svg.setAttribute('class', 'spark');
    svg.setAttribute('width', W); svg.setAttribute('height', H);
    svg.setAttribute('viewBox', `0 0 ${W} ${H}`);
    svg.setAttribute('role', 'img');
    const last = points[points.length - 1][1];
    svg.setAttribute('aria-label', `Milliseconds behind over the last ${Math.round(LAG_WINDOW_MS / 60000)} minutes; now ${last} ms, peak ${Math.max(...points.map((p) => p[1]))} ms`);
    const area = document.createElementNS(ns, 'polygon');
    area.setAttribute('class', 'area');
    area.setAttribute('points', `${xy[0][0].toFixed(1)},${H} ${line} ${xy[xy.length - 1][0].toFixed(1)},${H}`);
    const pl = document.createElementNS(ns, 'polyline');
    pl.setAttribute('points', xy.length === 1 ? `${(xy[0][0] - 2).toFixed(1)},${xy[0][1].toFixed(1)} ${line}` : line);
    const base = document.createElementNS(ns, 'line');
    base.setAttribute('x1', 0); base.setAttribute('x2', W); base.setAttribute('y1', H - 0.5); base.setAttribute('y2', H - 0.5);
    base.setAttribute('stroke', '#d9dee5');
    svg.append(base, area, pl);
    return svg;
  }

  /** Raw bytes (base64) shown as text when they are printable UTF-8, and always as hex. */
  function rawPayload(b64) {
    let bytes;
    try { bytes = Uint8Array.from(atob(b64 || ''), (c) => c.charCodeAt(0)); } catch (_) { bytes = new Uint8Array(); }
    let text = null;
    try {
      const t = new TextDecoder('utf-8', { fatal: true }).decode(bytes);
      if (!/[\x00-\x08\x0e-\x1f\x7f]/.test(t)) text = t;
    } catch (_) { /* not UTF-8 */ }
    const shown = bytes.slice(0, 4096);
    const lines = [];
    for (let i = 0; i < shown.length; i += 16) {
      const row = Array.from(shown.slice(i, i + 16));
      lines.push(`${i.toString(16).padStart(6, '0')}  ${row.map((b) => b.toString(16).padStart(2, '0')).join(' ').padEnd(47)}  ${row.map((b) => (b >= 32 && b < 127 ? String.fromCharCode(b) : '.')).join('')}`);
    }
    if (bytes.length > shown.length) lines.push(`… ${bytes.length - shown.length} more bytes`);
    const lossy = text !== null ? text : new TextDecoder('utf-8').decode(bytes).replace(/[\x00-\x08\x0e-\x1f\x7f]/g, '\ufffd');
    return h('div', {},
      text === null ? h('div', { class: 'muted small' }, `${bytes.length} bytes, not valid UTF-8 text; shown with \ufffd for bad bytes:`) : null,
      h('pre', { class: 'json-cell', 'data-raw': 'text' }, lossy.length > 2000 ? `${lossy.slice(0, 2000)}…` : lossy),
      h('details', { open: text === null }, h('summary', { class: 'small' }, `Hex (${bytes.length} bytes)`), h('pre', { 'data-raw': 'hex' }, lines.join('\n'))));
  }

  function jobScreen(id) {
    const gen = generation;
    const title = h('h1', { tabindex: '-1' }, 'Job');
    const stateSlot = h('span', {});
    const actionsMsg = h('div', { 'aria-live': 'polite' });
    const pauseBtn = h('button', { type: 'button', class: 'secondary', id: 'job-pause' }, 'Pause');
    const resumeBtn = h('button', { type: 'button', class: 'secondary', id: 'job-resume' }, 'Resume');
    const deleteBtn = h('button', { type: 'button', class: 'danger', id: 'job-delete' }, 'Delete');
    const statsSlot = h('div', { class: 'stats', id: 'job-stats' });
    const errorSlot = h('div', {});
    const backfillSlot = h('div', {});
    const shardsSlot = h('div', {});
    const configSlot = h('div', {});
    const eventsSlot = h('div', {});
    const deadSlot = h('div', {});
    const eventsPanel = h('section', { class: 'panel', hidden: true }, h('h2', {}, 'Newest events'), eventsSlot);
    const shardsPanel = h('section', { class: 'panel' }, h('h2', {}, 'Shards'), shardsSlot);
    const deadHint = h('p', { class: 'hint' });
    append(main(), [
      h('div', { class: 'page-head' },
        h('div', {}, h('div', { class: 'crumbs' }, h('a', { href: '#/jobs' }, '← Jobs')), title, stateSlot),
        h('div', { class: 'actions' }, pauseBtn, resumeBtn, deleteBtn)),
      actionsMsg, errorSlot,
      h('div', { class: 'muted small' }, h('span', { class: 'live-dot', 'aria-hidden': 'true' }), 'Live: updates every 2 seconds'),
      statsSlot, backfillSlot,
      shardsPanel,
      eventsPanel,
      h('section', { class: 'panel' }, h('h2', {}, 'Dead letters'), deadHint, deadSlot),
      h('section', { class: 'panel' }, h('h2', {}, 'Configuration'), configSlot),
    ]);
    let job = null;
    let deadCount = -1;
    const authLabels = new Map();
    api('GET', '/api/authorizations').then((res) => {
      if (res.ok) listOf(res.data, 'authorizations').forEach((a) => authLabels.set(a.id, `${a.label} (${a.id})`));
    });
    async function act(method, path, what) {
      for (const b of [pauseBtn, resumeBtn, deleteBtn]) b.disabled = true;
      const res = await api(method, path);
      for (const b of [pauseBtn, resumeBtn, deleteBtn]) b.disabled = false;
      if (!res.ok) { replace(actionsMsg, errorBox(res, `Could not ${what}`)); return null; }
      clear(actionsMsg);
      say(`Job ${what}d`);
      return res;
    }
    pauseBtn.addEventListener('click', async () => { const r = await act('POST', `/api/jobs/${encodeURIComponent(id)}/pause`, 'pause'); if (r) render(r.data); });
    resumeBtn.addEventListener('click', async () => { const r = await act('POST', `/api/jobs/${encodeURIComponent(id)}/resume`, 'resume'); if (r) render(r.data); });
    deleteBtn.addEventListener('click', async () => {
      if (!confirm(`Delete the job "${job ? job.label : id}"? Its checkpoints and dead letters go; its events stay.`)) return;
      if (await act('DELETE', `/api/jobs/${encodeURIComponent(id)}`, 'delete')) location.hash = '#/jobs';
    });

    function render(j) {
      job = j;
      const s = j.status || {};
      const shards = Array.isArray(s.shards) ? s.shards : [];
      title.textContent = j.label;
      document.title = `${j.label} · Tributary`;
      replace(stateSlot, h('span', { class: 'muted' }, `${JOB_TYPES[j.type] || j.type} · `), badge(s.state || j.state));
      pauseBtn.hidden = (s.state || j.state) !== 'running';
      resumeBtn.hidden = (s.state || j.state) === 'running';
      const known = ['records_in', 'events_out', 'dead_letters'];
      const numeric = Object.keys(s).filter((k) => typeof s[k] === 'number');
      const keys = known.filter((k) => k in s).concat(numeric.filter((k) => !known.includes(k)));
      const names = STAT_NAMES[j.type] || {};
      replace(statsSlot, keys.map((k) => h('div', { class: 'stat', 'data-stat': k }, h('div', { class: 'value' }, fmtNum(s[k])), h('div', { class: 'name' }, names[k] || humanize(k)))));
      shardsPanel.hidden = j.type === 'kinesis_export' && !shards.length;
      eventsPanel.hidden = j.type !== 'kinesis_import';
      deadHint.textContent = j.type === 'kinesis_export'
        ? 'Changes that could not be sent (e.g. a record over 1 MiB), with the reason; the rest kept flowing.'
        : 'Records that could not be decoded, with the reason; the shard kept moving.';
      const lastError = s.last_error || j.last_error;
      replace(errorSlot, lastError ? h('div', { class: 'error-box', role: 'alert', id: 'job-last-error' }, h('strong', {}, 'Last error: '), lastError) : null);
      const bf = s.backfill;
      if (bf && typeof bf === 'object') {
        const total = Number(bf.total) || 0;
        const sent = Number(bf.sent) || 0;
        const pct = total ? Math.min(100, Math.round((sent / total) * 100)) : (bf.done ? 100 : 0);
        replace(backfillSlot, h('section', { class: 'panel', id: 'backfill' }, h('h2', {}, 'Backfill of existing members'),
          h('div', { class: 'progress' },
            h('progress', { max: 100, value: pct, 'aria-label': 'Backfill progress' }),
            h('span', { 'data-backfill': bf.done ? 'done' : 'running' }, `${fmtNum(sent)} of ${fmtNum(total)} sent (${pct}%)${bf.done ? ' — done' : ''}`))));
      } else clear(backfillSlot);
      const hist = recordLag(id, shards);
      replace(shardsSlot, shards.length || j.type === 'kinesis_import' ? table([
        { label: 'Shard', cell: (x) => h('span', { class: 'mono' }, x.shard_id) },
        { label: 'Parent', cell: (x) => h('span', { class: 'mono small' }, (x.parent_shard_ids && x.parent_shard_ids.length ? x.parent_shard_ids.join(', ') : x.parent_shard_id) || '—') },
        { label: 'State', cell: (x) => badge(x.state) },
        { label: 'Records', num: true, cell: (x) => fmtNum(x.records) },
        { label: 'Behind (ms)', num: true, cell: (x) => fmtNum(x.millis_behind_latest) },
        { label: 'Lag, last 10 min', cell: (x) => sparkline(hist.get(x.shard_id)) },
        { label: 'Checkpoint', cell: (x) => h('span', { class: 'mono small', title: x.checkpoint || '' }, x.checkpoint ? `…${String(x.checkpoint).slice(-12)}` : '—') },
      ], shards, { name: 'shards', empty: 'No shards read yet.' }) : h('p', { class: 'muted' }, 'This job type has no shards.'));
      const cfg = j.config || {};
      replace(configSlot, h('dl', { class: 'props' },
        [['Type', JOB_TYPES[j.type] || j.type], ['Description', j.description || '—'], ['Authorization', authLabels.get(j.authorization) || j.authorization]]
          .concat(Object.entries(cfg).map(([k, v]) => [humanize(k), v === null ? '—' : typeof v === 'object' ? JSON.stringify(v) : String(v)]))
          .concat([['Created', fmtTime(j.created_at)], ['Id', j.id]])
          .map(([k, v]) => [h('dt', {}, k), h('dd', {}, v)])));
    }

    async function loadEvents() {
      const stream = job && job.type === 'kinesis_import' && job.config && job.config.stream;
      if (!stream) return;
      eventsPanel.hidden = false;
      const res = await api('GET', `/api/streams/${encodeURIComponent(stream)}/events?limit=8`);
      if (!current(gen)) return;
      refresh(eventsSlot, res.data, res.ok ? [eventsTable(listOf(res.data, 'events')), h('a', { href: `#/streams/${encodeURIComponent(stream)}` }, `All events of ${stream} →`)] : errorBox(res));
    }
    async function loadDead(count) {
      if (count === deadCount) return;
      deadCount = count;
      const res = await api('GET', `/api/jobs/${encodeURIComponent(id)}/dead-letters?limit=50`);
      if (!current(gen)) return;
      if (!res.ok) { replace(deadSlot, errorBox(res)); return; }
      replace(deadSlot, table([
        { label: 'Reason', cell: (d) => h('strong', {}, d.reason) },
        { label: 'Where', cell: (d) => h('div', { class: 'small mono' }, d.shard_id || '', d.sequence_number ? h('div', {}, `seq …${String(d.sequence_number).slice(-12)}`) : null, d.partition_key ? h('div', {}, `key ${d.partition_key}`) : null) },
        { label: 'Raw payload', cell: (d) => rawPayload(d.raw_base64) },
        { label: 'When', cell: (d) => fmtTime(d.created_at) },
      ], listOf(res.data, 'dead_letters'), { name: 'dead-letters', empty: 'None: every record was decoded.' }));
    }

    poll(async () => {
      const res = await api('GET', `/api/jobs/${encodeURIComponent(id)}`);
      if (!current(gen)) return;
      if (!res.ok) { replace(errorSlot, errorBox(res)); return; }
      render(res.data);
      await Promise.all([loadEvents(), loadDead(res.data.status ? res.data.status.dead_letters : 0)]);
    });
  }

  // ---------------------------------------------------------------------------------------
  // Streams, events and mappings
  // ---------------------------------------------------------------------------------------

  function eventsTable(events) {
    return table([
      { label: 'Stored', cell: (e) => h('span', { class: 'small' }, fmtTime(e.stored_at)) },
      { label: 'Fields', cell: (e) => h('pre', { class: 'json-cell' }, JSON.stringify(e.fields)) },
      { label: 'From Kinesis', cell: (e) => (e._kinesis ? h('div', { class: 'small mono' }, `${e._kinesis.stream} / ${e._kinesis.shard_id}`, h('div', {}, `key ${e._kinesis.partition_key}`), h('div', {}, `seq …${String(e._kinesis.sequence_number).slice(-12)}`)) : h('span', { class: 'muted small' }, 'collected over HTTP')) },
    ], events, { name: 'events', empty: 'No events yet.' });
  }

  function streamsScreen() {
    const gen = generation;
    const slot = h('div', {}, h('p', { class: 'muted' }, 'Loading…'));
    append(main(), [
      pageHead('Streams & events'),
      h('p', { class: 'muted' }, 'Tributary\'s own event streams: filled by import jobs and by POST /api/collect/{stream}.'),
      h('section', { class: 'panel' }, h('h2', {}, h('span', { class: 'live-dot', 'aria-hidden': 'true' }), 'Streams'), slot),
    ]);
    poll(async () => {
      const res = await api('GET', '/api/streams');
      if (!current(gen)) return;
      if (!res.ok) { replace(slot, errorBox(res)); return; }
      refresh(slot, res.data, table([
        { label: 'Stream', cell: (s) => h('a', { href: `#/streams/${encodeURIComponent(s.name)}` }, s.name) },
        { label: 'Events', num: true, cell: (s) => h('span', { 'data-events': s.name }, fmtNum(s.events)) },
        { label: 'Size (approx.)', num: true, cell: (s) => h('span', { 'data-size': s.name }, fmtBytes(s.approx_bytes)) },
        { label: 'Last event', cell: (s) => fmtTime(s.last_event_at) },
      ], listOf(res.data, 'streams'), { name: 'streams', href: (s) => `#/streams/${encodeURIComponent(s.name)}`, empty: 'No events yet: create an import job or POST to /api/collect/{stream}.' }));
    });
  }

  const MAPPING_TEMPLATE = (name) => `SELECT
    email(email)      AS email        KIND string,
    user_id           AS user_id      KIND string,
    count(*)          AS visit_count  KIND int,
    max(todate(ts))   AS last_seen    KIND date
FROM ${name}
INTO user BY email OR user_id
ALIAS ${name}
`;

  function streamScreen(name) {
    const gen = generation;
    const countSlot = h('span', {});
    const eventsSlot = h('div', {}, h('p', { class: 'muted' }, 'Loading…'));
    const olderSlot = h('div', {});
    // Read-only until the stored mapping arrives, so it never overwrites what the user typed.
    const editor = h('textarea', { id: 'mapping-text', name: 'mapping', spellcheck: 'false', rows: 14, 'data-field': 'mapping', readonly: true, placeholder: 'Loading the mapping…' });
    const mapErr = h('div', { id: 'mapping-error' });
    const mapResult = h('div', { 'aria-live': 'polite' });
    const rebuildSlot = h('div', { 'aria-live': 'polite' });
    function showRebuild(st) {
      const total = Number(st.total) || 0;
      const done = Number(st.processed) || 0;
      const pct = total ? Math.min(100, Math.round((done / total) * 100)) : (st.state === 'done' ? 100 : 0);
      replace(rebuildSlot, st.state === 'idle' ? null : h('div', { class: 'progress' },
        h('progress', { max: 100, value: pct, 'aria-label': 'Profile rebuild progress' }),
        h('span', { 'data-rebuild': st.state }, `${st.state === 'done' ? 'Rebuilt' : 'Rebuilding'}: ${fmtNum(done)} of ${fmtNum(total)} events (${pct}%)`)));
    }
    async function rebuild() {
      if (!confirm('Rebuild every profile from the stored events with the current mappings?')) return;
      const res = await api('POST', '/api/profiles/rebuild');
      if (!res.ok) { replace(rebuildSlot, errorBox(res, 'Rebuild not started')); return; }
      showRebuild(res.data);
      const gen2 = generation;
      const follow = async () => {
        if (gen2 !== generation) return;
        const st = await api('GET', '/api/profiles/rebuild');
        if (!st.ok) { replace(rebuildSlot, errorBox(st)); return; }
        showRebuild(st.data);
        if (st.data.state === 'running') setTimeout(follow, POLL_MS);
      };
      setTimeout(follow, 500);
    }
    const mapForm = h('form', { class: 'stack', id: 'mapping-form' },
      h('div', { class: 'field wide' },
        h('label', { for: 'mapping-text' }, `Mapping for ${name}`),
        h('div', { class: 'hint', id: 'mapping-hint' }, 'SQL-like: which event fields become profile fields, and which identify a person (BY …). Errors show their line and column.'),
        editor),
      mapErr,
      h('div', { class: 'form-actions' }, h('button', { type: 'submit' }, 'Save mapping'),
        h('button', { type: 'button', class: 'secondary', id: 'rebuild', onClick: rebuild }, 'Rebuild profiles from stored events')),
      rebuildSlot,
      mapResult);
    editor.setAttribute('aria-describedby', 'mapping-hint mapping-error');
    append(main(), [
      pageHead(name, h('a', { href: '#/streams' }, '← Streams')),
      h('section', { class: 'panel' }, h('h2', {}, h('span', { class: 'live-dot', 'aria-hidden': 'true' }), 'Recent events ', countSlot), eventsSlot, olderSlot),
      h('section', { class: 'panel' }, h('h2', {}, 'Mapping to profiles'), mapForm),
      h('section', { class: 'panel' }, h('h2', {}, 'Retention'), retentionForm(name, gen)),
    ]);
    let before = null;
    poll(async () => {
      const [res, list] = await Promise.all([
        api('GET', `/api/streams/${encodeURIComponent(name)}/events?limit=20`),
        api('GET', '/api/streams'),
      ]);
      if (!current(gen)) return;
      if (!res.ok) { replace(eventsSlot, errorBox(res)); return; }
      const s = list.ok ? listOf(list.data, 'streams').find((x) => x.name === name) : null;
      replace(countSlot, s ? h('span', { class: 'muted small', 'data-event-count': s.events }, `(${fmtNum(s.events)} stored)`) : null);
      refresh(eventsSlot, res.data, eventsTable(listOf(res.data, 'events')));
      if (before === null && !olderSlot.firstChild && res.data.next_before) {
        before = res.data.next_before;
        olderSlot.append(h('button', { type: 'button', class: 'secondary', onClick: loadOlder }, 'Load older events'));
      }
    });
    async function loadOlder(e) {
      const btn = e.currentTarget;
      const res = await api('GET', `/api/streams/${encodeURIComponent(name)}/events?${q({ limit: 20, before })}`);
      if (!res.ok) { btn.replaceWith(errorBox(res)); return; }
      btn.before(eventsTable(listOf(res.data, 'events')));
      before = res.data.next_before;
      if (!before) btn.remove();
    }

    (async () => {
      const res = await api('GET', `/api/streams/${encodeURIComponent(name)}/mapping`);
      if (!current(gen)) return;
      editor.readOnly = false;
      editor.removeAttribute('placeholder');
      if (res.ok) {
        const d = res.data;
        editor.value = typeof d === 'string' ? d : (firstKey(d, ['mapping', 'text', 'source']) || '');
        if (d && typeof d === 'object' && Array.isArray(d.fields)) replace(mapResult, fieldsTable(d.fields, 'Profile fields from this mapping'));
      } else if (res.status === 404 && !/no such API route/.test(res.data.message || '')) {
        editor.value = MAPPING_TEMPLATE(name);
        replace(mapResult, h('div', { class: 'info-box' }, 'This stream has no mapping yet: the text above is an example to adapt.'));
      } else {
        editor.value = MAPPING_TEMPLATE(name);
        replace(mapResult, errorBox(res, 'Mapping unavailable'));
      }
    })();
    mapForm.addEventListener('submit', async (e) => {
      e.preventDefault();
      clear(mapErr); clear(mapResult);
      editor.removeAttribute('aria-invalid');
      const res = await api('PUT', `/api/streams/${encodeURIComponent(name)}/mapping`, editor.value, { text: true });
      if (!res.ok) { showLangError(mapErr, editor, res); return; }
      const fields = listOf(res.data, 'fields');
      // Events stored before the mapping keep what earlier mappings made until a rebuild.
      const unapplied = res.data.hint ? h('div', { class: 'warn-box', role: 'status', 'data-unapplied': res.data.unapplied_events },
        h('p', {}, res.data.hint),
        h('button', { type: 'button', class: 'secondary', id: 'rebuild-unapplied', onClick: rebuild }, `Rebuild now to apply it to those ${fmtNum(res.data.unapplied_events)} events`)) : null;
      replace(mapResult, h('div', { class: 'ok-box', role: 'status', 'data-saved': 'mapping' }, 'Mapping saved.'), unapplied, fields.length ? fieldsTable(fields, 'Profile fields from this mapping') : null);
    });
  }

  /** How long a stream's events are kept: GET/PUT /api/streams/{name}/retention. */
  function retentionForm(name, gen) {
    const path = `/api/streams/${encodeURIComponent(name)}/retention`;
    const summary = h('p', { class: 'muted', 'data-retention': '' }, 'Loading…');
    const maxAge = input({ id: 'retention-max-age', name: 'max_age', placeholder: '30d', 'aria-describedby': 'retention-hint retention-result' });
    const result = h('div', { id: 'retention-result', 'aria-live': 'polite' });
    function show(v) {
      const age = v.max_age;
      summary.dataset.retention = age || 'forever';
      summary.textContent = age
        ? `Events older than ${age} are deleted (once the profile processor has applied them)${v.source === 'default' ? ': the server\'s default (retention_max_age)' : ''}.`
        : `Events are kept for ever${v.source === 'default' ? ' (the server\'s default)' : ''}.`;
      if (age && !maxAge.value) maxAge.value = age;
    }
    async function save(value) {
      clear(result);
      maxAge.removeAttribute('aria-invalid');
      const res = await api('PUT', path, { max_age: value });
      if (!res.ok) { maxAge.setAttribute('aria-invalid', 'true'); replace(result, errorBox(res, 'Retention not saved')); return; }
      show(res.data);
      replace(result, h('div', { class: 'ok-box', role: 'status', 'data-saved': 'retention' }, value ? `Retention saved: ${res.data.max_age}.` : 'Retention removed: events are kept for ever.'));
    }
    const form = h('form', { class: 'stack', id: 'retention-form' },
      summary,
      h('div', { class: 'field' },
        h('label', { for: 'retention-max-age' }, 'Keep events for'),
        h('div', { class: 'hint', id: 'retention-hint' }, 'A whole number and a unit: s, m, h or d (e.g. 30d). Older events are deleted within a minute, in small batches.'),
        maxAge),
      h('div', { class: 'form-actions' },
        h('button', { type: 'submit' }, 'Save retention'),
        h('button', { type: 'button', class: 'secondary', id: 'retention-forever', onClick: () => { maxAge.value = ''; save(null); } }, 'Keep for ever')),
      result);
    form.addEventListener('submit', (e) => {
      e.preventDefault();
      const v = maxAge.value.trim();
      save(v === '' ? null : v);
    });
    (async () => {
      const res = await api('GET', path);
      if (!current(gen)) return;
      if (res.ok) show(res.data); else replace(summary, errorBox(res, 'Retention unavailable'));
    })();
    return form;
  }

  function fieldsTable(fields, caption) {
    const rows = fields.map((f) => (typeof f === 'string' ? { name: f } : f));
    const first = ['name', 'kind', 'aggregate', 'merge_op', 'short_desc'];
    const cols = Array.from(new Set(first.filter((c) => rows.some((r) => c in r)).concat(rows.flatMap((r) => Object.keys(r)))));
    return h('div', {}, h('h3', {}, caption), table(cols.map((c) => ({ label: humanize(c), cell: (r) => (r[c] === undefined || r[c] === null ? '' : typeof r[c] === 'object' ? JSON.stringify(r[c]) : String(r[c])) })), rows, { name: 'fields' }));
  }

  // ---------------------------------------------------------------------------------------
  // Profiles
  // ---------------------------------------------------------------------------------------

  function profilesScreen() {
    const gen = generation;
    const fieldSel = input({ id: 'profile-field', name: 'field', list: 'profile-fields', value: 'email' });
    const fieldList = h('datalist', { id: 'profile-fields' });
    const value = input({ id: 'profile-value', name: 'value', type: 'search' });
    const result = h('div', { 'aria-live': 'polite' });
    const form = h('form', { class: 'panel stack', id: 'profile-form' },
      h('h2', {}, 'Look up a person'),
      h('div', { class: 'grid-2' },
        field('Identifier field', fieldSel, { field: 'field', hint: 'A field the mapping identifies people BY, e.g. email.' }),
        field('Value', value, { field: 'value' })),
      fieldList,
      h('div', { class: 'form-actions' }, h('button', { type: 'submit' }, 'Find profile')));
    const recent = h('div', {}, h('p', { class: 'muted' }, 'Loading…'));
    append(main(), [pageHead('Profiles'), form, result,
      h('section', { class: 'panel' }, h('h2', {}, 'Recently changed profiles'), recent)]);
    api('GET', '/api/profiles?limit=20').then((res) => {
      if (!current(gen)) return;
      if (!res.ok) { replace(recent, errorBox(res)); return; }
      const list = listOf(res.data, 'profiles');
      const ids = (p) => Object.entries(p.identities || {}).map(([k, v]) => `${k}: ${Array.isArray(v) ? v.join(', ') : v}`).join(' · ');
      replace(recent,
        typeof res.data.total === 'number' ? h('p', { class: 'muted' }, `${fmtNum(res.data.total)} profiles in all.`) : null,
        table([
          { label: 'Profile', cell: (p) => h('a', { class: 'mono', href: `#/profiles/${encodeURIComponent(p.id)}` }, p.id) },
          { label: 'Identities', cell: (p) => h('span', { class: 'small mono' }, ids(p)) },
          { label: 'Audiences', cell: (p) => h('div', { class: 'chips' }, (p.audiences || []).map((a) => h('span', { class: 'chip' }, typeof a === 'string' ? a : a.slug))) },
          { label: 'Updated', cell: (p) => fmtTime(p.updated_at) },
        ], list, { name: 'profiles', href: (p) => `#/profiles/${encodeURIComponent(p.id)}`, empty: 'No profiles yet: set a mapping on a stream.' }));
    });
    api('GET', '/api/schema').then((res) => {
      if (res.ok && current(gen)) replace(fieldList, listOf(res.data, 'fields').map((f) => h('option', { value: typeof f === 'string' ? f : f.name })));
    });
    form.addEventListener('submit', async (e) => {
      e.preventDefault();
      clearErrors(form);
      clear(result);
      const res = await api('GET', `/api/profiles?${q({ field: fieldSel.value.trim(), value: value.value.trim() })}`);
      if (!current(gen)) return;
      if (!res.ok) {
        if (res.status === 400) showError(form, res);
        else result.append(errorBox(res, res.status === 404 ? 'No profile found' : 'Lookup failed'));
        return;
      }
      const list = Array.isArray(res.data) ? res.data : res.data.profiles ? res.data.profiles : [res.data];
      if (!list.length) { result.append(h('div', { class: 'info-box' }, 'No profile has that identifier.')); return; }
      list.forEach((p) => result.append(profileView(p)));
    });
    fieldSel.focus();
  }

  function profileScreen(id) {
    const gen = generation;
    const slot = h('div', {}, h('p', { class: 'muted' }, 'Loading…'));
    append(main(), [pageHead('Profile', h('a', { href: '#/profiles' }, '← Profiles')), slot]);
    api('GET', `/api/profiles/${encodeURIComponent(id)}`).then((res) => {
      if (!current(gen)) return;
      replace(slot, res.ok ? profileView(res.data) : errorBox(res));
    });
  }

  function profileView(p) {
    const fields = p.fields || {};
    const ids = p.identities || {};
    const auds = p.audiences || [];
    const val = (v) => (typeof v === 'object' && v !== null ? JSON.stringify(v) : String(v));
    return h('section', { class: 'panel', 'data-profile': p.id },
      h('h2', {}, h('a', { href: `#/profiles/${encodeURIComponent(p.id)}` }, `Profile ${p.id}`)),
      h('div', { class: 'grid-2' },
        h('div', {}, h('h3', {}, 'Identities'), h('dl', { class: 'props' }, Object.entries(ids).map(([k, v]) => [h('dt', {}, k), h('dd', { class: 'mono' }, Array.isArray(v) ? v.join(', ') : val(v))]))),
        h('div', {}, h('h3', {}, 'Audiences'), auds.length ? h('div', { class: 'chips' }, auds.map((a) => { const slug = typeof a === 'string' ? a : a.slug; return h('a', { class: 'chip', href: `#/audiences/${encodeURIComponent(slug)}` }, slug); })) : h('p', { class: 'muted' }, 'In no audience.'))),
      h('h3', {}, 'Fields'),
      table([{ label: 'Field', cell: (r) => h('strong', {}, r[0]) }, { label: 'Value', cell: (r) => h('span', { class: 'mono' }, val(r[1])) }], Object.entries(fields), { name: 'profile-fields', empty: 'No fields.' }),
      h('h3', {}, 'Engagement scores'),
      p.scores ? h('dl', { class: 'props', 'data-scores': '' }, Object.entries(p.scores).map(([k, v]) => [h('dt', {}, k), h('dd', { class: 'mono' }, h('meter', { min: 0, max: 100, value: v, title: `${k} ${v}/100` }), ` ${v}`)])) : h('p', { class: 'muted' }, 'No scores until the profile receives an event.'),
      h('p', { class: 'muted small' }, `Created ${fmtTime(p.created_at)} · updated ${fmtTime(p.updated_at)}`),
      eraseForm(p));
  }

  // Erasure of a person (DELETE /api/profiles/{id}), confirmed first: it cannot be undone.
  function eraseForm(p) {
    const suppress = h('input', { type: 'checkbox', id: `suppress-${p.id}`, name: 'suppress', 'data-erase-suppress': p.id });
    const result = h('div', { 'aria-live': 'polite' });
    async function erase() {
      const also = suppress.checked ? ' Its identifiers go on the suppression list, so events carrying them are dropped from now on.' : '';
      if (!confirm(`Delete profile ${p.id}, its identities, memberships and every stored event carrying its identifiers? Export jobs are sent an exit with reason "deleted" for each audience.${also} This cannot be undone.`)) return;
      const res = await api('DELETE', `/api/profiles/${encodeURIComponent(p.id)}?suppress=${suppress.checked}`);
      if (!res.ok) { replace(result, errorBox(res, 'Not deleted')); return; }
      const e = res.data;
      replace(result, h('div', { class: 'ok-box', role: 'status', 'data-erased': e.profile_id },
        `Deleted: ${fmtNum(e.events_deleted)} events, ${fmtNum(e.identities_deleted)} identifiers, ${fmtNum(e.audiences_exited)} audiences left, ${fmtNum(e.suppressed)} identifiers suppressed.`));
    }
    return h('div', { class: 'form-actions danger-zone' },
      h('label', { for: `suppress-${p.id}` }, suppress, ' Suppress its identifiers (keep them from coming back)'),
      h('button', { type: 'button', class: 'danger', id: `erase-${p.id}`, 'data-erase': p.id, onClick: erase }, 'Delete this person…'),
      result);
  }

  // ---------------------------------------------------------------------------------------
  // Audiences
  // ---------------------------------------------------------------------------------------

  const memberCount = (a) => firstKey(a, ['member_count', 'members_count', 'size', 'count', 'members']);

  function audiencesScreen() {
    const gen = generation;
    const slot = h('div', {}, h('p', { class: 'muted' }, 'Loading…'));
    append(main(), [
      pageHead('Audiences', null, h('a', { class: 'button', href: '#/audiences/new' }, 'New audience')),
      h('section', { class: 'panel' }, h('h2', {}, h('span', { class: 'live-dot', 'aria-hidden': 'true' }), 'All audiences'), slot),
    ]);
    poll(async () => {
      const res = await api('GET', '/api/audiences');
      if (!current(gen)) return;
      if (!res.ok) { replace(slot, errorBox(res)); return; }
      refresh(slot, res.data, table([
        { label: 'Name', cell: (a) => h('a', { href: `#/audiences/${encodeURIComponent(a.slug)}` }, a.name || a.slug) },
        { label: 'Slug', cell: (a) => h('span', { class: 'mono' }, a.slug) },
        { label: 'Members', num: true, cell: (a) => fmtNum(memberCount(a)) },
        { label: 'Description', cell: (a) => a.description || '' },
        { label: 'Metadata', cell: (a) => h('span', { class: 'mono' }, metadataText(a.metadata)) },
      ], listOf(res.data, 'audiences'), { name: 'audiences', href: (a) => `#/audiences/${encodeURIComponent(a.slug)}`, empty: 'No audiences yet.' }));
    });
  }

  // The nodes sharing the store, and which holds which piece of work (live).
  function clusterScreen() {
    const gen = generation;
    const nodesSlot = h('div', {}, h('p', { class: 'muted' }, 'Loading…'));
    const leasesSlot = h('div', {});
    append(main(), [
      pageHead('Cluster'),
      h('section', { class: 'panel' }, h('h2', {}, h('span', { class: 'live-dot', 'aria-hidden': 'true' }), 'Nodes'), nodesSlot),
      h('section', { class: 'panel' }, h('h2', {}, 'Who holds which work'), leasesSlot),
    ]);
    poll(async () => {
      const res = await api('GET', '/api/cluster');
      if (!current(gen)) return;
      if (!res.ok) { replace(nodesSlot, errorBox(res)); return; }
      const c = res.data;
      if (!c.clustered) {
        refresh(nodesSlot, 'solo', h('p', { 'data-cluster': 'solo' }, 'This node runs alone on its store (SQLite): it does all the work. Several nodes share the work on one PostgreSQL store (--store postgres://…).'));
        replace(leasesSlot);
        return;
      }
      const now = Date.now();
      const live = new Set(c.nodes.filter((n) => n.alive).map((n) => n.id));
      refresh(nodesSlot, c.nodes, table([
        { label: 'Node', cell: (n) => h('span', { class: 'mono' }, n.id === c.this_node ? `${n.id} (this one)` : n.id) },
        { label: 'Address', cell: (n) => n.address },
        { label: 'Version', cell: (n) => n.version },
        { label: 'Last heartbeat', cell: (n) => `${Math.max(0, Math.round((now - Date.parse(n.last_heartbeat)) / 1000))} s ago` },
        { label: 'State', cell: (n) => h('span', { class: `badge ${n.alive ? 'running' : 'failed'}` }, n.alive ? 'alive' : 'gone') },
        { label: 'Leases', num: true, cell: (n) => fmtNum(c.leases.filter((l) => l.owner === n.id && Date.parse(l.expires_at) > now).length) },
      ], c.nodes, { name: 'nodes', empty: 'No node has announced itself yet.' }));
      refresh(leasesSlot, c.leases, table([
        { label: 'Work', cell: (l) => h('span', { class: 'mono' }, l.name) },
        { label: 'Held by', cell: (l) => h('span', { class: 'mono' }, live.has(l.owner) && Date.parse(l.expires_at) > now ? l.owner : `— (last ${l.owner})`) },
        { label: 'Token', num: true, cell: (l) => fmtNum(l.token) },
      ], c.leases, { name: 'leases', empty: 'No work leased yet.' }));
    });
  }

  // A filter's `WITH key = value, …` pairs, as written back.
  const metadataText = (m) => Object.entries(m || {}).map(([k, v]) => `${k} = ${JSON.stringify(v)}`).join(', ');

  // The filter's WITH metadata and its notes (what it says that has no effect here).
  function filterFacts(a) {
    const meta = Object.entries(a.metadata || {});
    const notes = a.notes || [];
    if (!meta.length && !notes.length) return [];
    return [
      meta.length ? h('dl', { class: 'props', id: 'aud-metadata' }, ...meta.flatMap(([k, v]) => [h('dt', {}, k), h('dd', { class: 'mono' }, JSON.stringify(v))])) : null,
      ...notes.map((n) => h('p', { class: 'hint', 'data-note': 'filter' }, `Note: ${n}`)),
    ];
  }

  const FILTER_TEMPLATE = `FILTER AND (
    visit_count > 3,
    EXISTS email,
)
FROM user
ALIAS engaged_users
`;

  function audienceScreen(slug) {
    const gen = generation;
    const isNew = !slug;
    const slugIn = input({ id: 'aud-slug', name: 'slug', placeholder: 'engaged_users', disabled: !isNew });
    const nameIn = input({ id: 'aud-name', name: 'name' });
    const descIn = input({ id: 'aud-description', name: 'description' });
    const filter = h('textarea', { id: 'aud-filter', name: 'filter', spellcheck: 'false', rows: 12, value: isNew ? FILTER_TEMPLATE : '', readonly: !isNew });
    const filterErr = h('div', { id: 'aud-filter-lang-error' });
    const factsSlot = h('div', { 'aria-live': 'polite' });
    const result = h('div', { 'aria-live': 'polite' });
    const countSlot = h('div', { class: 'stat', id: 'aud-count' }, h('div', { class: 'value' }, '—'), h('div', { class: 'name' }, 'Members'));
    const membersSlot = h('div', {});
    const form = h('form', { class: 'panel stack', id: 'audience-form', novalidate: true },
      h('h2', {}, isNew ? 'Define the audience' : 'Definition'),
      h('div', { class: 'grid-2' },
        field('Slug', slugIn, { field: 'slug', hint: 'Its id in jobs and INCLUDE; cannot change later.' }),
        field('Name', nameIn, { field: 'name' })),
      field('Description', descIn, { field: 'description', optional: true }),
      h('div', { class: 'field wide' },
        h('label', { for: 'aud-filter' }, 'Filter'),
        h('div', { class: 'hint', id: 'aud-filter-hint' }, 'FilterQL: AND/OR/NOT, = != < > , IN, CONTAINS, LIKE, EXISTS, BETWEEN, relative dates like "now-30d", INCLUDE other_audience.'),
        filter, h('div', { class: 'field-error', id: 'aud-filter-error', 'data-error-for': 'filter' })),
      filterErr,
      factsSlot,
      h('div', { class: 'form-actions' }, h('button', { type: 'submit', id: 'aud-save' }, isNew ? 'Create audience' : 'Save filter')),
      result);
    filter.dataset.field = 'filter';
    filter.setAttribute('aria-describedby', 'aud-filter-hint aud-filter-error aud-filter-lang-error');
    const deleteBtn = isNew ? null : h('button', { type: 'button', class: 'danger', onClick: async () => {
      if (!confirm(`Delete the audience "${slug}"? Export jobs that name it stop sending its changes.`)) return;
      const res = await api('DELETE', `/api/audiences/${encodeURIComponent(slug)}`);
      if (res.ok) location.hash = '#/audiences'; else replace(result, errorBox(res, 'Not deleted'));
    } }, 'Delete');
    append(main(), [
      pageHead(isNew ? 'New audience' : slug, h('a', { href: '#/audiences' }, '← Audiences'), deleteBtn),
      isNew ? null : h('div', { class: 'stats' }, countSlot),
      form,
      isNew ? null : h('section', { class: 'panel' }, h('h2', {}, 'Members'), membersSlot),
    ]);
    form.addEventListener('submit', async (e) => {
      e.preventDefault();
      clear(filterErr); clear(result); clearErrors(form);
      filter.removeAttribute('aria-invalid');
      const body = { slug: slugIn.value.trim(), name: nameIn.value, description: descIn.value, filter: filter.value };
      const res = isNew ? await api('POST', '/api/audiences', body) : await api('PUT', `/api/audiences/${encodeURIComponent(slug)}`, body);
      if (!res.ok) {
        if (/line \d+, column \d+/i.test(res.data.message || '') || res.data.line) showLangError(filterErr, filter, res);
        else showError(form, res);
        return;
      }
      if (isNew) { location.hash = `#/audiences/${encodeURIComponent(res.data.slug || body.slug)}`; return; }
      replace(factsSlot, ...filterFacts(res.data));
      replace(result, h('div', { class: 'ok-box', role: 'status', 'data-saved': 'audience' }, 'Saved; every profile is being re-evaluated.'));
    });
    if (isNew) { slugIn.focus(); return; }

    let loaded = false;
    let firstMembers = [];
    let extraMembers = [];
    let nextMembers = null;
    poll(async () => {
      const [res, mem] = await Promise.all([
        api('GET', `/api/audiences/${encodeURIComponent(slug)}`),
        api('GET', `/api/audiences/${encodeURIComponent(slug)}/members?limit=50`),
      ]);
      if (!current(gen)) return;
      if (!res.ok) { replace(result, errorBox(res)); return; }
      const a = res.data;
      if (!loaded) {
        loaded = true;
        slugIn.value = a.slug || slug;
        nameIn.value = a.name || '';
        descIn.value = a.description || '';
        filter.readOnly = false;
        filter.value = typeof a.filter === 'string' ? a.filter : firstKey(a, ['filter_text', 'source', 'text']) || JSON.stringify(a.filter, null, 2) || '';
        replace(factsSlot, ...filterFacts(a));
      }
      const members = mem.ok ? listOf(mem.data, 'members') : [];
      let count = memberCount(a);
      if (typeof count !== 'number' && mem.ok) count = members.length;
      replace(countSlot, h('div', { class: 'value', 'data-member-count': count }, fmtNum(count)), h('div', { class: 'name' }, h('span', { class: 'live-dot', 'aria-hidden': 'true' }), 'Members (live)'));
      if (!mem.ok) { replace(membersSlot, errorBox(mem)); return; }
      if (!extraMembers.length) nextMembers = mem.data && mem.data.next;
      firstMembers = members;
      showMembers();
    });
    function showMembers() {
      const all = firstMembers.concat(extraMembers);
      refresh(membersSlot, [all, nextMembers], memberTable(all),
        nextMembers ? h('button', { type: 'button', class: 'secondary', id: 'more-members', onClick: moreMembers }, 'Load more members') : null);
    }
    async function moreMembers() {
      const res = await api('GET', `/api/audiences/${encodeURIComponent(slug)}/members?${q({ limit: 50, after: nextMembers })}`);
      if (!res.ok) { membersSlot.append(errorBox(res)); return; }
      extraMembers = extraMembers.concat(listOf(res.data, 'members'));
      nextMembers = res.data.next;
      showMembers();
    }
  }

  function memberTable(members) {
    return table([
      { label: 'Profile', cell: (m) => { const pid = typeof m === 'string' ? m : firstKey(m, ['profile_id', 'id']); return h('a', { href: `#/profiles/${encodeURIComponent(pid)}`, class: 'mono' }, pid); } },
      { label: 'Entered', cell: (m) => (m && typeof m === 'object' ? fmtTime(firstKey(m, ['entered_at', 'since', 'joined_at'])) : '') },
    ], members, { name: 'members', empty: 'No members yet.' });
  }

  // ---------------------------------------------------------------------------------------
  // Start
  // ---------------------------------------------------------------------------------------

  function start() {
    $('#sign-out').addEventListener('click', () => { sessionStorage.removeItem(TOKEN_KEY); showTokenForm(); });
    window.addEventListener('hashchange', () => { route(); const h1 = $('h1', main()); if (h1) h1.focus(); });
    route();
  }
  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', start); else start();
}());
