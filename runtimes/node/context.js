'use strict';
// The context object of Node's Lambda runtime, built from the protocol's CONTEXT (PROTOCOL.md):
// awsRequestId, getRemainingTimeInMillis() and the rest, and succeed/fail/done, which answer
// through the invocation's outcome.


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
    // as the runtime does: failing with nothing is failing with the string "handled"
    fail: (err) => outcome.fail(err === undefined || err === null ? 'handled' : err),
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
    tenantId: ctx.tenant_id === null ? undefined : ctx.tenant_id,
    getRemainingTimeInMillis: () => deadline - Date.now(),
  };
}

module.exports = { makeContext };
