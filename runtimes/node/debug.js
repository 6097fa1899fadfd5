'use strict';
// Remote debugging for one invocation: the inspector listens on 127.0.0.1 only, and a bridge
// (bridge.js, in a worker thread) connects out to the debugger's host:port. The invocation waits
// for the debugger to attach (Runtime.runIfWaitingForDebugger), but only once the relay has
// accepted the bridge's connection: an unreachable debugger never holds a handler up.
// The inspector lives for one invocation only: once it has answered, the bridge is terminated and
// the inspector closed, so no other process in the sandbox can attach to its port afterwards.

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

// Ends a debug session: the bridge first (its connections to the inspector go with it), then the
// inspector, unless it was open before the invocation (node --inspect): that one is not ours.
function sessionEnder(inspector, worker, openedHere) {
  let ended = false;
  return async () => {
    if (ended) return;
    ended = true;
    try {
      if (worker) await worker.terminate();
    } finally {
      if (openedHere && inspector.url()) inspector.close();
    }
  };
}

// The running session, as {end}: call end() once the invocation has answered. Null when the
// debugger could not be reached: the handler runs without it and the inspector is closed already.
async function startDebugging(target) {
  const where = `${target.host}:${target.port}`;
  const inspector = require('inspector');
  const { Worker } = require('worker_threads');
  const openedHere = !inspector.url();
  if (openedHere) inspector.open(0, '127.0.0.1', false);
  let worker = null;
  try {
    worker = new Worker(path.join(__dirname, 'bridge.js'), {
      workerData: {
        host: String(target.host),
        port: Number(target.port),
        inspectorPort: Number(new URL(inspector.url()).port),
        maxConnections: MAX_BRIDGE_CONNECTIONS,
      },
    });
  } catch (err) {
    await sessionEnder(inspector, null, openedHere)();
    throw err;
  }
  const end = sessionEnder(inspector, worker, openedHere);
  const first = await firstMessage(worker);
  worker.on('error', (err) => console.error(`sor: debugger bridge failed: ${err.message}`));
  if (first.type !== 'connected') {
    console.error(`sor: debugger at ${where} unreachable (${first.error}); running without it`);
    await end();
    return null;
  }
  console.error(`sor: connected to the debugger at ${where}; waiting for it to attach`);
  inspector.waitForDebugger(); // returns once the debugger sends Runtime.runIfWaitingForDebugger
  return { end };
}

module.exports = { startDebugging };
