exports.handler = async (event, context) => ({ ok: true, n: event.n, request: context.awsRequestId });
