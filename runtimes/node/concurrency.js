'use strict';
// How many invocations this process runs at once (PROTOCOL.md, "Optional extension:
// concurrency"; docs/concurrency.md), and where each one's ids live while it runs.
//
// N comes from AWS_LAMBDA_MAX_CONCURRENCY (Lambda Managed Instances), or SOR_NODE_CONCURRENCY
// when the function sets it (1: a process per invocation, each one at a time). With N = 1 the
// invocations run one after the other and their ids are set where Node's Lambda runtime sets
// them (the runtime's global symbols, _X_AMZN_TRACE_ID), as aws-lambda-ric 3.3.0 does. With N > 1
// every invoke runs as it arrives, and its ids live in an AsyncLocalStorage store: console
// records, the global symbols (getters) and awslambda.InvokeStore name the invocation whose code
// is running, and _X_AMZN_TRACE_ID is not set (one variable cannot hold several trace ids).

const { AsyncLocalStorage } = require('async_hooks');

const REQUEST_ID = Symbol.for('aws.lambda.runtime.requestId');
const TENANT_ID = Symbol.for('aws.lambda.runtime.tenantId');
const WHOLE = /^\s*[0-9]+\s*$/;

// N, from the environment sor passes (the function's own); a bad SOR_NODE_CONCURRENCY is said
// on stderr and means 1, the safe choice.
function concurrencyOf(env) {
  const own = env.SOR_NODE_CONCURRENCY;
  if (own !== undefined && own !== '') {
    if (WHOLE.test(own) && Number(own) >= 1) return Number(own);
    process.stderr.write(
      `sor: SOR_NODE_CONCURRENCY=${JSON.stringify(own)} ignored: not a whole number of at ` +
        'least 1; this process runs one invocation at a time\n',
    );
    return 1;
  }
  const lambda = env.AWS_LAMBDA_MAX_CONCURRENCY;
  return lambda && WHOLE.test(lambda) && Number(lambda) >= 1 ? Number(lambda) : 1;
}

function idsOf(message) {
  const ctx = message.context;
  return {
    requestId: message.id,
    tenantId: ctx.tenant_id === null ? undefined : ctx.tenant_id,
    traceId: ctx.trace_id ? String(ctx.trace_id) : undefined,
    values: new Map(),
  };
}

// The subset of @aws/lambda-invoke-store that libraries read (Powertools: the trace id).
function invokeStore(current) {
  return {
    getContext: () => current(),
    hasContext: () => current() !== undefined,
    getRequestId: () => current()?.requestId ?? '-',
    getXRayTraceId: () => current()?.traceId,
    getTenantId: () => current()?.tenantId,
    get: (key) => current()?.values.get(key),
    set: (key, value) => current()?.values.set(key, value),
  };
}

// One invocation at a time: each runs after the previous one answered.
function oneAtATime(ids) {
  let queue = Promise.resolve();
  let running;
  return {
    concurrency: 1,
    ready: {},
    store: invokeStore(() => running),
    schedule(task) {
      queue = queue.then(task);
    },
    drained: () => queue,
    run(message, fn) {
      running = idsOf(message);
      ids.set(running.requestId, running.tenantId);
      if (running.traceId) process.env._X_AMZN_TRACE_ID = running.traceId;
      else delete process.env._X_AMZN_TRACE_ID;
      return fn();
    },
  };
}

// Up to n at once (sor sends no more than that): every invoke runs as it arrives.
function concurrent(ids, n) {
  const storage = new AsyncLocalStorage();
  const inFlight = new Set();
  const current = () => storage.getStore();
  for (const [key, name] of [
    [REQUEST_ID, 'requestId'],
    [TENANT_ID, 'tenantId'],
  ]) {
    Object.defineProperty(globalThis, key, {
      configurable: true,
      get: () => current()?.[name],
      set: () => {}, // the runtime's own: set per invocation by the store
    });
  }
  ids.current = () => current() ?? {};
  ids.set = () => {};
  delete process.env._X_AMZN_TRACE_ID;
  return {
    concurrency: n,
    ready: { concurrency: n },
    store: invokeStore(current),
    schedule(task) {
      const running = task();
      inFlight.add(running);
      running.finally(() => inFlight.delete(running));
    },
    drained: () => Promise.allSettled([...inFlight]),
    run: (message, fn) => storage.run(idsOf(message), fn),
  };
}

// The invocations of this process: `schedule(task)` for each line read, `drained()` at end of
// file, `run(message, fn)` around each invocation; `ready`: what its `ready` message adds.
function invocations(env, ids) {
  const n = concurrencyOf(env);
  const mode = n > 1 ? concurrent(ids, n) : oneAtATime(ids);
  // on the global the loader installed (none with AWS_LAMBDA_NODEJS_NO_GLOBAL_AWSLAMBDA)
  if (globalThis.awslambda) globalThis.awslambda.InvokeStore = mode.store;
  return mode;
}

module.exports = { concurrencyOf, invocations };
