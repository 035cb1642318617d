// Shared by the node peer launchers: where the peers live, and exit when the parent goes away.
'use strict';
const path = require('path');

const repo = path.resolve(__dirname, '..', '..');
const peersDir = process.env.TRIBUTARY_PEERS_DIR || path.join(repo, '.peers');

function nodeModule(name) {
  return path.join(peersDir, 'node', 'node_modules', name);
}

// The test harness keeps our stdin open for as long as it lives; EOF means it is gone
// (even after SIGKILL), so the peer must not outlive it.
function exitWithParent() {
  process.stdin.on('data', () => {});
  process.stdin.on('end', () => process.exit(0));
  process.stdin.on('error', () => process.exit(0));
  process.stdin.resume();
}

// Force every listening socket onto loopback, whatever host the peer asks for.
function forceLoopback() {
  const net = require('net');
  const listen = net.Server.prototype.listen;
  net.Server.prototype.listen = function (...args) {
    if (args.length > 0 && typeof args[0] === 'object' && args[0] !== null && !Array.isArray(args[0])) {
      args[0] = Object.assign({}, args[0], { host: '127.0.0.1' });
    } else if (typeof args[0] === 'number' || (typeof args[0] === 'string' && /^\d+$/.test(args[0]))) {
      if (typeof args[1] === 'string' || args[1] === undefined || args[1] === null) {
        args[1] = '127.0.0.1';
      } else if (typeof args[1] === 'function') {
        args.splice(1, 0, '127.0.0.1');
      }
    }
    return listen.apply(this, args);
  };
}

module.exports = { peersDir, nodeModule, exitWithParent, forceLoopback };
