// Starts kinesis-local (kinesis-mock) bound to 127.0.0.1 only.
//   node scripts/peers/kinesis-local.js PLAIN_PORT TLS_PORT
// kinesis-mock hard-codes 0.0.0.0; instead of a private network namespace we patch
// net.Server.prototype.listen so that every socket it opens is on loopback.
// Exits when stdin closes.
'use strict';
const path = require('path');
const { nodeModule, exitWithParent, forceLoopback } = require('./common');

const [plain, tls] = process.argv.slice(2);
if (!plain || !tls) {
  console.error('usage: kinesis-local.js PLAIN_PORT TLS_PORT');
  process.exit(2);
}
const dir = nodeModule('kinesis-local');
const durations = ['CREATE_STREAM', 'DELETE_STREAM', 'SPLIT_SHARD', 'MERGE_SHARDS', 'UPDATE_SHARD_COUNT'];
const env = {
  KINESIS_MOCK_PLAIN_PORT: plain,
  KINESIS_MOCK_TLS_PORT: tls,
  KINESIS_MOCK_CERT_PATH: path.join(dir, 'server.json'),
  LOG_LEVEL: 'WARN',
  SHARD_LIMIT: '1000',
};
for (const d of durations) env[`${d}_DURATION`] = '50ms';
for (const [k, v] of Object.entries(env)) {
  if (process.env[k] === undefined) process.env[k] = v;
}
forceLoopback();
exitWithParent();
require(path.join(dir, 'main.js'));
