#!/usr/bin/env node
'use strict';
// sor's language runtime adapter for Node.js 18+ (protocol version 1, see runtimes/PROTOCOL.md).
// Plain Node with no dependencies: it loads the handler once (loader.js), then answers invoke
// messages read as JSON lines from fd 3 with JSON lines on fd 4; stdout and stderr stay the
// function's logs. Remote debugging (debug.js, bridge.js) is loaded only when asked for.

const fs = require('fs');
const net = require('net');
const readline = require('readline');
const { UnhandledPromiseRejection, errorPayload } = require('./errors.js');
const { loadHandler } = require('./loader.js');

// ---------------------------------------------------------------------------------------------
// The protocol channel.

// Reopen an inherited pipe as a new close-on-exec descriptor, so that processes the handler
// starts cannot write to (or hold open) the protocol pipes. Sockets cannot be reopened this way.
function privateFd(fd, flags) {
  try {
    const copy = fs.openSync(`/proc/self/fd/${fd}`, flags);
    fs.closeSync(fd);
    return copy;
  } catch (_) {
    return fd;
  }
}

const pause = new Int32Array(new SharedArrayBuffer(4));

function writeAll(fd, text) {
  const buf = Buffer.from(text, 'utf8');
  for (let offset = 0; offset < buf.length; ) {
    try {
      offset += fs.writeSync(fd, buf, offset, buf.length - offset);
    } catch (err) {
      if (err.code !== 'EAGAIN') throw err;
      Atomics.wait(pause, 0, 0, 1); // a non-blocking pipe is full: let sor read
    }
  }
}

function lineReader(fd) {
  const stat = fs.fstatSync(fd);
  const stream =
    stat.isFIFO() || stat.isSocket()
      ? new net.Socket({ fd, readable: true, writable: false })
      : fs.createReadStream(null, { fd });
  return readline.createInterface({ input: stream, crlfDelay: Infinity });
}

// ---------------------------------------------------------------------------------------------
// The context object of Node's Lambda runtime.

function parseMaybe(value) {
  if (value === null || value === undefined || value === '') return undefined;
  if (typeof value !== 'string') return value;
  try {
    return JSON.parse(value);
  } catch (_) {
    return undefined;
  }
}

function makeContext(ctx, outcome) {
  const deadline = Number(ctx.deadline_ms);
  let waits = true;
  return {
    get callbackWaitsForEmptyEventLoop() {
      return waits;
    },
    set callbackWaitsForEmptyEventLoop(value) {
      waits = value;
    },
    succeed: (result) => outcome.succeed(result),
    fail: (err) => outcome.fail(err),
    done: (err, result) => (err !== undefined && err !== null ? outcome.fail(err) : outcome.succeed(result)),
    functionVersion: ctx.function_version,
    functionName: ctx.function_name,
    memoryLimitInMB: ctx.memory_limit_in_mb === undefined ? undefined : String(ctx.memory_limit_in_mb),
    logGroupName: ctx.log_group_name,
    logStreamName: ctx.log_stream_name,
    clientContext: parseMaybe(ctx.client_context),
    identity: parseMaybe(ctx.identity),
    invokedFunctionArn: ctx.invoked_function_arn,
    awsRequestId: ctx.aws_request_id,
    getRemainingTimeInMillis: () => deadline - Date.now(),
  };
}

// A non-async handler that has not called back is answered with null once the work it left
// behind (timers, sockets) is done, as Lambda answers it once the event loop drains.
function whenDrained(baseline, isSettled, then) {
  const poll = () => {
    if (isSettled()) return;
    const busy = process.getActiveResourcesInfo().length - 1; // minus this poll's own timer
    if (busy <= baseline) then();
    else setTimeout(poll, 10);
  };
  setTimeout(poll, 10);
}

function runHandler(handler, event, ctx) {
  return new Promise((resolve) => {
    let settled = false;
    const outcome = {
      succeed(value) {
        if (!settled) {
          settled = true;
          resolve({ ok: true, value });
        }
      },
      fail(err) {
        if (!settled) {
          settled = true;
          resolve({ ok: false, err });
        }
      },
    };
    current = outcome;
    const callback = (err, value) =>
      err !== undefined && err !== null ? outcome.fail(err) : outcome.succeed(value);
    const baseline = process.getActiveResourcesInfo().length;
    let returned;
    try {
      returned = handler(event, makeContext(ctx, outcome), callback);
    } catch (err) {
      outcome.fail(err);
      return;
    }
    if (returned && typeof returned.then === 'function') {
      Promise.resolve(returned).then(outcome.succeed, outcome.fail);
    } else {
      // As on Lambda, what a non-async handler returns is ignored: it answers through the
      // callback or context.succeed/fail/done, or with null once its work is done.
      whenDrained(baseline, () => settled, () => outcome.succeed(null));
    }
  });
}

// ---------------------------------------------------------------------------------------------
// The loop.

let current = null; // the outcome of the running invocation, for uncaught errors
let outFd = 4;

function send(message) {
  writeAll(outFd, `${JSON.stringify(message)}\n`);
}

function sendResult(id, seal, value) {
  let json;
  try {
    json = JSON.stringify(value === undefined ? null : value);
  } catch (err) {
    send({ type: 'error', id, seal, error: errorPayload(err) });
    return;
  }
  const sealed = typeof seal === 'string' ? `,"seal":${JSON.stringify(seal)}` : '';
  writeAll(outFd, `{"type":"result","id":${JSON.stringify(id)}${sealed},"result":${json ?? 'null'}}\n`);
}

async function invoke(handler, message) {
  const seal = message.seal; // echoed in the answer, never within the handler's reach
  delete message.seal;
  const ctx = message.context && typeof message.context === 'object' ? message.context : {};
  if (ctx.trace_id) process.env._X_AMZN_TRACE_ID = String(ctx.trace_id);
  else delete process.env._X_AMZN_TRACE_ID;
  let debugging = null;
  if (message.debug && message.debug.host && message.debug.port) {
    try {
      debugging = await require('./debug.js').startDebugging(message.debug, ctx.deadline_ms);
    } catch (err) {
      console.error(`sor: remote debugging failed: ${err.message}`);
    }
  }
  try {
    const outcome = await runHandler(handler, message.event, ctx);
    if (outcome.ok) sendResult(message.id, seal, outcome.value);
    else send({ type: 'error', id: message.id, seal, error: errorPayload(outcome.err) });
  } finally {
    current = null;
    if (debugging) await debugging.end(); // the bridge, then the inspector: see debug.js
  }
}

function fatal(err) {
  // As Lambda does: the running invocation fails with the error, then the process ends.
  const payload = errorPayload(err);
  if (current) current.fail(err);
  else console.error(`${payload.errorType}: ${payload.errorMessage}`);
  setImmediate(() => process.exit(129));
}

async function main() {
  const env = process.env;
  const inFd = privateFd(Number(env.SOR_IN_FD || 3), 'r');
  outFd = privateFd(Number(env.SOR_OUT_FD || 4), 'w');
  delete env.SOR_IN_FD;
  delete env.SOR_OUT_FD;
  if (env.SOR_PROTOCOL && env.SOR_PROTOCOL !== '1') {
    send({
      type: 'init_error',
      error: {
        errorType: 'Runtime.UnsupportedProtocol',
        errorMessage: `this adapter speaks protocol 1, not ${env.SOR_PROTOCOL}`,
        stackTrace: [],
      },
    });
    process.exit(1);
  }
  let handler;
  try {
    handler = await loadHandler(env.LAMBDA_TASK_ROOT || process.cwd(), env.SOR_HANDLER || env._HANDLER);
  } catch (err) {
    send({ type: 'init_error', error: errorPayload(err) });
    process.exit(1);
  }
  process.on('uncaughtException', fatal);
  process.on('unhandledRejection', (reason) => {
    const err = new UnhandledPromiseRejection(String(reason));
    if (reason && typeof reason.stack === 'string') err.stack = reason.stack;
    fatal(err);
  });
  const lines = lineReader(inFd);
  let queue = Promise.resolve();
  lines.on('line', (line) => {
    queue = queue.then(() => handle(handler, line));
  });
  lines.on('close', () => queue.then(() => process.exit(0))); // sor closed the pipe: we are done
  send({ type: 'ready' });
}

async function handle(handler, line) {
  if (!line.trim()) return;
  let message;
  try {
    message = JSON.parse(line);
  } catch (err) {
    console.error(`sor: ignoring a request that is not JSON (${err.message})`);
    return;
  }
  if (message && message.type === 'invoke') await invoke(handler, message);
  else console.error(`sor: ignoring a request of type ${JSON.stringify(message && message.type)}`);
}

main();
