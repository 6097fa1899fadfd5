'use strict';
// The debugger bridge, run in a worker thread so that it keeps moving bytes while the main
// thread is paused at a breakpoint. It connects OUT to the debugger's relay (workerData.host,
// .port) and joins each connection that starts carrying traffic to a new connection to the local
// inspector. A debugger opens several connections (an HTTP request for /json/list, then the
// WebSocket), so one idle connection is always kept ready. Messages to the main thread:
// {type: 'connected'} once the relay accepted, {type: 'failed', error} if it never did, and
// {type: 'attached'} when a debugger asks for the WebSocket. That upgrade is held until the main
// thread answers {type: 'go'}: it then blocks in inspector.waitForDebugger() before the session
// can send Runtime.runIfWaitingForDebugger, which would otherwise be lost and block it for good.

const net = require('net');
const { parentPort, workerData } = require('worker_threads');

const { host, port, inspectorPort, maxConnections } = workerData;
const RENEW_MS = 200; // an idle connection the relay dropped is replaced after this long
const UPGRADE = /^GET [^\r\n]* HTTP\/1\.[01]\r\n(?:[^\r\n]*\r\n)*?upgrade:[ \t]*websocket/i;
let opened = 0;
let connectedOnce = false;
let released = false; // the main thread said 'go': upgrades pass straight through
const held = [];

parentPort.on('message', (msg) => {
  if (msg && msg.type === 'go') {
    released = true;
    for (const join of held.splice(0)) join();
  }
});

function openOne() {
  if (opened >= maxConnections) return;
  opened++;
  const remote = net.connect({ host, port });
  let local = null;
  remote.on('connect', () => {
    if (!connectedOnce) {
      connectedOnce = true;
      parentPort.postMessage({ type: 'connected' });
    }
  });
  remote.once('data', (chunk) => {
    remote.pause();
    openOne();
    const join = () => {
      if (remote.destroyed) return;
      local = net.connect(inspectorPort, '127.0.0.1');
      local.on('error', () => remote.destroy());
      local.on('close', () => remote.destroy());
      local.write(chunk);
      remote.pipe(local);
      local.pipe(remote);
    };
    if (released || !UPGRADE.test(chunk.toString('latin1'))) {
      join();
    } else {
      held.push(join);
      parentPort.postMessage({ type: 'attached' });
    }
  });
  remote.on('error', (err) => {
    if (!connectedOnce) parentPort.postMessage({ type: 'failed', error: err.message });
  });
  remote.on('close', () => {
    if (local) {
      local.destroy();
    } else if (connectedOnce) {
      opened--;
      setTimeout(openOne, RENEW_MS);
    }
  });
}

openOne();
