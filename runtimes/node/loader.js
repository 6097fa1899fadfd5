'use strict';
// Loading the handler named "dir/file.export" (the export may be a dotted path) exactly as Node's
// Lambda runtime (aws-lambda-ric 3.3.0, UserFunction.js) does, in its order: the file without an
// extension (always CommonJS), FILE.js (CommonJS, or an ES module under a "type": "module"
// package.json), FILE.mjs, FILE.cjs, then a package resolved as Node resolves one (node_modules,
// NODE_PATH); with Lambda's error names for what can go wrong. Also the global `awslambda` the
// handler's module may use as it loads (UserFunction.js): streamifyResponse marks a handler as
// streaming with the runtime's own symbols (libraries that set them directly work too), and
// HttpResponseStream.from, whose response stream (streaming.js) is loaded at the first
// streaming invocation only.

const fs = require('fs');
const path = require('path');
const { pathToFileURL } = require('url');
// Lambda's error classes (errors.js), loaded only when loading fails.
const errors = () => require('./errors.js');

// Whether the nearest package.json above FILE.js says "type": "module", as the runtime reads it:
// the walk stops at a node_modules folder, at a package.json that is not null, or at "/".
function packageIsModule(folder) {
  for (let current = folder; ; current = path.resolve(current, '..')) {
    if (current.endsWith('/node_modules')) return false;
    const file = path.join(current, 'package.json');
    if (fs.existsSync(file)) {
      try {
        const pkg = JSON.parse(fs.readFileSync(file));
        if (pkg) return pkg.type === 'module';
      } catch (err) {
        console.warn(
          `${file} cannot be read, it will be ignored for ES module detection purposes.`,
          err,
        );
        return false;
      }
    }
    if (current === '/') return false;
  }
}

// User code is required as from the main module, so that a "Require stack" names the runtime
// once, as Lambda's does ("- /var/runtime/index.mjs").
// module.constructor is Node's Module, what require('module') returns, without loading that public
// module's additions (source maps, the ES module loader): ~0.4 ms of a cold start.
const Module = module.constructor;
const userRequire = require.main ? Module.createRequire(require.main.filename) : require;
const requireIfThere = (file) => (fs.existsSync(file) ? userRequire(file) : undefined);
const importIfThere = async (file) =>
  fs.existsSync(file) ? import(pathToFileURL(file).href) : undefined;

async function importModule(appRoot, moduleRoot, name) {
  const base = path.resolve(appRoot, moduleRoot, name);
  const extensionless = requireIfThere(base);
  if (extensionless) return extensionless;
  const esm = fs.existsSync(`${base}.js`) && packageIsModule(path.dirname(`${base}.js`));
  if (!esm) {
    const js = requireIfThere(`${base}.js`);
    if (js) return js;
  }
  const loaded =
    (esm && (await importIfThere(`${base}.js`))) ||
    (await importIfThere(`${base}.mjs`)) ||
    requireIfThere(`${base}.cjs`);
  if (loaded) return loaded;
  // No such file: a package, resolved from the task root and the handler's folder.
  return userRequire(userRequire.resolve(name, { paths: [appRoot, moduleRoot] }));
}

// The handler function; throws Lambda's Runtime.* errors, or what the module threw at load.
async function loadHandler(appRoot, handlerString) {
  if (!handlerString) {
    throw new (errors().MalformedHandlerName)('no handler: SOR_HANDLER is empty');
  }
  if (handlerString.includes('..')) {
    throw new (errors().MalformedHandlerName)(
      `'${handlerString}' is not a valid handler name. Use absolute paths when specifying root ` +
        'directories in handler names.',
    );
  }
  const base = path.basename(handlerString);
  const moduleRoot = handlerString.substring(0, handlerString.indexOf(base));
  const match = /^([^.]*)\.(.*)$/.exec(base);
  if (!match) throw new (errors().MalformedHandlerName)('Bad handler');
  let mod;
  try {
    mod = await importModule(appRoot, moduleRoot, match[1]);
  } catch (err) {
    if (err instanceof SyntaxError) throw new (errors().UserCodeSyntaxError)(err);
    if (err && err.code === 'MODULE_NOT_FOUND') throw new (errors().ImportModuleError)(err);
    throw err;
  }
  const func = match[2].split('.').reduce((obj, key) => obj && obj[key], mod);
  if (!func) {
    throw new (errors().HandlerNotFound)(`${handlerString} is undefined or not exported`);
  }
  if (typeof func !== 'function') {
    throw new (errors().HandlerNotFound)(`${handlerString} is not a function`);
  }
  return func;
}

// ---------------------------------------------------------------------------------------------
// The global `awslambda`.

const STREAMING = Symbol.for('aws.lambda.runtime.handler.streaming');
const HIGH_WATER_MARK = Symbol.for('aws.lambda.runtime.handler.streaming.highWaterMark');
const STREAM_RESPONSE = 'response';

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
  throw new (errors().MalformedStreamingHandler)('Only response streaming is supported.');
}

// The highWaterMark the handler asked for (streamifyResponse's options), or undefined.
function highWaterMark(handler) {
  const value = parseInt(handler[HIGH_WATER_MARK]);
  return Number.isNaN(value) ? undefined : value;
}

module.exports = { highWaterMark, installGlobal, isStreaming, loadHandler };
