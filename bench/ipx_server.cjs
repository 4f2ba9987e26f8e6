// ipx peer for the service benchmark: ipx's own Node server over a directory, on 127.0.0.1:$PORT.
// Env: PIXELMILL_BENCH_NODE_DIR (where npm installed ipx), IPX_DIR, PORT.
"use strict";
const http = require("node:http");
const path = require("node:path");
const { createRequire } = require("node:module");

const req = createRequire(path.join(process.env.PIXELMILL_BENCH_NODE_DIR, "package.json"));
const { createIPX, ipxFSStorage, createIPXNodeServer } = req("ipx");
// The sharp that ipx itself loads (npm may nest a different version under ipx): one thread, no
// libvips operation cache, the same settings as the engine benchmark.
const sharp = createRequire(req.resolve("ipx"))("sharp");
sharp.concurrency(1);
sharp.cache(false);

const ipx = createIPX({ storage: ipxFSStorage({ dir: process.env.IPX_DIR }) });
http.createServer(createIPXNodeServer(ipx)).listen(Number(process.env.PORT), "127.0.0.1", () => {
  console.log(`ipx listening on 127.0.0.1:${process.env.PORT}, sharp ${sharp.versions.sharp}`);
});
