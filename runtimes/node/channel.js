'use strict';
// The protocol's descriptors. The answer descriptor (fd 4) is written through ONE ordered queue,
// a libuv pipe handle (net.Socket): every message (ready, result, error, a stream's chunks) goes
// out whole and in the order it was written, lines never interleave, and a full pipe (sor is
// still posting the previous chunk) parks the writes in that queue instead of blocking the event
// loop; a write's callback runs once its bytes are in the pipe, which is what gives a response
// stream its backpressure (streaming.js). A descriptor that is not a pipe or a socket (a file)
// is written synchronously.

const fs = require('fs');
const net = require('net');

// Reopen an inherited pipe as a new close-on-exec descriptor, so that processes the handler
// starts cannot write to (or hold open) the protocol pipes. Sockets cannot be reopened this way.
function privateFd(fd, flags) {
  try {
    const copy = fs.openSync(`/proc/self/fd/${fd}`, flags);
    fs.closeSync(fd);
    return copy;
  } catch (_) {
    return fd;
  }
}

const isPipe = (fd) => {
  const stat = fs.fstatSync(fd);
  return stat.isFIFO() || stat.isSocket();
};

class Channel {
  constructor(fd) {
    this.fd = fd;
    this.socket = null;
    if (isPipe(fd)) {
      this.socket = new net.Socket({ fd, readable: false, writable: true });
      // sor is gone (EPIPE): nobody is left to answer
      this.socket.on('error', () => process.exit(1));
    }
  }

  // Queues `data` (a string or a Buffer) after everything written before it; `done` is called
  // once it is all in the pipe.
  write(data, done) {
    if (this.socket) {
      this.socket.write(data, done);
      return;
    }
    const buf = typeof data === 'string' ? Buffer.from(data, 'utf8') : data;
    for (let offset = 0; offset < buf.length; ) {
      offset += fs.writeSync(this.fd, buf, offset, buf.length - offset);
    }
    if (done) process.nextTick(done);
  }

  // Calls `then` once everything written so far is in the pipe (before the process exits).
  flush(then) {
    if (this.socket) this.socket.write('', () => then());
    else setImmediate(then);
  }
}

function openAnswers(fd) {
  return new Channel(privateFd(fd, 'w'));
}

// Calls onLine(buf) for every line of fd (without its newline), then onEnd() at end of file;
// the stream (destroyed to refuse what comes next).
function readLines(fd, onLine, onEnd) {
  const stream = isPipe(fd)
    ? new net.Socket({ fd, readable: true, writable: false })
    : fs.createReadStream(null, { fd });
  let partial = [];
  stream.on('data', (chunk) => {
    let start = 0;
    for (let nl = chunk.indexOf(10); nl !== -1; nl = chunk.indexOf(10, start)) {
      partial.push(chunk.subarray(start, nl));
      onLine(partial.length === 1 ? partial[0] : Buffer.concat(partial));
      partial = [];
      start = nl + 1;
    }
    if (start < chunk.length) partial.push(Buffer.from(chunk.subarray(start))); // a copy: kept
  });
  stream.on('end', () => {
    if (partial.length) onLine(Buffer.concat(partial));
    onEnd();
  });
  return stream;
}

module.exports = { openAnswers, privateFd, readLines };
