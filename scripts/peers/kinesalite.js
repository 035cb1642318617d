// Starts kinesalite on 127.0.0.1 (its CLI binds every interface).
//   node scripts/peers/kinesalite.js PORT     (PORT 0 picks a free one)
// Prints "listening on 127.0.0.1:PORT" once bound; exits when stdin closes.
'use strict';
const { nodeModule, exitWithParent } = require('./common');

const port = Number(process.argv[2] || 0);
const kinesalite = require(nodeModule('kinesalite'));
const server = kinesalite({
  createStreamMs: 50,
  deleteStreamMs: 50,
  updateStreamMs: 50,
  shardLimit: 1000,
});
server.on('error', (err) => {
  console.error(`kinesalite: ${err.message}`);
  process.exit(1);
});
server.listen(port, '127.0.0.1', () => {
  console.log(`listening on 127.0.0.1:${server.address().port}`);
});
exitWithParent();
