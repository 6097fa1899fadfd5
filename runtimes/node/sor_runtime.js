#!/usr/bin/env node
'use strict';
// sor's language runtime adapter for Node.js 18+ (protocol version 1, see runtimes/PROTOCOL.md).
// Plain Node with no dependencies: it loads the handler once (loader.js), then answers invoke
// messages read as JSON lines from fd 3 with JSON lines on fd 4; stdout and stderr stay the
// function's logs, written as Node's Lambda runtime writes them (logs.js). Remote debugging
// (debug.js, bridge.js) is loaded only when asked for.

const { openAnswers, privateFd, readLines } = require('./channel.js');
// Lambda's error names and formats, loaded at the first error: a cold start that succeeds never
// needs them.
const errors = () => require('./errors.js');
const { makeContext } = require('./context.js');
const { installGlobal, isStreaming, loadHandler } = require('./loader.js');
const { ids, patchConsole } = require('./logs.js');
const { invocations } = require('./concurrency.js');

// ---------------------------------------------------------------------------------------------
// The protocol channel.

// A line as text. sor writes a lone surrogate of a JSON string (an event's "\ud800") as its
// three-byte form ED A0..BF 80..BF, which strict UTF-8 refuses and would turn into three U+FFFD:
// decoded as the surrogate it is, it round trips as Lambda's runtime echoes it.
function decodeLine(buf) {
  let at = buf.indexOf(0xed);
  if (at === -1) return buf.toString('utf8');
  let text = '';
  let from = 0;
  for (; at !== -1 && at + 2 < buf.length; at = buf.indexOf(0xed, at + 1)) {
    const b1 = buf[at + 1];
    const b2 = buf[at + 2];
    if (b1 >= 0xa0 && b1 <= 0xbf && b2 >= 0x80 && b2 <= 0xbf) {
      const surrogate = 0xd000 | ((b1 & 0x3f) << 6) | (b2 & 0x3f);
      text += buf.toString('utf8', from, at) + String.fromCharCode(surrogate);
      from = at + 3;
    }
  }
  return text + buf.toString('utf8', from);
}

// ---------------------------------------------------------------------------------------------
// Calling the handler.

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

function runHandler(user, event, ctx) {
  return new Promise((resolve) => {
    let settled = false;
    const outcome = {
      succeed(value) {
        if (!settled) {
          settled = true;
          running.delete(outcome);
          resolve({ ok: true, value });
        }
      },
      fail(err, logged = false) {
        if (!settled) {
          settled = true;
          running.delete(outcome);
          // logged now, as the runtime logs it: an Error made of a thrown string has the
          // handler's frames in its stack
          if (!logged) logError('Invoke Error', err);
          resolve({ ok: false, err, logged: true });
        }
      },
    };
    running.add(outcome);
    const callback = (err, value) =>
      err !== undefined && err !== null ? outcome.fail(err) : outcome.succeed(value);
    const context = makeContext(ctx, outcome);
    // Called from a fresh task, so that the stack frames below the handler's (in its errors'
    // traces and logs) are two, not the adapter's whole call chain.
    setImmediate(function callHandler() {
      const baseline = process.getActiveResourcesInfo().length;
      let returned;
      try {
        returned = user.handler(event, context, callback);
      } catch (err) {
        callback(err); // as the runtime does: `throw undefined` is a success
        return;
      }
      if (returned && typeof returned.then === 'function') {
        Promise.resolve(returned).then(context.succeed, context.fail);
      } else {
        // As on Lambda, what a non-async handler returns is ignored: it answers through the
        // callback or context.succeed/fail/done, or with null once its work is done.
        whenDrained(baseline, () => settled, () => outcome.succeed(null));
      }
    });
  });
}

// ---------------------------------------------------------------------------------------------
// The loop.

const running = new Set(); // the outcomes of the running invocations, for uncaught errors
let mode = null; // how many run at once, where their ids live, the requests (concurrency.js)
let answers = null; // the answer descriptor's ordered queue (channel.js)
let logError = (label, err) => console.error(label, err); // until the console is patched
let ready = false;

function send(message) {
  answers.write(`${JSON.stringify(message)}\n`);
}

// Answers carry the invoke's seal when it has one (PROTOCOL.md, "The seal"): it is never given to
// the handler, only echoed.

// A handler error: logged as the runtime logs it (unless it was already), then answered with its
// X-Ray cause.
function sendError(id, seal, err, logged = false) {
  if (!logged) logError('Invoke Error', err);
  const { errorPayload, xrayCause } = errors();
  send({ type: 'error', id, seal, error: errorPayload(err), xray: xrayCause(err) });
}

function sendResult(id, seal, value) {
  let json;
  try {
    json = JSON.stringify(value === undefined ? null : value);
  } catch (_) {
    sendError(id, seal, new Error('Unable to stringify response body'));
    return;
  }
  const sealed = typeof seal === 'string' ? `,"seal":${JSON.stringify(seal)}` : '';
  const head = `{"type":"result","id":${JSON.stringify(id)}${sealed},"result":`;
  answers.write(`${head}${json ?? 'null'}}\n`);
}

// What a streaming invocation writes its messages with (streaming.js).
const streamWire = (id, seal) => ({
  id,
  seal,
  logError,
  whenDrained,
  write: (line, done) => answers.write(line, done),
  track(outcome) {
    this.outcome = outcome; // failed by an uncaught error while it runs
    running.add(outcome);
  },
});

async function invoke(user, message, event) {
  const { context: ctx, seal } = message;
  let debugging = null;
  if (message.debug && message.debug.host && message.debug.port) {
    try {
      debugging = await require('./debug.js').startDebugging(message.debug, ctx.deadline_ms);
    } catch (err) {
      console.error(`sor: remote debugging failed: ${err.message}`);
    }
  }
  try {
    let outcome;
    const wire = user.streams ? streamWire(message.id, seal) : null;
    try {
      // An event that is not JSON fails its invocation with JSON.parse's SyntaxError, as on
      // Lambda, instead of breaking the protocol.
      outcome = await (user.streams
        ? require('./streaming.js').runStreaming(user, event(), ctx, wire)
        : runHandler(user, event(), ctx));
    } catch (err) {
      outcome = { ok: false, err };
    }
    if (wire?.outcome) running.delete(wire.outcome);
    if (!outcome.ok) sendError(message.id, seal, outcome.err, outcome.logged);
    else if (!outcome.streamed) sendResult(message.id, seal, outcome.value); // a stream sent `end`
  } finally {
    if (debugging) await debugging.end(); // the bridge, then the inspector: see debug.js
  }
}

function fatal(err, label, status) {
  // As Lambda does: the running invocation fails with the error, then the process ends; before
  // `ready` it is the init error.
  logError(label, err);
  mode?.input?.destroy(); // closed: an invoke sor writes now is refused, for a new process
  if (running.size) for (const outcome of [...running]) outcome.fail(err, true);
  else if (!ready) send({ type: 'init_error', error: errors().errorPayload(err) });
  setImmediate(() => answers.flush(() => process.exit(status))); // after the answer above
}

// ---------------------------------------------------------------------------------------------
// Messages from sor. Nothing sor sends may leave it waiting: a line that is not a message this
// adapter understands is answered at once (see "Unreadable messages" in PROTOCOL.md).

// Ends the process on a line that names no invocation to answer: sor sees the exit at once.
function protocolError(what) {
  process.stderr.write(`sor: protocol error: ${what}; the Node adapter stops\n`);
  process.exit(2);
}

function describe(line) {
  return line.length > 200 ? `${JSON.stringify(line.slice(0, 200))}...` : JSON.stringify(line);
}

const INVOKE_HEAD = /^\s*\{\s*"type"\s*:\s*"invoke"\s*,\s*"id"\s*:\s*("(?:[^"\\]|\\.)*")/;
const EVENT_KEY = /\s*,\s*"event"\s*:/y;

// The id of an invoke line that is not JSON, read from its head (sor writes "type" and "id"
// first), or undefined.
function idOfBrokenLine(line) {
  const head = INVOKE_HEAD.exec(line);
  if (!head) return undefined;
  try {
    return JSON.parse(head[1]);
  } catch (_) {
    return undefined;
  }
}

// The text of the event of an invoke line that is not JSON: what lies between "event": and the
// "context" member whose rest of the line is JSON (sor writes the context after the event).
// Undefined when the envelope itself is broken.
function eventTextOf(line) {
  EVENT_KEY.lastIndex = INVOKE_HEAD.exec(line)[0].length;
  if (!EVENT_KEY.exec(line)) return undefined;
  const start = EVENT_KEY.lastIndex;
  const candidates = [];
  const key = /,\s*"context"\s*:/g;
  key.lastIndex = start;
  for (let found = key.exec(line); found; found = key.exec(line)) candidates.push(found.index);
  for (const at of candidates.reverse()) {
    try {
      const rest = JSON.parse(`{${line.slice(at + 1)}`);
      if (rest.context && typeof rest.context === 'object') {
        return { text: line.slice(start, at).replace(/^[ \t\r\n]+|[ \t\r\n]+$/g, ''), rest };
      }
    } catch (_) {
      // not this one: the text belongs to the event
    }
  }
  return undefined;
}

function parseMessage(line) {
  let message;
  try {
    message = JSON.parse(line);
  } catch (err) {
    const id = idOfBrokenLine(line);
    if (id === undefined) {
      protocolError(`a request that is not JSON (${err.message}): ${describe(line)}`);
    }
    const event = eventTextOf(line);
    if (event) {
      // Only the event is not JSON: its invocation fails as the runtime's would.
      const message = { type: 'invoke', ...event.rest, id };
      return { message, event: () => JSON.parse(event.text) };
    }
    const seal = /"seal"\s*:\s*"([0-9A-Za-z]+)"\s*\}\s*$/.exec(line.slice(-200));
    const why = `the invoke message is not JSON: ${err.message}`;
    return invalid(id, seal ? seal[1] : undefined, 'Runtime.UnmarshalError', why);
  }
  if (!message || typeof message !== 'object' || Array.isArray(message)) {
    protocolError(`a request that is not a JSON object: ${describe(line)}`);
  }
  const type = JSON.stringify(message.type);
  if (typeof message.id !== 'string' || !message.id) {
    protocolError(`a request of type ${type} without an id: ${describe(line)}`);
  }
  if (message.type !== 'invoke') {
    const why = `a message of unknown type ${type}`;
    return invalid(message.id, message.seal, 'Runtime.InvalidRequest', why);
  }
  if (!('event' in message) || !message.context || typeof message.context !== 'object') {
    const why = 'an invoke message without an event or a context object';
    return invalid(message.id, message.seal, 'Runtime.InvalidRequest', why);
  }
  return { message, event: () => message.event };
}

function invalid(id, seal, errorType, why) {
  return { invalid: { id, seal: typeof seal === 'string' ? seal : undefined, errorType, why } };
}

async function handle(user, line) {
  if (!line.trim()) return; // not a message
  const parsed = parseMessage(line);
  if (parsed.invalid) {
    const { id, seal, errorType, why } = parsed.invalid;
    const errorMessage = `the Node adapter cannot read this request: ${why}`;
    process.stderr.write(`sor: ${errorMessage}\n`);
    send({ type: 'error', id, seal, error: { errorType, errorMessage, stackTrace: [] } });
    return;
  }
  await mode.run(parsed.message, () => invoke(user, parsed.message, parsed.event));
}

// ---------------------------------------------------------------------------------------------
// Start.

// NODE_PATH as Lambda's Node runtime sets it when the function has none, with the layer folder
// where sor's layer is ($SOR_LAYER_DIR, /opt on Lambda): a Node layer's modules resolve.
function setNodePath(env) {
  if (env.NODE_PATH) return;
  const layer = env.SOR_LAYER_DIR || '/opt';
  const runtimeDir = env.LAMBDA_RUNTIME_DIR || '/var/runtime';
  const major = process.versions.node.split('.')[0];
  env.NODE_PATH = [
    `${layer}/nodejs/node${major}/node_modules`,
    `${layer}/nodejs/node_modules`,
    `${runtimeDir}/node_modules`,
    runtimeDir,
    env.LAMBDA_TASK_ROOT || process.cwd(),
  ].join(':');
  module.constructor._initPaths(); // this process's own require reads it only at start (Module)
}

// The request lines: `first()` reads the `load` line of a deferred load, `serve` hands the next
// ones to the loop (with the lines that came meanwhile, in order). Nothing is read while the
// handler loads, as nothing was before it: a module whose top-level await never settles ends the
// process (sor sees it exit) instead of leaving sor waiting.
function requests(inFd) {
  const early = [];
  let ended = false;
  let onLine = null;
  let onEnd = null;
  const input = readLines(
    inFd,
    (buf) => (onLine ? onLine(buf) : early.push(buf)),
    () => (onEnd ? onEnd() : (ended = true)),
  );
  return {
    input,
    // The next line that is not empty (a Buffer), or null at end of file.
    first: () =>
      new Promise((resolve) => {
        const take = (value) => {
          onLine = onEnd = null;
          input.pause();
          resolve(value);
        };
        onLine = (buf) => (decodeLine(buf).trim() ? take(buf) : undefined);
        onEnd = () => take(null);
        input.resume();
      }),
    // Replays the lines that came early; the caller resumes the reading.
    serve(line, end) {
      onLine = line;
      onEnd = end;
      for (const buf of early.splice(0)) line(buf);
      if (ended) end();
    },
  };
}

// Under SOR_LOAD=deferred (PROTOCOL.md, "deferred load"): sor started this process before it read
// its config and confirms it with `load`. Returns once `load` came; ends the process at end of
// file (sor chose another runtime: quietly, no user code ran) or on any other first message.
async function waitForLoad(lines) {
  const buf = await lines.first();
  if (buf === null) process.exit(0);
  const line = decodeLine(buf);
  let message;
  try {
    message = JSON.parse(line);
  } catch (_) {
    message = null;
  }
  if (!message || typeof message !== 'object' || message.type !== 'load') {
    protocolError(
      `under SOR_LOAD=deferred the first message must be {"type":"load"}, not ${describe(line)}`,
    );
  }
}

async function main() {
  const env = process.env;
  const inFd = privateFd(Number(env.SOR_IN_FD || 3), 'r');
  answers = openAnswers(Number(env.SOR_OUT_FD || 4));
  const deferred = env.SOR_LOAD === 'deferred';
  delete env.SOR_IN_FD;
  delete env.SOR_OUT_FD;
  delete env.SOR_LOAD; // sor's business, not the handler's
  if (env.SOR_PROTOCOL && env.SOR_PROTOCOL !== '1') {
    send({
      type: 'init_error',
      error: {
        errorType: 'Runtime.UnsupportedProtocol',
        errorMessage: `this adapter speaks protocol 1, not ${env.SOR_PROTOCOL}`,
        stackTrace: [],
      },
    });
    answers.flush(() => process.exit(1));
    return;
  }
  logError = patchConsole(env);
  setNodePath(env);
  process.on('uncaughtException', (err) => fatal(err, 'Uncaught Exception', 129));
  process.on('unhandledRejection', (reason, promise) => {
    const err = new (errors().UnhandledPromiseRejection)(reason);
    err.reason = reason;
    err.promise = promise;
    fatal(err, 'Unhandled Promise Rejection', 128);
  });
  installGlobal(env); // `awslambda`, which the handler's module may use as it loads
  const lines = requests(inFd);
  if (deferred) await waitForLoad(lines); // no user code runs before this
  // Called as user.handler(...), as the runtime calls this.handler(...): stack frames read
  // "at exports.main [as handler]" as on Lambda.
  const user = {};
  try {
    const root = env.LAMBDA_TASK_ROOT || process.cwd();
    user.handler = await loadHandler(root, env.SOR_HANDLER || env._HANDLER);
    user.streams = isStreaming(user.handler);
  } catch (err) {
    logError('Uncaught Exception', err);
    send({ type: 'init_error', error: errors().errorPayload(err) });
    answers.flush(() => process.exit(1));
    return;
  }
  mode = invocations(env, ids);
  mode.input = lines.input;
  ready = true;
  send({ type: 'ready', seal: true, ...mode.ready }); // it echoes seals; its concurrency
  // A function that runs one invocation at a time and does not stream has its first invocation
  // read and answered without the queue (channel.js): nothing more is read until that answer is
  // written, then both descriptors move to the queue. The others use it from the start.
  let direct = mode.concurrency === 1 && !user.streams;
  let answering = false; // the first line, read directly, is being answered
  const toQueue = () => {
    answers.queue();
    lines.input.queue();
  };
  if (!direct) toQueue();
  lines.serve(
    (buf) => {
      const line = decodeLine(buf);
      if (!direct) {
        mode.schedule(() => handle(user, line));
        return;
      }
      direct = false;
      answering = true;
      lines.input.pause();
      mode.schedule(() =>
        handle(user, line).finally(() => {
          toQueue();
          lines.input.resume();
        }),
      );
    },
    () => mode.drained().then(() => answers.flush(() => process.exit(0))), // sor closed the pipe
  );
  if (!answering) lines.input.resume();
}

main();
