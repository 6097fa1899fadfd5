'use strict';
// The protocol's descriptors. The answer descriptor (fd 4) is written through ONE ordered queue,
// a libuv pipe handle (net.Socket): every message (ready, result, error, a stream's chunks) goes
// out whole and in the order it was written, lines never interleave, and a full pipe (sor is
// still posting the previous chunk) parks the writes in that queue instead of blocking the event
// loop; a write's callback runs once its bytes are in the pipe, which is what gives a response
// stream its backpressure (streaming.js). A descriptor that is not a pipe or a socket (a file)
// is written synchronously.
//
// Until `queue()` both descriptors are used directly, without Node's streams: loading `net` (and
// the stream modules under it) and making its two sockets is a few milliseconds of a cold start
// (more on a busy machine), so the adapter of a function that neither streams nor runs several
// invocations at once switches only once it answered its first invocation (sor_runtime.js).
// Meanwhile an answer is written at once (sor is reading: it waits for it) and requests are read
// with fs.read, one read at a time, and only while the adapter waits for one.

const fs = require('fs');

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
    this.pipe = isPipe(fd);
    this.socket = null;
  }

  // From now on writes go through the ordered queue (a no-op for a file, or when done).
  queue() {
    if (!this.pipe || this.socket) return;
    const net = require('net');
    this.socket = new net.Socket({ fd: this.fd, readable: false, writable: true });
    // sor is gone (EPIPE): nobody is left to answer
    this.socket.on('error', () => process.exit(1));
  }

  // Queues `data` (a string or a Buffer) after everything written before it; `done` is called
  // once it is all in the pipe.
  write(data, done) {
    if (this.socket) {
      this.socket.write(data, done);
      return;
    }
    const buf = typeof data === 'string' ? Buffer.from(data, 'utf8') : data;
    let offset = 0;
    try {
      while (offset < buf.length) offset += fs.writeSync(this.fd, buf, offset, buf.length - offset);
    } catch (err) {
      if (!this.pipe || err.code !== 'EAGAIN') process.exit(1); // sor is gone (EPIPE)
      this.queue(); // a descriptor that does not block: the rest waits in the queue
      this.socket.write(buf.subarray(offset), done);
      return;
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

// Reads the lines of fd: calls onLine(buf) for every line (without its newline), then onEnd() at
// end of file. Reads only while resumed (`resume()`, `pause()`: a line that arrives meanwhile
// waits in the pipe); `queue()` moves the reading of a pipe to a net.Socket, which reads all the
// time; `destroy()` closes it (what sor writes next is refused).
class Lines {
  constructor(fd, onLine, onEnd) {
    this.fd = fd;
    this.onLine = onLine;
    this.onEnd = onEnd;
    this.partial = [];
    this.paused = true;
    this.pending = false; // an fs.read is under way
    this.size = 64 << 10; // what the next one reads at most
    this.queued = false;
    this.stream = null;
    this.closed = false;
    if (!isPipe(fd)) this.stream = this.listen(fs.createReadStream(null, { fd }));
  }

  listen(stream) {
    stream.on('data', (chunk) => this.take(chunk));
    stream.on('end', () => this.end());
    if (this.paused) stream.pause();
    return stream;
  }

  take(chunk) {
    let start = 0;
    for (let nl = chunk.indexOf(10); nl !== -1; nl = chunk.indexOf(10, start)) {
      this.partial.push(chunk.subarray(start, nl));
      const line = this.partial.length === 1 ? this.partial[0] : Buffer.concat(this.partial);
      this.partial = [];
      start = nl + 1;
      this.onLine(line);
    }
    if (start < chunk.length) this.partial.push(Buffer.from(chunk.subarray(start))); // a copy
  }

  end() {
    if (this.partial.length) this.onLine(Buffer.concat(this.partial));
    this.partial = [];
    this.onEnd();
  }

  read() {
    if (this.pending || this.paused || this.stream || this.closed) return;
    this.pending = true;
    const buf = Buffer.allocUnsafe(this.size);
    fs.read(this.fd, buf, 0, buf.length, null, (err, n) => {
      this.pending = false;
      if (this.closed) return;
      if (err && err.code === 'EAGAIN') {
        this.queue(); // a descriptor that does not block: the socket waits for its lines
        return;
      }
      if (err || n === 0) {
        this.closed = true;
        this.end();
        return;
      }
      if (n === buf.length) this.size = Math.min(this.size * 4, 4 << 20); // big: fewer reads
      this.take(buf.subarray(0, n)); // fresh for every read: its lines are kept as they are
      if (this.queued) this.queue();
      else this.read();
    });
  }

  resume() {
    this.paused = false;
    if (this.stream) this.stream.resume();
    else this.read();
  }

  pause() {
    this.paused = true;
    this.stream?.pause();
  }

  queue() {
    this.queued = true;
    if (this.stream || this.pending || this.closed) return; // after the read under way
    const net = require('net');
    this.stream = this.listen(new net.Socket({ fd: this.fd, readable: true, writable: false }));
    if (!this.paused) this.stream.resume();
  }

  destroy() {
    if (this.stream) this.stream.destroy();
    else if (!this.closed) fs.closeSync(this.fd);
    this.closed = true;
  }
}

function readLines(fd, onLine, onEnd) {
  return new Lines(fd, onLine, onEnd);
}

module.exports = { openAnswers, privateFd, readLines };
