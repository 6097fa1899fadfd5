'use strict';
// Remote debugging for one invocation: the inspector listens on 127.0.0.1 only, and a bridge
// (bridge.js, in a worker thread) connects out to the debugger's host:port. The invocation waits
// for the debugger to attach (Runtime.runIfWaitingForDebugger), but only once a debugger has
// asked the bridge for the inspector's WebSocket, and only for half the time the invocation has
// left (connecting included): a debugger that is unreachable or never attaches delays the
// handler, never prevents it. The inspector lives for one invocation only: once it has answered,
// the bridge is terminated and the inspector closed, so no other process in the sandbox can
// attach to its port afterwards.

const path = require('path');

const CONNECT_WAIT_MS = 5000;
const NO_DEADLINE_LEFT_MS = 60000; // the time assumed left when the invoke carries no deadline
const MAX_BRIDGE_CONNECTIONS = 16;

// What the bridge reported so far, and until(test, ms): a promise of test() once it holds or ms
// have passed.
function watchBridge(worker) {
  const state = { connected: false, attached: false, failure: null };
  let wake = null;
  worker.on('message', (msg) => {
    if (msg.type === 'connected') state.connected = true;
    else if (msg.type === 'attached') state.attached = true;
    else if (msg.type === 'failed') state.failure = msg.error;
    if (wake) wake();
  });
  worker.on('error', (err) => {
    console.error(`sor: debugger bridge failed: ${err.message}`);
    state.failure = state.failure || String(err);
    if (wake) wake();
  });
  state.until = (test, ms) =>
    new Promise((resolve) => {
      const finish = () => {
        clearTimeout(timer);
        wake = null;
        resolve(test());
      };
      const timer = setTimeout(finish, Math.max(0, ms));
      wake = () => {
        if (test()) finish();
      };
      wake();
    });
  return state;
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
// deadlineMs is the invocation's deadline (ms since the epoch), or 0 when unknown.
async function startDebugging(target, deadlineMs) {
  const where = `${target.host}:${target.port}`;
  const left = deadlineMs ? Number(deadlineMs) - Date.now() : NO_DEADLINE_LEFT_MS;
  const budgetEnd = Date.now() + Math.max(0, left / 2); // for connecting and attaching together
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
  const bridge = watchBridge(worker);
  const connectMs = Math.min(CONNECT_WAIT_MS, budgetEnd - Date.now());
  await bridge.until(() => bridge.connected || bridge.failure !== null, connectMs);
  if (!bridge.connected) {
    const why = bridge.failure || `no connection within ${Math.max(0, Math.round(connectMs))} ms`;
    console.error(`sor: debugger at ${where} unreachable (${why}); running without it`);
    await end();
    return null;
  }
  console.error(`sor: connected to the debugger at ${where}; waiting for it to attach`);
  const attached = await bridge.until(() => bridge.attached, budgetEnd - Date.now());
  worker.postMessage({ type: 'go' }); // the bridge lets the held WebSocket through ...
  if (attached) {
    inspector.waitForDebugger(); // ... and returns once the debugger sends runIfWaitingForDebugger
  } else {
    // The session stays open until the invocation ends: a late debugger can still attach.
    console.error(`sor: no debugger attached through ${where} in time; running without it`);
  }
  return { end };
}

module.exports = { startDebugging };
