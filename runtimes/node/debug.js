'use strict';
// Remote debugging for one invocation: the inspector listens on 127.0.0.1 only, and a bridge
// (bridge.js, in a worker thread) connects out to the debugger's host:port. The invocation waits
// for the debugger to attach (Runtime.runIfWaitingForDebugger), but only once the relay has
// accepted the bridge's connection: an unreachable debugger never holds a handler up.

const path = require('path');

const CONNECT_WAIT_MS = 5000;
const MAX_BRIDGE_CONNECTIONS = 16;

function firstMessage(worker) {
  return new Promise((resolve) => {
    const timer = setTimeout(
      () => resolve({ type: 'failed', error: `no connection within ${CONNECT_WAIT_MS} ms` }),
      CONNECT_WAIT_MS,
    );
    worker.once('message', (msg) => {
      clearTimeout(timer);
      resolve(msg);
    });
    worker.once('error', (err) => {
      clearTimeout(timer);
      resolve({ type: 'failed', error: String(err) });
    });
  });
}

// The running bridge (a Worker, to be terminated after the invocation), or null when the
// debugger could not be reached and the handler runs without it.
async function startDebugging(target) {
  const where = `${target.host}:${target.port}`;
  const inspector = require('inspector');
  const { Worker } = require('worker_threads');
  if (!inspector.url()) inspector.open(0, '127.0.0.1', false);
  const worker = new Worker(path.join(__dirname, 'bridge.js'), {
    workerData: {
      host: String(target.host),
      port: Number(target.port),
      inspectorPort: Number(new URL(inspector.url()).port),
      maxConnections: MAX_BRIDGE_CONNECTIONS,
    },
  });
  const first = await firstMessage(worker);
  worker.on('error', (err) => console.error(`sor: debugger bridge failed: ${err.message}`));
  if (first.type !== 'connected') {
    console.error(`sor: debugger at ${where} unreachable (${first.error}); running without it`);
    await worker.terminate();
    return null;
  }
  console.error(`sor: connected to the debugger at ${where}; waiting for it to attach`);
  inspector.waitForDebugger(); // returns once the debugger sends Runtime.runIfWaitingForDebugger
  return worker;
}

module.exports = { startDebugging };
