'use strict';
// Server-sent events through a function URL: GET / is a page, GET /events streams ticks, each
// written as it happens (awslambda.streamifyResponse, as on Lambda's Node runtime).

const PAGE = `<!doctype html>
<title>sor: server-sent events from Node</title>
<ul id="log"></ul>
<script>
  const events = new EventSource("events?count=5");
  events.onmessage = (e) => {
    const item = document.createElement("li");
    item.textContent = e.data;
    document.getElementById("log").append(item);
  };
  events.addEventListener("done", () => events.close());
</script>
`;

const pause = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

exports.handler = awslambda.streamifyResponse(async (event, responseStream) => {
  if (event.rawPath !== '/events') {
    const page = awslambda.HttpResponseStream.from(responseStream, {
      statusCode: 200,
      headers: { 'content-type': 'text/html' },
    });
    page.end(PAGE);
    return;
  }
  const count = Number((event.queryStringParameters || {}).count || 5);
  const stream = awslambda.HttpResponseStream.from(responseStream, {
    statusCode: 200,
    headers: { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' },
  });
  for (let i = 0; i < count; i++) {
    if (i) await pause(1000);
    const data = JSON.stringify({ tick: i, at: Date.now() / 1000 });
    // write() returns false when the caller reads slower than we write: wait for 'drain'
    if (!stream.write(`data: ${data}\n\n`)) await new Promise((r) => stream.once('drain', r));
  }
  stream.end('event: done\ndata: bye\n\n');
});
