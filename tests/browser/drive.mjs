// Drives headless Chromium (Debian's /usr/bin/chromium, through playwright-core)
// against `authgate dev` for tests/browser/run.sh, which starts the gate and
// the page servers and passes, in the environment:
//   BROWSER_NODE_MODULES  target/browser-node/node_modules
//   GATE                  the gate's base URL, http://127.0.0.1:PORT
//   ALLOWED_SITE          the page's origin that --cors-allow-origin names
//   OTHER_SITES           space-separated origins serving the same page that it
//                         does not name
//   AUTHGATE_TOKEN        the dev token (never printed: output is redacted)
//   EXPECT_SUBJECT        the dev token's `sub`
//   EXPECT_SCOPES         the dev client's scopes, space-separated
//   DRIVE_DEBUG           when set, also prints each failed request Chromium reports
// Prints one line per check and "N passed, M failed"; exits 1 on a failure.
import { createRequire } from "node:module";
import { join } from "node:path";

const env = (name) => {
  const v = process.env[name];
  if (v === undefined || v === "") throw new Error(`${name} is not set`);
  return v;
};
const require = createRequire(join(env("BROWSER_NODE_MODULES"), "_"));
const { chromium } = require("playwright-core");

const GATE = env("GATE");
const ALLOWED = env("ALLOWED_SITE");
const OTHERS = env("OTHER_SITES").split(" ").filter(Boolean);
const TOKEN = env("AUTHGATE_TOKEN");
const SUBJECT = env("EXPECT_SUBJECT");
const SCOPES = env("EXPECT_SCOPES").split(" ").filter(Boolean).sort();
const METHOD = "/authgate.v1.PrivateService/GetPrivate";
const SEED_BODY = '{"message": "This is private"}';
const STEP_MS = 20_000; // any one step: a page load, a call, a wait for an event
const ALL_MS = 180_000; // the whole run

/** Never print a token: anything JWT-shaped becomes TOKEN. */
const redact = (s) => String(s).replace(/eyJ[A-Za-z0-9._-]*/g, "TOKEN");
const log = (s) => console.log(redact(s));
for (const event of ["uncaughtException", "unhandledRejection"]) {
  process.on(event, (e) => {
    log(`drive: ${event}: ${e instanceof Error ? e.stack ?? e.message : e}`);
    process.exit(1);
  });
}

const watchdog = setTimeout(() => {
  log(`drive: gave up after ${ALL_MS / 1000}s`);
  process.exit(1);
}, ALL_MS);

function within(ms, what, promise) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: no answer within ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/** Polls until `probe` returns a truthy value, or fails at the deadline. */
async function until(what, probe, ms = STEP_MS) {
  const deadline = Date.now() + ms;
  for (;;) {
    const value = await probe();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`${what}: not within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

let passed = 0;
let failed = 0;
/** A named check: `body` throws (or returns a string) to fail. */
async function check(name, body) {
  let why;
  try {
    why = await body();
  } catch (e) {
    why = e instanceof Error ? e.message : String(e);
  }
  if (why === undefined || why === true) {
    passed += 1;
    log(`ok    ${name}`);
  } else {
    failed += 1;
    log(`FAIL  ${name}`);
    log(`      ${why}`);
  }
}
const show = (v) => JSON.stringify(v);
function expect(cond, what, got) {
  if (!cond) throw new Error(`${what}; got ${show(got)}`);
}

/**
 * What the gate itself says to a gRPC-Web call, asked from Node (no browser,
 * no CORS): the trailers-only refusal's grpc-status and grpc-message
 * (percent-decoded), for the page's view to be compared with.
 */
async function gateSays(token) {
  const headers = { "content-type": "application/grpc-web+proto", "x-grpc-web": "1" };
  if (token !== null) headers.authorization = "Bearer " + token;
  const res = await fetch(GATE + METHOD, {
    method: "POST",
    headers,
    body: new Uint8Array(5),
    signal: AbortSignal.timeout(STEP_MS),
  });
  await res.arrayBuffer();
  const message = res.headers.get("grpc-message");
  return {
    status: res.headers.get("grpc-status"),
    message: message === null ? null : decodeURIComponent(message),
  };
}

/** A token with a valid dev token's header and signature, and another payload. */
function forge(token) {
  const [header, payload, signature] = token.split(".");
  const claims = JSON.parse(Buffer.from(payload, "base64url").toString());
  claims.sub = "attacker@clients";
  claims.scope = [claims.scope, "admin"].filter(Boolean).join(" ");
  return [header, Buffer.from(JSON.stringify(claims)).toString("base64url"), signature].join(".");
}

/**
 * A page loaded from `site`, with the network failures Chromium reports
 * (CDP Network.loadingFailed, which names the CORS error) collected.
 */
async function openPage(context, site) {
  const page = await context.newPage();
  page.setDefaultTimeout(STEP_MS);
  const cdp = await context.newCDPSession(page);
  const requests = new Map();
  const failures = [];
  cdp.on("Network.requestWillBeSent", (e) => requests.set(e.requestId, `${e.request.method} ${e.request.url}`));
  cdp.on("Network.loadingFailed", (e) => {
    const failure = {
      request: requests.get(e.requestId) ?? "?",
      errorText: e.errorText,
      corsError: e.corsErrorStatus?.corsError ?? null,
    };
    if (process.env.DRIVE_DEBUG) log(`      (${site}: ${show(failure)})`);
    failures.push(failure);
  });
  await cdp.send("Network.enable");
  const response = await page.goto(site + "/", { timeout: STEP_MS });
  expect(response && response.status() === 200, `${site}/ did not load`, response && response.status());
  await page.waitForFunction(() => window.authgateReady === true, null, { timeout: STEP_MS });
  const call = (token) =>
    within(STEP_MS, "callGetPrivate", page.evaluate(([g, t]) => window.callGetPrivate(g, t), [GATE, token]));
  const get = (token) =>
    within(STEP_MS, "fetchRoot", page.evaluate(([g, t]) => window.fetchRoot(g, t), [GATE, token]));
  /** Waits for Chromium's report of a failed request to `url`, then returns it. */
  const failureOf = (method, url) =>
    until(`Chromium's report of the failed ${method} ${url}`, () =>
      failures.find((f) => f.request === `${method} ${url}`),
    );
  return { page, call, get, failureOf, failures };
}

const browser = await chromium.launch({
  executablePath: "/usr/bin/chromium",
  headless: true,
  timeout: 60_000,
  args: [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
  ],
});
try {
  // launch() gives Chromium a new, empty user-data-dir (removed at close);
  // a fresh context on top: no cache, no cookies, nothing from an earlier run.
  const context = await browser.newContext();
  log(`drive: Chromium ${browser.version()}; gate ${GATE}; page from ${ALLOWED} (allowed) and ${OTHERS.join(", ")} (not)`);

  const allowed = await openPage(context, ALLOWED);

  await check("allowed origin, gRPC-Web GetPrivate with the dev token: \"This is private\", the caller's sub and scopes", async () => {
    const r = await allowed.call(TOKEN);
    expect(r.ok === true, "the call failed", r);
    expect(r.message === "This is private", "message", r.message);
    expect(r.subject === SUBJECT, `subject, want ${show(SUBJECT)}`, r.subject);
    expect(show([...r.scopes].sort()) === show(SCOPES), `scopes, want ${show(SCOPES)}`, r.scopes);
  });

  const missing = await gateSays(null);
  await check("allowed origin, GetPrivate without a token: UNAUTHENTICATED (16) with the gate's message", async () => {
    expect(missing.status === "16" && /missing authorization/.test(missing.message ?? ""),
      "the gate itself (from Node) did not say UNAUTHENTICATED, missing authorization", missing);
    const r = await allowed.call(null);
    expect(r.ok === false && r.code === 16 && r.codeName === "Unauthenticated", "code", r);
    expect(r.rawMessage === missing.message, `message, want the gate's ${show(missing.message)}`, r.rawMessage);
  });

  await check("allowed origin, GetPrivate with a garbage token: UNAUTHENTICATED, malformed", async () => {
    const gate = await gateSays("not-a-jwt");
    const r = await allowed.call("not-a-jwt");
    expect(r.ok === false && r.code === 16, "code", r);
    expect(r.rawMessage === gate.message && /malformed/.test(r.rawMessage), `message, want the gate's ${show(gate.message)}`, r.rawMessage);
  });

  await check("allowed origin, GetPrivate with a forged token (payload changed, signature kept): UNAUTHENTICATED", async () => {
    const forged = forge(TOKEN);
    const gate = await gateSays(forged);
    const r = await allowed.call(forged);
    expect(r.ok === false && r.code === 16, "code", r);
    expect(r.rawMessage !== "" && r.rawMessage === gate.message, `message, want the gate's ${show(gate.message)}`, r.rawMessage);
    expect(!r.rawMessage.includes(forged.split(".")[2]), "the message echoes the token", "");
  });

  await check("allowed origin, fetch GET / with the dev token: 200, exactly the seed's JSON", async () => {
    const r = await allowed.get(TOKEN);
    expect(r.threw === false && r.status === 200, "status", r);
    expect(r.body === SEED_BODY, `body, want ${SEED_BODY}`, r.body);
    expect((r.contentType ?? "").startsWith("application/json"), "content-type", r.contentType);
  });

  await check("allowed origin, fetch GET / without a token: the page reads 401, its detail and WWW-Authenticate", async () => {
    const r = await allowed.get(null);
    expect(r.threw === false && r.status === 401, "status", r);
    expect(r.body.startsWith('{"detail": ') && JSON.parse(r.body).detail === missing.message,
      `body, want {"detail": ${show(missing.message)}}`, r.body);
    expect(r.wwwAuthenticate === 'Bearer realm="authgate"', "WWW-Authenticate (exposed)", r.wwwAuthenticate);
  });

  await check("allowed origin, fetch GET / with a garbage token: 401, WWW-Authenticate error=\"invalid_token\"", async () => {
    const r = await allowed.get("not-a-jwt");
    expect(r.threw === false && r.status === 401, "status", r);
    expect(/^Bearer realm="authgate", error="invalid_token", error_description="token is malformed/.test(r.wwwAuthenticate ?? ""),
      "WWW-Authenticate (exposed)", r.wwwAuthenticate);
  });

  for (const site of OTHERS) {
    const other = await openPage(context, site);
    await check(`other origin ${site}, gRPC-Web GetPrivate with the dev token: blocked by CORS`, async () => {
      const r = await other.call(TOKEN);
      expect(r.ok === false && r.cause && r.cause.name === "TypeError", "not blocked: want a ConnectError caused by fetch's TypeError", r);
      const f = await other.failureOf("POST", GATE + METHOD);
      expect(/^Preflight/.test(f.corsError ?? ""), "Chromium's CORS error for the call", f);
    });
    await check(`other origin ${site}, fetch GET / with the dev token: blocked by CORS`, async () => {
      const r = await other.get(TOKEN);
      expect(r.threw === true && r.error.name === "TypeError", "not blocked: want fetch to throw a TypeError", r);
      const f = await other.failureOf("GET", GATE + "/");
      // Authorization is not a CORS-safelisted header: a preflight goes first.
      expect(/^Preflight/.test(f.corsError ?? ""), "Chromium's CORS error for the fetch", f);
    });
    await check(`other origin ${site}, fetch GET / without a token (no preflight): the 401 is not readable`, async () => {
      const before = other.failures.length;
      const r = await other.get(null);
      expect(r.threw === true && r.error.name === "TypeError", "not blocked: want fetch to throw a TypeError", r);
      const f = await until("Chromium's report of the failed GET", () =>
        other.failures.slice(before).find((x) => x.request === `GET ${GATE}/`));
      expect(f.corsError === "MissingAllowOriginHeader", "Chromium's CORS error", f);
    });
    await other.page.close();
  }

  await check("allowed origin still answers after the other origins' attempts", async () => {
    const r = await allowed.call(TOKEN);
    expect(r.ok === true && r.message === "This is private", "the call", r);
  });
  log("note: proto/authgate/v1/private.proto has no server-streaming method: none to call");
} catch (e) {
  failed += 1;
  log(`FAIL  drive: ${e instanceof Error ? e.stack ?? e.message : e}`);
} finally {
  await within(STEP_MS, "closing Chromium", browser.close()).catch((e) => log(`drive: ${e.message}`));
  clearTimeout(watchdog);
}

log(`${passed} passed, ${failed} failed`);
process.exit(failed === 0 ? 0 : 1);
