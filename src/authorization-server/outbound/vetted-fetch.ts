/**
 * The one way the authorization server fetches anything a client names: Client ID Metadata
 * Documents, `jwks_uri`, `sector_identifier_uri`, `request_uri` and whatever comes later (logos,
 * federation metadata). Design §3: every outbound fetch for a client checks the resolved address
 * before it connects.
 *
 * - SSRF (CIMD draft §8.6, RFC 7591 §5): every address the host resolves to must be public unicast
 *   (special-use-address.ts); the socket is then connected to exactly the vetted address, through a
 *   custom `lookup` handed to node:http/node:https, so DNS rebinding between the check and the connect
 *   is impossible. IP-literal hosts are vetted the same way, before any socket exists, so a refused
 *   address costs no connection and its answer time says nothing about the port (no scan oracle). The
 *   peer address of the connected socket is checked again.
 * - https only; plain http only to a loopback peer, and only with the development switch.
 * - No redirects: the status is returned as it is; `Location` is never followed.
 * - Bounded work: one deadline covers DNS, connect, TLS, headers and body; the body is capped by
 *   Content-Length and while streaming; content-encoded bodies are refused rather than inflated.
 * - No pooled sockets: a fresh agent per request.
 */
import type { LookupAddress } from 'node:dns';
import { lookup as dnsLookup } from 'node:dns/promises';
import * as http from 'node:http';
import * as https from 'node:https';
import { isIP, type LookupFunction, type Socket } from 'node:net';
import { isLoopbackAddress, isPublicAddress } from '../clients/special-use-address.ts';

/** Why an outbound request failed, for logs and the callers' own error codes; never sent to clients. */
export type OutboundFailure =
  | 'invalid_url'
  | 'forbidden_address'
  | 'network'
  | 'timeout'
  | 'too_large'
  | 'encoded';

export class OutboundRequestError extends Error {
  readonly reason: OutboundFailure;
  constructor(reason: OutboundFailure, message: string) {
    super(message);
    this.name = 'OutboundRequestError';
    this.reason = reason;
  }
}

/** Resolves a host name to all of its addresses, like `dns.lookup(host, { all: true })`. */
export type HostLookup = (hostname: string) => Promise<LookupAddress[]>;

export interface VettedResponse {
  status: number;
  /** Lower-case header names, as node:http delivers them. */
  headers: Readonly<Record<string, string | string[] | undefined>>;
  /** The body, only read for a 200 response (empty otherwise), never longer than `maxBytes`. */
  body: Uint8Array;
}

export interface VettedRequestOptions {
  maxBytes: number;
  timeoutMs: number;
  /** Development switch: loopback addresses count as acceptable peers (and http to them). */
  allowLoopback: boolean;
  headers: Readonly<Record<string, string>>;
  lookup?: HostLookup;
}

/** Performs one GET with the guarantees above; what a replacement transport must guarantee too. */
export type VettedGet = (url: URL, options: VettedRequestOptions) => Promise<VettedResponse>;

interface AddressPolicy {
  allowLoopback: boolean;
  /** Plain http is only ever allowed to a loopback peer: never send cleartext off the machine. */
  loopbackOnly: boolean;
}

function isAcceptablePeer(address: string, policy: AddressPolicy): boolean {
  if (policy.allowLoopback && isLoopbackAddress(address)) return true;
  if (policy.loopbackOnly) return false;
  return isPublicAddress(address);
}

export const systemLookup: HostLookup = (hostname) => dnsLookup(hostname, { all: true, order: 'verbatim' });

const failure = (reason: OutboundFailure, message: string) => new OutboundRequestError(reason, message);

/**
 * The transport. Vetting happens inside the socket's `lookup` hook: the addresses it hands back to
 * node:net are the only ones the socket may connect to, so the check and the connection use the same
 * answer. Every address must pass, not just the first: otherwise a host publishing one public and one
 * private address could steer the connection (Happy Eyeballs tries several) to the private one.
 */
export const vettedGet: VettedGet = (url, options) =>
  new Promise<VettedResponse>((resolve, reject) => {
    if (url.protocol !== 'https:' && !(url.protocol === 'http:' && options.allowLoopback)) {
      reject(failure('invalid_url', 'only https URLs are fetched'));
      return;
    }
    const policy: AddressPolicy = {
      allowLoopback: options.allowLoopback,
      loopbackOnly: url.protocol === 'http:',
    };
    const hostname = url.hostname.startsWith('[') ? url.hostname.slice(1, -1) : url.hostname;
    const lookupHost = options.lookup ?? systemLookup;

    // node:net skips `lookup` for IP literals, so those are vetted here, before any socket exists.
    if (isIP(hostname) !== 0 && !isAcceptablePeer(hostname, policy)) {
      reject(failure('forbidden_address', 'the address is not allowed'));
      return;
    }

    let settled = false;
    let request: http.ClientRequest | undefined;
    const finish = (outcome: { error: unknown } | { response: VettedResponse }) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      // Nothing more to read; also drops the connection instead of draining a non-200 body.
      request?.destroy();
      if ('error' in outcome) reject(outcome.error);
      else resolve(outcome.response);
    };
    const fail = (error: unknown) => finish({ error });

    // One deadline for the whole exchange: a slow DNS answer, a peer that accepts and never answers, or
    // one that trickles the body byte by byte all end here.
    const timer = setTimeout(() => fail(failure('timeout', 'no answer in time')), options.timeoutMs);

    const lookup: LookupFunction = (host, lookupOptions, callback) => {
      const wanted = lookupOptions.family === 4 || lookupOptions.family === 6 ? lookupOptions.family : 0;
      const vet = (found: LookupAddress[]): LookupAddress[] | OutboundRequestError => {
        if (!found.every((a) => isAcceptablePeer(a.address, policy))) {
          return failure('forbidden_address', 'the host resolves to an address that is not allowed');
        }
        const addresses = found.filter((a) => wanted === 0 || a.family === wanted);
        return addresses.length === 0 ? failure('network', 'the host has no usable address') : addresses;
      };
      lookupHost(host)
        .then(vet, () => failure('network', 'the host name could not be resolved'))
        .then((outcome) => {
          if (outcome instanceof OutboundRequestError) {
            // Settle with our own error first (node:net may wrap or replace it), then let the socket fail too.
            fail(outcome);
            callback(outcome as unknown as NodeJS.ErrnoException, '', 0);
          } else if (lookupOptions.all) {
            // Only vetted addresses are handed over: the socket cannot connect anywhere else.
            callback(null, outcome);
          } else {
            callback(null, outcome[0]!.address, outcome[0]!.family);
          }
        });
    };

    const client = url.protocol === 'https:' ? https : http;
    try {
      request = client.request({
        protocol: url.protocol,
        hostname,
        port: url.port === '' ? undefined : Number(url.port),
        path: `${url.pathname}${url.search}`,
        method: 'GET',
        headers: { ...options.headers },
        lookup,
        // A fresh agent per request: no pooled keep-alive socket (possibly opened without vetting, or to
        // a different address) can be reused.
        agent: false,
      });
    } catch {
      fail(failure('network', 'the request could not be made'));
      return;
    }

    request.on('socket', (socket: Socket) => {
      // Defence in depth: whatever path produced the connection, the peer must be acceptable.
      socket.once('connect', () => {
        const peer = socket.remoteAddress;
        // No peer address means the connection is already gone (the peer hung up): fail closed either way.
        if (peer === undefined) fail(failure('network', 'the connection closed'));
        else if (!isAcceptablePeer(peer, policy))
          fail(failure('forbidden_address', 'the peer is not allowed'));
      });
    });

    request.on('error', (error: unknown) => {
      fail(error instanceof OutboundRequestError ? error : failure('network', 'the connection failed'));
    });

    request.on('response', (response) => {
      const status = response.statusCode ?? 0;
      if (status !== 200) {
        // Only 200 carries a document; a 3xx is not followed: Location is never looked at.
        finish({ response: { status, headers: response.headers, body: new Uint8Array() } });
        return;
      }
      const tooLarge = () => failure('too_large', `the response exceeds ${options.maxBytes} bytes`);
      // Refuse early when the peer announces more than we will read.
      const declared = response.headers['content-length'];
      if (declared !== undefined && Number(declared) > options.maxBytes) {
        fail(tooLarge());
        return;
      }
      // Identity encoding is asked for and nothing is decompressed (a few kilobytes on the wire could
      // expand without bound), so an encoded body is refused.
      const encoding = response.headers['content-encoding'];
      if (encoding !== undefined && encoding.toLowerCase() !== 'identity') {
        fail(failure('encoded', 'the response must not be content-encoded'));
        return;
      }
      const chunks: Buffer[] = [];
      let received = 0;
      response.on('data', (chunk: Buffer) => {
        received += chunk.length;
        // The cap also holds without Content-Length (chunked or close-delimited bodies).
        if (received > options.maxBytes) {
          fail(tooLarge());
          return;
        }
        chunks.push(chunk);
      });
      response.on('end', () => {
        finish({ response: { status, headers: response.headers, body: Buffer.concat(chunks) } });
      });
      response.on('error', () => fail(failure('network', 'the response was cut')));
      response.on('close', () => {
        if (!response.complete) fail(failure('network', 'the response was cut'));
      });
    });

    request.end();
  });
