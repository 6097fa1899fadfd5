#!/usr/bin/env node
'use strict';
// sor's language runtime adapter for Node.js 18+ (protocol version 1, see runtimes/PROTOCOL.md).
// Plain Node with no dependencies: it loads the handler once, then answers invoke messages read
// as JSON lines from fd 3 with JSON lines on fd 4. stdout and stderr stay the function's logs.

const fs = require('fs');
const net = require('net');
const path = require('path');
const readline = require('readline');
const util = require('util');
const { pathToFileURL } = require('url');

// Lambda's own error classes: the class name prefixed with "Runtime." is the errorType.
function lambdaError(name) {
  const cls = class extends Error {};
  Object.defineProperty(cls, 'name', { value: name });
  cls.prototype.name = `Runtime.${name}`;
  return cls;
}
const ImportModuleError = lambdaError('ImportModuleError');
const HandlerNotFound = lambdaError('HandlerNotFound');
const MalformedHandlerName = lambdaError('MalformedHandlerName');
const UserCodeSyntaxError = lambdaError('UserCodeSyntaxError');
const UnhandledPromiseRejection = lambdaError('UnhandledPromiseRejection');

const CONNECT_WAIT_MS = 5000; // how long a debug invocation waits for its bridge to connect
const MAX_BRIDGE_CONNECTIONS = 16;

// ---------------------------------------------------------------------------------------------
// Errors, formatted as Node's Lambda runtime formats them (its "trace" is our "stackTrace").

function isErrorLike(value) {
  return (
    util.types.isNativeError(value) ||
    (value !== null &&
      typeof value === 'object' &&
      typeof value.name === 'string' &&
      typeof value.message === 'string')
  );
}

function errorPayload(err) {
  try {
    if (isErrorLike(err)) {
      return {
        errorType: String(err.name),
        errorMessage: String(err.message),
        stackTrace: typeof err.stack === 'string' ? err.stack.split('\n') : [],
      };
    }
    return { errorType: typeof err, errorMessage: String(err), stackTrace: [] };
  } catch (_) {
    return {
      errorType: 'handled',
      errorMessage:
        'callback called with Error argument, but there was a problem while retrieving one or ' +
        'more of its message, name, and stack',
      stackTrace: [],
    };
  }
}

// A loader error wrapping the user's error: its message is the original error as a string.
function wrapError(Cls, cause) {
  const err = new Cls(String(cause));
  if (cause && typeof cause.stack === 'string') {
    const frames = cause.stack.split('\n').filter((line) => /^\s+at /.test(line));
    err.stack = [`${err.name}: ${err.message}`, ...frames].join('\n');
  }
  return err;
}

// ---------------------------------------------------------------------------------------------
// Loading the handler: "dir/file.export" (the export may be a dotted path), as Lambda does.

function packageIsModule(dir) {
  for (let current = dir; ; current = path.dirname(current)) {
    const file = path.join(current, 'package.json');
    if (fs.existsSync(file)) {
      try {
        return JSON.parse(fs.readFileSync(file, 'utf8')).type === 'module';
      } catch (_) {
        return false;
      }
    }
    if (path.dirname(current) === current) return false;
  }
}

async function loadFile(file) {
  const ext = path.extname(file);
  if (ext === '.mjs' || (ext === '.js' && packageIsModule(path.dirname(file)))) {
    return import(pathToFileURL(file).href);
  }
  return require(file);
}

async function importModule(dir, name) {
  for (const ext of ['.js', '.mjs', '.cjs']) {
    const file = path.join(dir, name + ext);
    if (fs.existsSync(file) && fs.statSync(file).isFile()) return loadFile(file);
  }
  // No such file: a package (node_modules or a folder), resolved from the handler's folder.
  return loadFile(require.resolve(name, { paths: [dir] }));
}

async function loadHandler(root, handlerString) {
  if (!handlerString) {
    throw new MalformedHandlerName('no handler: SOR_HANDLER is empty');
  }
  if (handlerString.includes('..') || path.isAbsolute(handlerString)) {
    throw new MalformedHandlerName(
      `'${handlerString}' is not a valid handler name: it must stay inside the task root`,
    );
  }
  const base = path.basename(handlerString);
  const moduleRoot = handlerString.slice(0, handlerString.length - base.length);
  const match = /^([^.]*)\.(.*)$/.exec(base);
  if (!match || !match[1] || !match[2]) {
    throw new MalformedHandlerName(`Bad handler ${handlerString}`);
  }
  let mod;
  try {
    mod = await importModule(path.resolve(root, moduleRoot), match[1]);
  } catch (err) {
    if (err instanceof SyntaxError) throw wrapError(UserCodeSyntaxError, err);
    if (err && (err.code === 'MODULE_NOT_FOUND' || err.code === 'ERR_MODULE_NOT_FOUND')) {
      throw wrapError(ImportModuleError, err);
    }
    throw err;
  }
  const func = match[2].split('.').reduce((obj, key) => (obj == null ? undefined : obj[key]), mod);
  if (func === undefined || func === null) {
    throw new HandlerNotFound(`${handlerString} is undefined or not exported`);
  }
  if (typeof func !== 'function') {
    throw new HandlerNotFound(`${handlerString} is not a function`);
  }
  return func;
}

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
// Remote debugging: the inspector listens on 127.0.0.1 only, and a bridge running in a worker
// thread (so it keeps moving bytes while the main thread is paused at a breakpoint) connects OUT
// to the debugger's host:port. The bridge keeps one idle connection ready, because a debugger
// opens several (an HTTP request for /json/list, then the WebSocket).

const BRIDGE = `
const { parentPort, workerData } = require('worker_threads');
const net = require('net');
const { host, port, inspectorPort, maxConnections } = workerData;
let opened = 0;
let connectedOnce = false;
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
    local = net.connect(inspectorPort, '127.0.0.1');
    local.on('error', () => remote.destroy());
    local.on('close', () => remote.destroy());
    local.write(chunk);
    remote.pipe(local);
    local.pipe(remote);
  });
  remote.on('error', (err) => {
    if (!connectedOnce) parentPort.postMessage({ type: 'failed', error: err.message });
  });
  remote.on('close', () => {
    if (local) local.destroy();
    else if (connectedOnce) { opened--; setTimeout(openOne, 200); } // idle one dropped: renew
  });
}
openOne();
`;

async function startDebugging(target) {
  const where = `${target.host}:${target.port}`;
  const inspector = require('inspector');
  const { Worker } = require('worker_threads');
  if (!inspector.url()) inspector.open(0, '127.0.0.1', false);
  const inspectorPort = Number(new URL(inspector.url()).port);
  const worker = new Worker(BRIDGE, {
    eval: true,
    workerData: {
      host: target.host,
      port: Number(target.port),
      inspectorPort,
      maxConnections: MAX_BRIDGE_CONNECTIONS,
    },
  });
  const first = await new Promise((resolve) => {
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

// ---------------------------------------------------------------------------------------------
// The loop.

let current = null; // the outcome of the running invocation, for uncaught errors
let outFd = 4;

function send(message) {
  writeAll(outFd, `${JSON.stringify(message)}\n`);
}

function sendResult(id, value) {
  let json;
  try {
    json = JSON.stringify(value === undefined ? null : value);
  } catch (err) {
    send({ type: 'error', id, error: errorPayload(err) });
    return;
  }
  writeAll(outFd, `{"type":"result","id":${JSON.stringify(id)},"result":${json ?? 'null'}}\n`);
}

async function invoke(handler, message) {
  const ctx = message.context && typeof message.context === 'object' ? message.context : {};
  if (ctx.trace_id) process.env._X_AMZN_TRACE_ID = String(ctx.trace_id);
  else delete process.env._X_AMZN_TRACE_ID;
  let bridge = null;
  if (message.debug && message.debug.host && message.debug.port) {
    try {
      bridge = await startDebugging(message.debug);
    } catch (err) {
      console.error(`sor: remote debugging failed: ${err.message}`);
    }
  }
  try {
    const outcome = await runHandler(handler, message.event, ctx);
    if (outcome.ok) sendResult(message.id, outcome.value);
    else send({ type: 'error', id: message.id, error: errorPayload(outcome.err) });
  } finally {
    current = null;
    if (bridge) await bridge.terminate();
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
