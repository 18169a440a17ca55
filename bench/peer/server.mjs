// The reference peer for the fan-out benchmark: a minimal Node server with
// the current platform's behaviour. A socket.io v4 server (WebSocket
// transport), an HS256 token in the handshake auth, each socket joined to
// the room <steamId> (the token's sub), and a node-redis v4 subscriber on
// `tradestate` that does io.to(steamId).emit('tradestate', obj).
//
//   node server.mjs --listen 127.0.0.1:PORT --redis redis://127.0.0.1:R/0 --jwt-secret S
//     [--transports websocket|polling,websocket]
//
// --transports: Engine.IO transports offered, comma-separated; default
// `websocket` (as the fan-out suite, bench/run.sh, measures it). The polling
// benchmark (bench/polling/run.sh) passes `polling,websocket`.
//
// GET /readyz answers 200 once the Redis subscription is active (the bench
// waits for it), 503 before. SIGTERM/SIGINT exit 0.

import crypto from 'node:crypto';
import http from 'node:http';
import { createClient } from 'redis';
import { Server } from 'socket.io';

function arg(name, env, def) {
  const i = process.argv.indexOf(name);
  if (i > 0 && i + 1 < process.argv.length) return process.argv[i + 1];
  return process.env[env] ?? def;
}

const listen = arg('--listen', 'COORDHUB_LISTEN', '127.0.0.1:8080');
const redisUrl = arg('--redis', 'REDIS_URL', 'redis://127.0.0.1:6379/0');
const secret = arg('--jwt-secret', 'COORDHUB_JWT_SECRET', undefined);
const transports = arg('--transports', 'PEER_TRANSPORTS', 'websocket').split(',').filter(Boolean);
if (!secret) {
  console.error('peer: --jwt-secret is required');
  process.exit(2);
}
const colon = listen.lastIndexOf(':');
const host = listen.slice(0, colon);
const port = Number(listen.slice(colon + 1));

// HS256 verification with node's crypto: header alg pinned, signature
// compared in constant time, exp in the future, sub a string. Returns the
// sub or null.
const key = Buffer.from(secret);
function verifyToken(token) {
  if (typeof token !== 'string') return null;
  const parts = token.split('.');
  if (parts.length !== 3) return null;
  try {
    const header = JSON.parse(Buffer.from(parts[0], 'base64url').toString());
    if (header.alg !== 'HS256') return null;
    const sig = Buffer.from(parts[2], 'base64url');
    const want = crypto.createHmac('sha256', key).update(`${parts[0]}.${parts[1]}`).digest();
    if (sig.length !== want.length || !crypto.timingSafeEqual(sig, want)) return null;
    const claims = JSON.parse(Buffer.from(parts[1], 'base64url').toString());
    if (!Number.isInteger(claims.exp) || claims.exp <= Date.now() / 1000) return null;
    if (typeof claims.sub !== 'string' || claims.sub.length === 0) return null;
    return claims.sub;
  } catch {
    return null;
  }
}

let ready = false;
const httpServer = http.createServer((req, res) => {
  if (req.url === '/readyz' || req.url === '/healthz') {
    const ok = req.url === '/healthz' || ready;
    res.writeHead(ok ? 200 : 503, { 'content-type': 'text/plain' });
    res.end(ok ? 'ok\n' : 'not ready\n');
    return;
  }
  res.writeHead(404);
  res.end();
});

const io = new Server(httpServer, { transports, serveClient: false });

io.use((socket, next) => {
  const sub = verifyToken(socket.handshake.auth?.token ?? socket.handshake.query?.token);
  if (!sub) return next(new Error('unauthorized'));
  socket.data.steamId = sub;
  next();
});

io.on('connection', (socket) => {
  socket.join(socket.data.steamId);
});

const subscriber = createClient({ url: redisUrl });
subscriber.on('error', (e) => console.error(`peer: redis: ${e.message}`));
await subscriber.connect();
await subscriber.subscribe('tradestate', (message) => {
  let obj;
  try {
    obj = JSON.parse(message);
  } catch {
    return;
  }
  if (obj && obj.steamId) io.to(String(obj.steamId)).emit('tradestate', obj);
});
ready = true;

httpServer.listen(port, host, () => {
  console.error(`peer: listening on ${host}:${port}, subscribed to tradestate on ${redisUrl}`);
});

const stop = () => {
  io.close();
  subscriber.quit().catch(() => {});
  setTimeout(() => process.exit(0), 200).unref();
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
