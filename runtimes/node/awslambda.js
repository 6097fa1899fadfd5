'use strict';
// The global `awslambda` of Node's Lambda runtime (aws-lambda-ric 3.3.0, UserFunction.js), set
// before the handler's module loads: streamifyResponse marks a handler as streaming with the
// runtime's own symbols (libraries that set them directly work too), HttpResponseStream.from
// makes a response stream an HTTP one. It costs nothing at start: the response stream itself
// (streaming.js) is loaded at the first streaming invocation.

const STREAMING = Symbol.for('aws.lambda.runtime.handler.streaming');
const HIGH_WATER_MARK = Symbol.for('aws.lambda.runtime.handler.streaming.highWaterMark');
const STREAM_RESPONSE = 'response';

class MalformedStreamingHandler extends Error {}
MalformedStreamingHandler.prototype.name = 'Runtime.MalformedStreamingHandler';

class HttpResponseStream {
  // the stream, with the HTTP response's status, headers and cookies (streaming.js)
  static from(underlyingStream, prelude) {
    return require('./streaming.js').httpResponseStream(underlyingStream, prelude);
  }
}

function streamifyResponse(handler, options) {
  handler[STREAMING] = STREAM_RESPONSE;
  if (typeof (options && options.highWaterMark) === 'number') {
    handler[HIGH_WATER_MARK] = parseInt(options.highWaterMark);
  }
  return handler;
}

// As the runtime: AWS_LAMBDA_NODEJS_NO_GLOBAL_AWSLAMBDA=1 (or true) leaves the global unset.
function installGlobal(env) {
  const off = env.AWS_LAMBDA_NODEJS_NO_GLOBAL_AWSLAMBDA;
  if (off === '1' || off === 'true') return;
  globalThis.awslambda = { streamifyResponse, HttpResponseStream };
}

// Whether the loaded handler streams; a mark other than "response" fails the init as it does
// under the runtime.
function isStreaming(handler) {
  const mark = handler[STREAMING];
  if (mark === undefined || mark === null || mark === false) return false;
  if (mark === STREAM_RESPONSE) return true;
  throw new MalformedStreamingHandler('Only response streaming is supported.');
}

// The highWaterMark the handler asked for (streamifyResponse's options), or undefined.
function highWaterMark(handler) {
  const value = parseInt(handler[HIGH_WATER_MARK]);
  return Number.isNaN(value) ? undefined : value;
}

module.exports = { highWaterMark, installGlobal, isStreaming };
