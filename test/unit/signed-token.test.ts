import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { SigningKey } from '../../proto/gen/portcullis/v1/config.ts';
import { signRequestState, verifyRequestState } from '../../data-plane/src/mcp/request-state.ts';
import { signSessionToken, verifySessionToken } from '../../data-plane/src/mcp/session-token.ts';
import { unwrapTaskId, wrapTaskId } from '../../data-plane/src/mcp/task-ids.ts';
import { MemoryToolRouter } from '../support/memory-tool-router.ts';
import { buildConfig, sessionKey, startServer, testKey, initializeRequest } from '../support/mcp-server-harness.ts';

/**
 * Issue 12 finding 7 and issue 13's one signed-token module: every signed token (session ids,
 * request states, task ids) has exactly one accepted spelling, its kind is part of what is
 * signed, and the keys rotate (the first signs, the others still verify).
 */

const current = sessionKey('current');
const previous = sessionKey('previous');
const KEYS: readonly SigningKey[] = [current, previous];

interface Kind {
  readonly name: string;
  sign(keys: readonly SigningKey[]): string;
  verifies(token: string, keys: readonly SigningKey[]): boolean;
}

const KINDS: readonly Kind[] = [
  {
    name: 'session id',
    sign: (keys) =>
      signSessionToken(
        {
          keyId: 'k1',
          protocolVersion: '2025-11-25',
          clientInfo: { name: 'a', version: '1' },
          clientCapabilities: {},
          issuedAt: 1_700_000_000,
        },
        keys,
      ),
    verifies: (token, keys) => verifySessionToken(token, keys).ok,
  },
  {
    name: 'request state',
    sign: (keys) =>
      signRequestState(
        {
          keyId: 'k1',
          node: 'n1',
          nodeTag: 't1',
          exchange: 'x1',
          round: 1,
          method: 'tools/call',
          subject: 'up__tool',
          expiresAt: Date.now() + 60_000,
        },
        keys,
      ),
    verifies: (token, keys) => verifyRequestState(token, 'k1', keys).ok,
  },
  {
    name: 'task id',
    sign: (keys) => wrapTaskId({ upstream: 'up', taskId: 'task-42' }, 'k1', keys),
    verifies: (token, keys) => unwrapTaskId(token, 'k1', keys) !== undefined,
  },
];

const ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
const FOREIGN = ['=', '+', '/', ' ', '.', '\n', '\t', '%', '~', '\0', 'é', '\u200b'];

/** A seeded PRNG (mulberry32): the same mutations on every run, so a failure names one that can be replayed. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Other spellings of the same bytes: the last character of a base64url part with different unused trailing bits. */
function trailingBitVariants(token: string): string[] {
  const variants: string[] = [];
  let start = 0;
  for (const end of [...token.matchAll(/\./g)].map((m) => m.index).concat(token.length)) {
    const part = token.slice(start, end);
    if (part.length % 4 !== 0 && /^[A-Za-z0-9_-]+$/.test(part)) {
      const bytes = Buffer.from(part, 'base64url');
      for (const c of ALPHABET) {
        const other = part.slice(0, -1) + c;
        if (other !== part && Buffer.from(other, 'base64url').equals(bytes))
          variants.push(token.slice(0, start) + other + token.slice(end));
      }
    }
    start = end + 1;
  }
  return variants;
}

/**
 * Mutations of a valid token: padding, characters outside the alphabet, changed, dropped and doubled characters,
 * standard base64, trailing bits.
 */
function mutations(token: string, random: () => number, count: number): string[] {
  const at = () => Math.floor(random() * (token.length + 1));
  const pick = (items: string | readonly string[]): string => items[Math.floor(random() * items.length)]!;
  const dot = token.lastIndexOf('.');
  const out = [
    `${token}=`,
    `${token}==`,
    `${token.slice(0, dot)}=${token.slice(dot)}`,
    ` ${token}`,
    `${token}\n`,
    token.replaceAll('-', '+').replaceAll('_', '/'),
    ...trailingBitVariants(token),
  ];
  for (let i = 0; i < count; i += 1) {
    const p = at();
    switch (Math.floor(random() * 5)) {
      case 0:
        out.push(token.slice(0, p) + pick(FOREIGN) + token.slice(p));
        break;
      case 1:
        out.push(token.slice(0, p) + pick(ALPHABET) + token.slice(p + 1));
        break;
      case 2:
        out.push(token.slice(0, p) + token.slice(p + 1 + Math.floor(random() * 3)));
        break;
      case 3:
        out.push(token.slice(0, p) + token.slice(p, p + 1 + Math.floor(random() * 4)) + token.slice(p));
        break;
      default: {
        const c = token[p] ?? 'a';
        out.push(token.slice(0, p) + (c === c.toUpperCase() ? c.toLowerCase() : c.toUpperCase()) + token.slice(p + 1));
      }
    }
  }
  return out.filter((mutated) => mutated !== token);
}

test(`finding 7: every mutation of a valid signed token (padding, foreign characters, trailing bits, any edit) is \
refused`, () => {
  const random = prng(7);
  for (const kind of KINDS) {
    const token = kind.sign(KEYS);
    assert.ok(kind.verifies(token, KEYS), `${kind.name}: the token itself verifies`);
    assert.ok(
      trailingBitVariants(token).length > 0 || token.split('.').every((part) => part.length % 4 === 0),
      'trailing-bit spellings are among the mutations',
    );
    for (const mutated of mutations(token, random, 3_000)) {
      assert.equal(
        kind.verifies(mutated, KEYS),
        false,
        `${kind.name}: accepted the mutation ${JSON.stringify(mutated)} of ${JSON.stringify(token)}`,
      );
    }
  }
});

test('signed tokens are domain-separated: one kind never passes for another, even under the same keys', () => {
  for (const kind of KINDS) {
    const token = kind.sign(KEYS);
    const body = token.replace(/^pc[a-z0-9]*\./, '');
    for (const other of KINDS) {
      if (other === kind) continue;
      for (const prefix of ['', 'pcrs1.', 'pct.'])
        assert.equal(other.verifies(prefix + body, KEYS), false, `a ${kind.name} passed for a ${other.name}`);
    }
  }
});

test('signed tokens rotate: the first key signs, a previous one still verifies, a retired one does not', () => {
  for (const kind of KINDS) {
    const underPrevious = kind.sign([previous]);
    assert.ok(kind.verifies(underPrevious, [current, previous]), `${kind.name}: still valid under the previous key`);
    assert.equal(kind.verifies(underPrevious, [current]), false, `${kind.name}: refused once its key is retired`);
    assert.ok(kind.verifies(kind.sign([current, previous]), [current]), `${kind.name}: signed with the first key`);
  }
});

test(`finding 7: an ended session id does not come back to life with "=" (or any other spelling) \
appended`, async () => {
  const key = testKey('k1', ['everything__echo']);
  const server = await startServer(
    new MemoryToolRouter([{ upstream: 'everything', name: 'echo' }]),
    buildConfig([key]),
  );
  const post = (sessionId: string | undefined, body: unknown) =>
    fetch(server.url, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        accept: 'application/json, text/event-stream',
        authorization: `Bearer ${key.secret}`,
        'mcp-protocol-version': '2025-06-18',
        ...(sessionId === undefined ? {} : { 'mcp-session-id': sessionId }),
      },
      body: JSON.stringify(body),
    });
  try {
    const opened = await post(undefined, initializeRequest('2025-06-18'));
    const sessionId = opened.headers.get('mcp-session-id')!;
    const ping = { jsonrpc: '2.0', id: 2, method: 'ping' };
    assert.equal((await post(sessionId, ping)).status, 200);
    const ended = await fetch(server.url, {
      method: 'DELETE',
      headers: { authorization: `Bearer ${key.secret}`, 'mcp-session-id': sessionId },
    });
    assert.equal(ended.status, 200);
    for (const respelled of [sessionId, `${sessionId}=`, `${sessionId}==`, ...trailingBitVariants(sessionId)]) {
      assert.equal(
        (await post(respelled, ping)).status,
        404,
        `the ended session answered as ${JSON.stringify(respelled)}`,
      );
    }
  } finally {
    await server.close();
  }
});
