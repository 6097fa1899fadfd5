'use strict';
// Loading the handler named "dir/file.export" (the export may be a dotted path), as Node's
// Lambda runtime does: CommonJS (.js, .cjs) or ES modules (.mjs, or .js in a "type": "module"
// package), with Lambda's error names for what can go wrong.

const fs = require('fs');
const path = require('path');
const { pathToFileURL } = require('url');
const {
  HandlerNotFound,
  ImportModuleError,
  MalformedHandlerName,
  UserCodeSyntaxError,
  wrapError,
} = require('./errors.js');

// Whether the nearest package.json (as Node looks for it) says "type": "module".
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

// The handler function; throws Lambda's Runtime.* errors, or what the module threw at load.
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

module.exports = { loadHandler };
