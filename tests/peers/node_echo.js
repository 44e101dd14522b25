#!/usr/bin/env node
// A @grpc/grpc-js upstream for `authgate proxy` tests: echo.v1.Echo, reflection
// (v1 and v1alpha) and health, the same as python_echo.py.
//
//   node tests/peers/node_echo.js [--host 127.0.0.1] [--port 0] [--events FILE]
//                                 [--tls-cert PEM --tls-key PEM]
//
// Prints `listening 127.0.0.1:<port>` as its first stdout line once bound, then
// serves until SIGTERM or SIGINT. `--events FILE` gets the JSON lines described
// in python_echo.py (`call`, `deadline`, `cancelled`), each written at once.
// The modules come from target/peers-node (tests/peers/install.sh), or from
// the folder PEERS_NODE names.
'use strict';

const crypto = require('node:crypto');
const fs = require('node:fs');
const path = require('node:path');
const { createRequire } = require('node:module');

const nodeDir = process.env.PEERS_NODE || path.join(__dirname, '..', '..', 'target', 'peers-node');
const requireDep = createRequire(path.join(path.resolve(nodeDir), 'package.json'));
const grpc = requireDep('@grpc/grpc-js');
const protoLoader = requireDep('@grpc/proto-loader');
const { ReflectionService } = requireDep('@grpc/reflection');
const { HealthImplementation, protoPath: healthProto } = requireDep('grpc-health-check');

const SERVICE = 'echo.v1.Echo';

function parseArgs(argv) {
  const args = { host: '127.0.0.1', port: 0, events: null, tlsCert: null, tlsKey: null };
  const names = { '--host': 'host', '--port': 'port', '--events': 'events', '--tls-cert': 'tlsCert', '--tls-key': 'tlsKey' };
  for (let i = 0; i < argv.length; i += 1) {
    const name = names[argv[i]];
    if (!name || i + 1 >= argv.length) {
      process.stderr.write(`usage: node_echo.js [--host H] [--port P] [--events FILE] [--tls-cert PEM --tls-key PEM]\n`);
      process.exit(2);
    }
    args[name] = argv[(i += 1)];
  }
  args.port = Number(args.port);
  return args;
}

/** The JSON-lines events file; each line is one synchronous append. */
function openEvents(file) {
  if (!file) return () => {};
  const fd = fs.openSync(file, 'a');
  // Keys sorted at every level, as python_echo.py writes them.
  const sorted = (_key, value) =>
    value && typeof value === 'object' && !Array.isArray(value)
      ? Object.fromEntries(Object.keys(value).sort().map((k) => [k, value[k]]))
      : value;
  return (event) => fs.writeSync(fd, `${JSON.stringify(event, sorted)}\n`);
}

/** Never write a credential: keep its scheme and a short hash to compare with. */
function redact(key, value) {
  if (key !== 'authorization') return value;
  const space = value.indexOf(' ');
  const scheme = space > 0 ? value.slice(0, space) : '';
  const credential = space > 0 ? value.slice(space + 1) : value;
  const digest = crypto.createHash('sha256').update(credential, 'utf8').digest('hex').slice(0, 16);
  return `${scheme} <redacted sha256:${digest}>`.trimStart();
}

/** Every key the call carried; binary values base64, repeated keys joined. */
function metadataObject(metadata) {
  const out = {};
  for (const [key, values] of Object.entries(metadata.toJSON())) {
    out[key] = values
      .map((v) => redact(key, Buffer.isBuffer(v) ? v.toString('base64') : String(v)))
      .join(', ');
  }
  return out;
}

/** One Echo call: its deadline event, and a `cancelled` event if it ends unfinished. */
class Call {
  constructor(write, name, call) {
    this.method = `/${SERVICE}/${name}`;
    this.metadata = metadataObject(call.metadata);
    this.deadline = '';
    this.finished = false;
    const deadline = call.getDeadline();
    const at = deadline instanceof Date ? deadline.getTime() : deadline;
    if (Number.isFinite(at)) {
      const remaining = Math.max(at - Date.now(), 0);
      this.deadline = String(remaining);
      write({ event: 'deadline', method: this.method, remaining_ms: remaining });
    }
    const onCancel = () => {
      if (this.finished) return;
      this.finished = true;
      write({
        event: 'cancelled',
        method: this.method,
        deadline_passed: Number.isFinite(at) && Date.now() >= at - 50,
      });
    };
    if (call.cancelled) onCancel();
    else call.once('cancelled', onCancel);
  }

  finish() {
    this.finished = true;
  }

  reply(message) {
    return { message, metadata: this.metadata, deadline: this.deadline };
  }
}

function echoService(write) {
  return {
    Unary(call, callback) {
      const c = new Call(write, 'Unary', call);
      c.finish();
      callback(null, c.reply(call.request.message));
    },
    ServerStream(call) {
      const c = new Call(write, 'ServerStream', call);
      const { message, count } = call.request;
      let sent = 0;
      // Respects backpressure, so that a large count does not buffer it all.
      const more = () => {
        while (!c.finished && sent < count) {
          sent += 1;
          if (!call.write(c.reply(message))) return call.once('drain', more);
        }
        if (!c.finished) {
          c.finish();
          call.end();
        }
        return undefined;
      };
      more();
    },
    ClientStream(call, callback) {
      const c = new Call(write, 'ClientStream', call);
      const parts = [];
      call.on('data', (request) => parts.push(request.message));
      // A caller's cancel can end the request stream just before it is
      // reported as a cancel: look again once that report has had its turn.
      call.on('end', () =>
        setImmediate(() => {
          if (c.finished || call.cancelled) return;
          c.finish();
          callback(null, c.reply(parts.join('')));
        }),
      );
      call.on('error', () => {});
    },
    Bidi(call) {
      const c = new Call(write, 'Bidi', call);
      call.on('data', (request) => {
        if (!c.finished) call.write(c.reply(request.message));
      });
      // As in ClientStream: a cancel may end the request stream first.
      call.on('end', () =>
        setImmediate(() => {
          if (c.finished || call.cancelled) return;
          c.finish();
          call.end();
        }),
      );
      call.on('error', () => {});
    },
    Fail(call, callback) {
      const c = new Call(write, 'Fail', call);
      c.finish();
      const { code, message, trailer_key: key, trailer_value: value } = call.request;
      if (!(code >= 1 && code <= 16)) {
        callback({ code: grpc.status.INVALID_ARGUMENT, details: `Fail: code ${code} is not 1..16` });
        return;
      }
      const trailers = new grpc.Metadata();
      if (key && value) trailers.set(key, key.endsWith('-bin') ? Buffer.from(value, 'utf8') : value);
      callback({ code, details: message, metadata: trailers });
    },
    Hang(call) {
      new Call(write, 'Hang', call);
      // Headers at once, so that a caller can tell the call has arrived.
      call.sendMetadata(new grpc.Metadata());
    },
  };
}

/** Writes a `call` event for every call, whichever service it is for. */
function recordCalls(write) {
  return (methodDescriptor, call) =>
    new grpc.ServerInterceptingCall(call, {
      start(next) {
        next({
          onReceiveMetadata(metadata, mdNext) {
            write({ event: 'call', method: methodDescriptor.path, metadata: metadataObject(metadata) });
            mdNext(metadata);
          },
        });
      },
    });
}

function main() {
  const args = parseArgs(process.argv.slice(2));
  const write = openEvents(args.events);
  const echoProto = path.join(__dirname, 'proto', 'echo', 'v1', 'echo.proto');
  const definition = protoLoader.loadSync([echoProto, healthProto], {
    keepCase: true,
    longs: String,
    enums: String,
    defaults: true,
    oneofs: true,
  });
  const echo = grpc.loadPackageDefinition(definition).echo.v1.Echo;

  const server = new grpc.Server({ interceptors: [recordCalls(write)] });
  server.addService(echo.service, echoService(write));
  new HealthImplementation({ '': 'SERVING', [SERVICE]: 'SERVING' }).addToServer(server);
  new ReflectionService(definition).addToServer(server);

  let credentials = grpc.ServerCredentials.createInsecure();
  if (args.tlsCert) {
    credentials = grpc.ServerCredentials.createSsl(null, [
      { private_key: fs.readFileSync(args.tlsKey), cert_chain: fs.readFileSync(args.tlsCert) },
    ]);
  }
  server.bindAsync(`${args.host}:${args.port}`, credentials, (error, port) => {
    if (error) {
      process.stderr.write(`node_echo: cannot bind ${args.host}:${args.port}: ${error.message}\n`);
      process.exit(1);
    }
    process.stdout.write(`listening ${args.host}:${port}\n`);
  });
  const stop = () => {
    // Ends calls in flight (a Hang among them) so that the process can exit.
    server.forceShutdown();
    process.exit(0);
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}

main();
