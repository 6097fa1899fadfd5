'use strict';
// Errors as Node's Lambda runtime (aws-lambda-ric) names and formats them: the protocol's ERROR
// (its "stackTrace" is the runtime's "trace"), the X-Ray cause, and the text of error log lines.

const util = require('util');

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
const MalformedStreamingHandler = lambdaError('MalformedStreamingHandler');
const InvalidStreamingOperation = lambdaError('InvalidStreamingOperation');

// DEL is not allowed in an HTTP header: the runtime writes it as %7F, in bodies too.
const noDel = (text) => text.replace(/\x7F/g, '%7F');
const maybeNoDel = (text) => (text === undefined || text === null ? text : noDel(text));

function isErrorLike(obj) {
  return Boolean(
    obj &&
      obj.name &&
      obj.message &&
      obj.stack &&
      typeof obj.name === 'string' &&
      typeof obj.message === 'string' &&
      typeof obj.stack === 'string',
  );
}

// The protocol's ERROR object for anything a handler threw or passed to its callback.
function errorPayload(err) {
  try {
    if (util.types.isNativeError(err) || isErrorLike(err)) {
      return {
        errorType: maybeNoDel(err.name),
        errorMessage: maybeNoDel(err.message),
        stackTrace: noDel(err.stack).split('\n'),
      };
    }
    return { errorType: typeof err, errorMessage: err.toString(), stackTrace: [] };
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

// The X-Ray cause of a handler error, as the runtime sends it in the
// Lambda-Runtime-Function-XRay-Error-Cause header; undefined where the runtime sends none.
function xrayCause(err) {
  try {
    const stack = [];
    if (err.stack) {
      const lines = noDel(err.stack).split('\n');
      lines.shift(); // "Name: message"
      for (const frame of lines) {
        let line = frame.trim().replace(/\(|\)/g, '');
        line = line.substring(line.indexOf(' ') + 1); // "at "
        const cut = line.lastIndexOf(' ');
        const label = cut >= 0 ? line.slice(0, cut) : null;
        const where = (label ? line.slice(cut + 1) : line).split(':');
        stack.push({ path: where[0], line: parseInt(where[1]), label: label || 'anonymous' });
      }
    }
    const cause = {
      working_directory: process.cwd(),
      exceptions: [
        {
          type: maybeNoDel(err.name),
          message: maybeNoDel(err.message),
          stack,
        },
      ],
      paths: Array.from(new Set(stack.map((entry) => entry.path))),
    };
    JSON.stringify(cause); // what cannot be serialised is not sent
    return cause;
  } catch (_) {
    return undefined;
  }
}

// What the runtime logs of a failure: the value itself when it is an Error, else an Error of it.
function intoError(err) {
  return err instanceof Error ? err : new Error(err);
}

// The text after "Invoke Error" in a text log line: a tab, then the error as JSON with its own
// enumerable properties and the stack as a list of lines.
function toFormatted(error) {
  try {
    return `\t${JSON.stringify(error, (_key, value) => withProperties(value))}`;
  } catch (_) {
    const { errorType, errorMessage, stackTrace } = errorPayload(error);
    return `\t${JSON.stringify({ errorType, errorMessage, trace: stackTrace })}`;
  }
}

function withProperties(value) {
  if (!(value instanceof Error)) return value;
  const out = Object.assign(
    { errorType: value.name, errorMessage: value.message, code: value.code },
    value,
  );
  if (typeof value.stack === 'string') out.stack = value.stack.split('\n');
  return out;
}

module.exports = {
  ImportModuleError,
  HandlerNotFound,
  MalformedHandlerName,
  UserCodeSyntaxError,
  UnhandledPromiseRejection,
  MalformedStreamingHandler,
  InvalidStreamingOperation,
  errorPayload,
  intoError,
  toFormatted,
  xrayCause,
};
