// A static file server for tests/browser/run.sh: serves DIR (index.html and
// bundle.js) on two loopback ports, two origins, and prints
// "site 127.0.0.1:PORT" for each once it listens. Answers GET and HEAD for
// files directly in DIR, 404 otherwise. Stops on SIGTERM/SIGINT, and by itself
// after a while in case nobody stops it.
//   node serve.mjs DIR
import { createServer } from "node:http";
import { readFile } from "node:fs/promises";
import { extname, join } from "node:path";

const dir = process.argv[2];
if (!dir) {
  console.error("usage: node serve.mjs DIR");
  process.exit(2);
}
const types = { ".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8" };

function handle(req, res) {
  const path = new URL(req.url, "http://x").pathname;
  const name = path === "/" ? "index.html" : path.slice(1);
  if ((req.method !== "GET" && req.method !== "HEAD") || name.includes("/") || !types[extname(name)]) {
    res.writeHead(404, { "content-type": "text/plain" }).end("not found\n");
    return;
  }
  readFile(join(dir, name)).then(
    (body) => {
      res.writeHead(200, { "content-type": types[extname(name)], "cache-control": "no-store" });
      res.end(req.method === "HEAD" ? undefined : body);
    },
    () => res.writeHead(404, { "content-type": "text/plain" }).end("not found\n"),
  );
}

const servers = [createServer(handle), createServer(handle)];
for (const server of servers) {
  server.listen(0, "127.0.0.1", () => console.log(`site 127.0.0.1:${server.address().port}`));
}
const stop = () => {
  for (const server of servers) server.close();
  process.exit(0);
};
process.on("SIGTERM", stop);
process.on("SIGINT", stop);
setTimeout(stop, 15 * 60 * 1000);
