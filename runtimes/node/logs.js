'use strict';
// console.* as Node's Lambda runtime (aws-lambda-ric 3.3.0, LogPatch.js) writes it: text lines
// "TIMESTAMP\tREQUEST_ID\tLEVEL\tmessage", or JSON records with AWS_LAMBDA_LOG_FORMAT=JSON;
// AWS_LAMBDA_LOG_LEVEL turns the methods below it into no-ops. Every record is one line of
// stdout, its inner line breaks written as \r: that is how sor tells records apart (PROTOCOL.md).

const util = require('util');

const LEVELS = Object.freeze({
  TRACE: { name: 'TRACE', priority: 1 },
  DEBUG: { name: 'DEBUG', priority: 2 },
  INFO: { name: 'INFO', priority: 3 },
  WARN: { name: 'WARN', priority: 4 },
  ERROR: { name: 'ERROR', priority: 5 },
  FATAL: { name: 'FATAL', priority: 6 },
});

// The ids of the running invocation live where the runtime keeps them (handlers and libraries
// read them there). Records ask `current` for them: a version serving several invocations at
// once can answer per invocation (AsyncLocalStorage) by replacing it, without touching the rest.
const REQUEST_ID = Symbol.for('aws.lambda.runtime.requestId');
const TENANT_ID = Symbol.for('aws.lambda.runtime.tenantId');
const ids = {
  current: () => ({ requestId: globalThis[REQUEST_ID], tenantId: globalThis[TENANT_ID] }),
  set(requestId, tenantId) {
    globalThis[REQUEST_ID] = requestId;
    globalThis[TENANT_ID] = tenantId;
  },
};

// An Error anywhere in a single logged value becomes {errorType, errorMessage, stackTrace, ...}.
function jsonErrorReplacer(_key, value) {
  if (value instanceof Error) {
    return Object.assign(
      {
        errorType: (value.constructor && value.constructor.name) ?? 'UnknownError',
        errorMessage: value.message,
        stackTrace: typeof value.stack === 'string' ? value.stack.split('\n') : value.stack,
      },
      value,
    );
  }
  return value;
}

function jsonRecord(level, params) {
  const { requestId, tenantId } = ids.current();
  const record = { timestamp: new Date().toISOString(), level: level.name, requestId };
  if (tenantId !== undefined && tenantId !== null) record.tenantId = tenantId;
  if (params.length === 1) {
    record.message = params[0];
    try {
      return JSON.stringify(record, jsonErrorReplacer);
    } catch (_) {
      record.message = util.format(record.message);
      return JSON.stringify(record);
    }
  }
  record.message = util.format(...params);
  const err = params.find((param) => param instanceof Error);
  if (err) {
    record.errorType = (err.constructor && err.constructor.name) ?? 'UnknownError';
    record.errorMessage = err.message;
    record.stackTrace = typeof err.stack === 'string' ? err.stack.split('\n') : [];
  }
  return JSON.stringify(record);
}

function textRecord(level, params) {
  const { requestId } = ids.current();
  return `${new Date().toISOString()}\t${requestId}\t${level.name}\t${util.format(...params)}`;
}

// Replaces the console's level methods (the others, console.table, .group, .assert, ..., go
// through them) and adds console.fatal; returns logError(label, err) for the runtime's own
// "Invoke Error" / "Uncaught Exception" records.
function patchConsole(env) {
  const json = (env.AWS_LAMBDA_LOG_FORMAT || '').toUpperCase() === 'JSON';
  const format = json ? jsonRecord : textRecord;
  const write = (level, params) => {
    process.stdout.write(`${format(level, params).replace(/\n/g, '\r')}\n`);
  };
  const threshold = LEVELS[(env.AWS_LAMBDA_LOG_LEVEL || '').toUpperCase()] || LEVELS.TRACE;
  const method = (level) =>
    // (message, ...params): console.log() prints "undefined", as util.format(undefined) does
    level.priority >= threshold.priority
      ? (message, ...params) => write(level, [message, ...params])
      : () => {};
  console.trace = method(LEVELS.TRACE);
  console.debug = method(LEVELS.DEBUG);
  console.info = method(LEVELS.INFO);
  console.log = console.info;
  console.warn = method(LEVELS.WARN);
  console.error = method(LEVELS.ERROR);
  console.fatal = method(LEVELS.FATAL);
  const errors = () => require('./errors.js'); // at the first error record
  return json
    ? (_label, err) => console.error(errors().intoError(err))
    : (label, err) => {
        const { intoError, toFormatted } = errors();
        console.error(label, toFormatted(intoError(err)));
      };
}

module.exports = { LEVELS, ids, patchConsole };
