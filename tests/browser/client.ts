// The page's side of tests/browser/run.sh: a real gRPC-Web client
// (@connectrpc/connect-web's createGrpcWebTransport, the client generated from
// proto/authgate/v1/private.proto by protoc-gen-es) and plain fetch, exposed
// on window for the driver (drive.mjs) to call with page.evaluate. Bundled by
// esbuild into target/browser-test/site/bundle.js; the generated code is
// imported from target/browser-test/gen (never committed).
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createGrpcWebTransport } from "@connectrpc/connect-web";
import { PrivateService } from "./gen/authgate/v1/private_pb";

/** How long one call or fetch may take before the page gives up. */
const TIMEOUT_MS = 10_000;

/** What a thrown value was, for the driver to judge (never the token). */
function describe(e: unknown): { name: string; message: string } {
  if (e instanceof Error) return { name: e.name, message: e.message };
  return { name: typeof e, message: String(e) };
}

/**
 * GetPrivate over gRPC-Web (binary, application/grpc-web+proto), with
 * `Authorization: Bearer <token>` when a token is given.
 */
async function callGetPrivate(baseUrl: string, token: string | null) {
  const transport = createGrpcWebTransport({ baseUrl, useBinaryFormat: true });
  const client = createClient(PrivateService, transport);
  const headers: Record<string, string> = {};
  if (token !== null) headers["Authorization"] = "Bearer " + token;
  try {
    // timeoutMs also sends grpc-timeout, a header the preflight must allow.
    const res = await client.getPrivate({}, { headers, timeoutMs: TIMEOUT_MS });
    return { ok: true, message: res.message, subject: res.subject, scopes: [...res.scopes] };
  } catch (e) {
    const err = ConnectError.from(e);
    return {
      ok: false,
      code: err.code,
      codeName: Code[err.code],
      rawMessage: err.rawMessage,
      cause: err.cause === undefined ? null : describe(err.cause),
    };
  }
}

/**
 * GET baseUrl + "/" with fetch, as a page would: the status, the body and the
 * headers a page may read, or what fetch threw (a CORS block is a TypeError).
 */
async function fetchRoot(baseUrl: string, token: string | null) {
  const headers: Record<string, string> = {};
  if (token !== null) headers["Authorization"] = "Bearer " + token;
  try {
    const res = await fetch(baseUrl + "/", { headers, signal: AbortSignal.timeout(TIMEOUT_MS) });
    return {
      threw: false,
      status: res.status,
      body: await res.text(),
      contentType: res.headers.get("content-type"),
      wwwAuthenticate: res.headers.get("www-authenticate"),
    };
  } catch (e) {
    return { threw: true, error: describe(e) };
  }
}

Object.assign(window, { callGetPrivate, fetchRoot, authgateReady: true });
