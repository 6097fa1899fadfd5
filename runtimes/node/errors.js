'use strict';
// Errors as Node's Lambda runtime names and formats them (its "trace" is the protocol's
// "stackTrace").

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

function isErrorLike(value) {
  return (
    util.types.isNativeError(value) ||
    (value !== null &&
      typeof value === 'object' &&
      typeof value.name === 'string' &&
      typeof value.message === 'string')
  );
}

// The protocol's ERROR object for anything a handler threw or passed to its callback.
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

// A loader error wrapping the user's error: its message is the original error as a string,
// its stack the original frames.
function wrapError(Cls, cause) {
  const err = new Cls(String(cause));
  if (cause && typeof cause.stack === 'string') {
    const frames = cause.stack.split('\n').filter((line) => /^\s+at /.test(line));
    err.stack = [`${err.name}: ${err.message}`, ...frames].join('\n');
  }
  return err;
}

module.exports = {
  ImportModuleError,
  HandlerNotFound,
  MalformedHandlerName,
  UserCodeSyntaxError,
  UnhandledPromiseRejection,
  errorPayload,
  wrapError,
};
