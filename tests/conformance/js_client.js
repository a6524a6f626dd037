// SPDX-License-Identifier: Apache-2.0
// Conformance: the npm Backend.AI JS client (unchanged) against a running baic manager.
// usage: BACKEND_ENDPOINT=.. BACKEND_ACCESS_KEY=.. BACKEND_SECRET_KEY=.. node js_client.js
'use strict';
global.localStorage = { getItem() { return null; }, setItem() {}, removeItem() {} };
global.navigator = global.navigator || { onLine: true };
const { Client, ClientConfig } = require('backend.ai-client/backend.ai-client-node.js');

const endpoint = process.env.BACKEND_ENDPOINT;
const ak = process.env.BACKEND_ACCESS_KEY;
const sk = process.env.BACKEND_SECRET_KEY;
let failures = 0;

function check(cond, what) {
  console.log(`${cond ? 'ok  ' : 'FAIL'} ${what}`);
  if (!cond) failures++;
}

async function main() {
  const client = new Client(new ClientConfig(ak, sk, endpoint), 'baic-conformance');
  const mgr = await client.get_manager_version();
  check(typeof mgr === 'string' && mgr.length > 0, `version probe: manager ${mgr}`);
  check(client._apiVersion === 'v8.20240915', `adopted API version ${client._apiVersion}`);

  // A signed request the manager must accept.
  const slots = await client._wrapWithPromise(
    client.newSignedRequest('GET', '/config/resource-slots', null));
  check(slots && slots.cpu === 'count' && slots.mem === 'bytes',
    `signed GET /config/resource-slots -> ${JSON.stringify(slots)}`);
  const presets = await client._wrapWithPromise(
    client.newSignedRequest('GET', '/resource/presets', null));
  check(presets && Array.isArray(presets.presets), 'signed GET /resource/presets');

  // The same request signed with a wrong secret: 401 with problem JSON.
  const bad = new Client(new ClientConfig(ak, sk.slice(0, -1) + (sk.endsWith('x') ? 'y' : 'x'),
    endpoint), 'baic-conformance-bad');
  await bad.get_manager_version();
  let err = null;
  try {
    await bad._wrapWithPromise(bad.newSignedRequest('GET', '/config/resource-slots', null));
  } catch (e) {
    err = e;
  }
  check(err !== null, 'wrong secret is rejected');
  check(err && err.statusCode === 401, `wrong secret -> HTTP ${err && err.statusCode}`);
  // The client reports HTTP errors as its own "server-error" and carries the
  // server's problem title and msg along: they must be ours.
  check(err && /Credential\/signature mismatch/.test(err.title) &&
    /HMAC signature mismatch/.test(err.message),
    `wrong secret -> title "${err && err.title}", message "${err && err.message}"`);

  // The raw answer is problem JSON with the problem content type.
  const rq = bad.newSignedRequest('GET', '/config/resource-slots', null);
  rq.body = undefined;
  const resp = await fetch(rq.uri, rq);
  const ctype = resp.headers.get('content-type') || '';
  const body = await resp.json();
  check(resp.status === 401 && ctype.startsWith('application/problem+json') &&
    body.title && body.type.endsWith('/auth-failed'), `raw 401: ${ctype} ${JSON.stringify(body)}`);
  check(resp.headers.get('server') === 'BackendAI', 'Server: BackendAI header');

  console.log(failures === 0 ? 'js client conformance: all passed'
    : `js client conformance: ${failures} failed`);
  process.exit(failures === 0 ? 0 : 1);
}

main().catch((e) => {
  console.log('FAIL unexpected error', e);
  process.exit(1);
});
