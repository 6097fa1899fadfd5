'use strict';
// Response streaming as Node's Lambda runtime offers it (aws-lambda-ric 3.3.0: ResponseStream.js,
// HttpResponseStream.js, Runtime.handleOnceStreaming), over the protocol's streaming extension
// (PROTOCOL.md): a handler `async (event, responseStream, context)` writes to a Node Writable
// whose bytes leave as `chunk` messages, opened by a `stream` message at its first write (or at
// HttpResponseStream.from, with the HTTP prelude) and closed by `end`, or by an `error` that sor
// turns into the error trailers. Loaded at the first streaming invocation only.

const { Writable } = require('stream');
const { InvalidStreamingOperation } = require('./errors.js');
const { highWaterMark } = require('./loader.js');
const { makeContext } = require('./context.js');

const HTTP_INTEGRATION = 'application/vnd.awslambda.http-integration-response';
const DEFAULT_CONTENT_TYPE = 'application/octet-stream';
const CHUNK_BYTES = 1 << 20; // the protocol's most bytes per chunk message
// The runtime's failure when a handler is done and its stream is not (a string, as it passes it)
const NOT_FINISHED = 'Response stream is not finished.';

// The handler is called as a method of this, as the runtime calls this.handler(...): its stack
// frames read "at Runtime.handler" as on Lambda.
class Runtime {
  constructor(handler) {
    this.handler = handler;
  }
}

// The responseStream a streaming handler writes to. `wire` is the invocation's side of the
// answer descriptor: send(message, done) queues one protocol message of this invoke (done: once
// it is in the pipe). A write's callback, and so 'drain', waits for its bytes to be in the pipe:
// while sor is still sending the previous chunk, write() returns false, as over a socket.
class ResponseStream extends Writable {
  constructor(wire, options) {
    super(options);
    this._wire = wire;
    this._contentType = DEFAULT_CONTENT_TYPE;
    this._opened = false;
    this._failing = false; // ending because the invocation failed: no `end` message
    this._endSent = false; // the answer is whole
    this._onBeforeFirstWrite = undefined; // as the runtime's, for code that sets it itself
  }

  setContentType(contentType) {
    if (this._opened) throw new InvalidStreamingOperation('Cannot set content-type, too late.');
    this._contentType = contentType;
  }

  // The `stream` message, once: plain with its content type, or HTTP with the prelude.
  _open(prelude) {
    if (this._opened || this._failing) return;
    this._opened = true;
    const head = prelude === undefined ? { contentType: this._contentType } : { prelude };
    this._wire.send({ type: 'stream', ...head });
    if (typeof this._onBeforeFirstWrite === 'function') {
      this._onBeforeFirstWrite((chunk) => super.write(chunk));
    }
  }

  write(chunk, encoding, callback) {
    // as the runtime does: what is neither a string nor bytes is written as its JSON
    if (typeof chunk !== 'string' && !Buffer.isBuffer(chunk) && chunk?.constructor !== Uint8Array) {
      chunk = JSON.stringify(chunk);
    }
    if (this.writableEnded && !this.destroyed) {
      // As the runtime's request: an 'error', and the stream still finishes (Writable's own
      // check would leave it errored, never finished: the answer would never end).
      const err = new Error('write after end');
      err.code = 'ERR_STREAM_WRITE_AFTER_END';
      process.nextTick(() => {
        if (typeof encoding === 'function') encoding(err);
        else if (typeof callback === 'function') callback(err);
        this.emit('error', err);
      });
      return false;
    }
    this._open();
    return super.write(chunk, encoding, callback);
  }

  end(chunk, encoding, callback) {
    if (typeof chunk === 'function') [chunk, callback] = [undefined, chunk];
    else if (typeof encoding === 'function') [encoding, callback] = [undefined, encoding];
    if (chunk !== undefined && chunk !== null) this.write(chunk, encoding);
    return super.end(callback);
  }

  _write(chunk, _encoding, callback) {
    if (chunk.length === 0) return callback(); // an empty chunk is no message
    for (let at = 0; at < chunk.length; at += CHUNK_BYTES) {
      const to = Math.min(at + CHUNK_BYTES, chunk.length);
      const data = chunk.toString('base64', at, to);
      this._wire.send({ type: 'chunk', data }, to === chunk.length ? () => callback() : undefined);
    }
  }

  // What was written while the pipe was full goes out together: fewer, fuller chunk messages
  // (each still at most 1 MiB), nothing held back that could have been sent.
  _writev(entries, callback) {
    const chunks = entries.map((entry) => entry.chunk);
    this._write(chunks.length === 1 ? chunks[0] : Buffer.concat(chunks), null, callback);
  }

  _final(callback) {
    if (this._failing) return callback();
    this._open(); // end() without a write: an empty stream
    this._endSent = true;
    this._wire.send({ type: 'end' }, () => callback());
  }

  // The invocation failed before end(): what was written goes out, then `then()` (the error).
  // `now`: at once, dropping what is still buffered (the process is about to end).
  _fail(now, then) {
    this._failing = true;
    if (now || !this._opened || this.destroyed) {
      this.destroy();
      then();
      return;
    }
    let called = false;
    const once = () => {
      if (called) return;
      called = true;
      then();
    };
    this.once('finish', once);
    this.once('close', once); // destroyed meanwhile
    super.end();
  }
}

function httpResponseStream(underlyingStream, prelude) {
  underlyingStream.setContentType(HTTP_INTEGRATION);
  if (underlyingStream instanceof ResponseStream) {
    underlyingStream._open(prelude === undefined ? {} : prelude);
  } else {
    // another Writable: as the runtime does, the prelude and its 8 NUL bytes start the body
    underlyingStream._onBeforeFirstWrite = (write) => {
      write(JSON.stringify(prelude));
      write(new Uint8Array(8));
    };
  }
  return underlyingStream;
}

// Runs a streaming user.handler; resolves with {ok: true, streamed: true} once the stream ended
// (its `end` is queued) and the handler settled, or {ok: false, err, logged} for the `error`
// answer, which the caller writes after every chunk. `wire`: id and seal, write(line, done) on
// the answer descriptor, track(outcome) (for the uncaught-error handlers), logError,
// whenDrained.
function runStreaming(user, event, ctx, wire) {
  return new Promise((resolve) => {
    let settled = false; // the answer is decided
    let handlerDone = false;
    const send = (message, done) => {
      const line = JSON.stringify({ type: message.type, id: wire.id, seal: wire.seal, ...message });
      wire.write(`${line}\n`, done);
    };
    const hwm = highWaterMark(user.handler);
    const stream = new ResponseStream({ send }, hwm === undefined ? {} : { highWaterMark: hwm });
    const succeed = () => {
      if (settled) return;
      settled = true;
      resolve({ ok: true, streamed: true });
    };
    const succeedIfDone = () => {
      if (handlerDone && stream._endSent) succeed();
    };
    const outcome = {
      // `fatal`: from the uncaught-error handlers, which logged it; the process ends right after
      fail(err, fatal = false) {
        if (!fatal) wire.logError('Invoke Error', err);
        if (settled) return;
        if (stream._endSent || (stream.writableEnded && !stream.destroyed && !stream._failing)) {
          // after the handler's end() the answer is whole, as under the runtime: only logged
          succeedIfDone();
          return;
        }
        settled = true;
        stream._fail(fatal, () => resolve({ ok: false, err, logged: true }));
      },
    };
    wire.track(outcome);
    stream.on('finish', succeedIfDone);
    // A stream destroyed with an error (pipeline() from a Readable that failed) fails the
    // invocation; once it is answered, the stream's errors (writes after it) concern nobody.
    stream.on('error', (err) => {
      if (!settled) outcome.fail(err);
    });
    stream.on('close', () => {
      if (stream._endSent) succeedIfDone();
      else if (!stream._failing) outcome.fail(NOT_FINISHED); // destroyed by the handler
    });
    const context = makeContext(ctx, outcome);
    delete context.succeed; // a streaming context has no succeed, fail or done, as Lambda's
    delete context.fail;
    delete context.done;
    setImmediate(function callHandler() {
      const baseline = process.getActiveResourcesInfo().length;
      let returned;
      try {
        returned = new Runtime(user.handler).handler(event, stream, context);
      } catch (err) {
        handlerDone = true;
        outcome.fail(err);
        return;
      }
      if (!returned || typeof returned.then !== 'function') {
        handlerDone = true;
        outcome.fail('Streaming does not support non-async handlers.');
        return;
      }
      Promise.resolve(returned).then(
        (value) => {
          handlerDone = true;
          if (value !== undefined) console.warn('Streaming handlers ignore return values.');
          succeedIfDone();
          // Not ended yet: something it started may still end it (a pipeline it did not await);
          // once nothing is left that could, it fails as the runtime's check says.
          if (!stream.writableEnded) {
            wire.whenDrained(baseline, () => settled || stream.writableEnded, () =>
              outcome.fail(NOT_FINISHED),
            );
          }
        },
        (err) => {
          handlerDone = true;
          outcome.fail(err);
        },
      );
    });
  });
}

module.exports = { ResponseStream, httpResponseStream, runStreaming };
