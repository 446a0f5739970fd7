import { z } from 'zod';
import { errorMessage, type Logger } from '../../../common/src/index.ts';
import type { RelayEnvelope } from '../../../proto/gen/portcullis/v1/config.ts';
import type { AppliedConfig } from '../config/applied-config.ts';
import type { InFlightRequests } from '../http/in-flight.ts';
import type { EndedSessions } from '../mcp/ended-sessions.ts';
import { isPlainObject } from '../mcp/json-rpc.ts';
import { ServerRequests, type ServerRequestOwner } from '../mcp/server-requests.ts';
import { SessionGuard } from '../mcp/session-guard.ts';
import type { SessionClaims } from '../mcp/session-token.ts';
import { RelayedCalls, type RelayedCallsOptions } from './relayed-calls.ts';

/** Largest relayed JSON-RPC response (the control plane refuses larger ones too). */
export const MAX_RELAY_JSON_CHARS = 256 * 1024;

const TAG = /^([A-Za-z0-9_-]{1,32})?$/;

/** Largest relayed answer (the control plane refuses larger ones too). */
export const MAX_RELAY_ANSWER_CHARS = 1024 * 1024;

const relayJson = z.string().min(2).max(MAX_RELAY_JSON_CHARS);
const callId = z.string().regex(/^[A-Za-z0-9_-]{1,64}$/, 'must be a call id');

/** Kinds about a 2025-era session, which must carry its id (calls may be of a 2026-07-28 agent, which has none). */
const SESSION_KINDS: ReadonlySet<string> = new Set(['reply', 'cancel', 'ended']);

/** What a node accepts from the control plane: checked again here, the control plane is not trusted blindly. */
const envelopeSchema = z
  .object({
    toNodeTag: z.string().regex(TAG, 'must be a node tag or empty'),
    fromNodeId: z.string().max(128),
    fromNodeTag: z.string().regex(TAG, 'must be a node tag or empty'),
    keyId: z.string().min(1, 'must name the virtual key of the agent').max(128),
    sessionId: z.string().max(8192),
    kind: z.discriminatedUnion('$case', [
      z.object({ $case: z.literal('reply'), value: z.object({ responseJson: relayJson }) }),
      z.object({
        $case: z.literal('cancel'),
        value: z.object({ requestIdJson: z.string().min(1).max(1024), reason: z.string().max(1024) }),
      }),
      z.object({ $case: z.literal('ended'), value: z.object({ expiresAtMs: z.number().int().positive() }) }),
      z.object({
        $case: z.literal('call'),
        value: z.object({
          callId,
          request: z.discriminatedUnion('$case', [
            z.object({ $case: z.literal('inputRetryJson'), value: relayJson }),
            z.object({ $case: z.literal('sseMessagesJson'), value: relayJson }),
          ]),
        }),
      }),
      z.object({
        $case: z.literal('callUpdate'),
        value: z.object({
          callId,
          update: z.discriminatedUnion('$case', [
            z.object({ $case: z.literal('accepted'), value: z.boolean() }),
            z.object({ $case: z.literal('notificationJson'), value: relayJson }),
            z.object({
              $case: z.literal('answer'),
              value: z.object({
                status: z.number().int().min(200).max(599),
                bodyJson: z.string().max(MAX_RELAY_ANSWER_CHARS),
              }),
            }),
            z.object({ $case: z.literal('cancelled'), value: z.string().max(1024) }),
            z.object({ $case: z.literal('undeliverable'), value: z.string().max(1024) }),
          ]),
        }),
      }),
    ]),
  })
  .refine((envelope) => !SESSION_KINDS.has(envelope.kind.$case) || envelope.sessionId !== '', {
    message: "must be the agent's session id",
    path: ['sessionId'],
  });

/** A JSON-RPC response to a server-to-client request: its id, and a result or an error. */
const responseSchema = z
  .looseObject({
    jsonrpc: z.literal('2.0'),
    id: z.string().max(64),
  })
  .refine((r) => isPlainObject(r['result']) || isPlainObject(r['error']), 'must carry a result or an error object');

const requestIdSchema = z.union([z.string().max(512), z.number().finite()]);

export interface NodeRelayOptions {
  readonly serverRequests: ServerRequests;
  readonly inFlight: InFlightRequests;
  readonly endedSessions: EndedSessions;
  /**
   * Checks the session ids of relayed cancels and ended sessions, as every transport does (default: one over
   * endedSessions).
   */
  readonly sessionGuard?: SessionGuard;
  readonly getConfig: () => AppliedConfig | undefined;
  readonly logger: Logger;
  /** Drops what this node holds for a session another node ended (its streams, subscriptions, log level). */
  readonly onSessionEnded: (sessionId: string) => void;
  /** Timeouts of calls relayed to other nodes (defaults in relayed-calls.ts). */
  readonly calls?: Omit<RelayedCallsOptions, 'logger'>;
}

/** How a reply that is not this node's fared. */
export type ReplyOutcome = 'relayed' | 'own' | 'not-a-server-request' | 'too-large' | 'no-control-plane';

/**
 * Node-to-node messages through the control plane (ConfigService.Connect, RelayEnvelope). Out: an
 * agent's reply to another node's server-to-client request (addressed by the tag in its id), a
 * cancel for a request not in flight here (to every node), a session ended here (to every node;
 * the control plane keeps it for nodes that connect later). In: the same, each checked against this
 * node's own state before it acts: a reply settles only a request sent to that session and key, a
 * cancel and an ended session must carry a session id this node verifies as issued to that key.
 * Sending never waits: the message goes on the open stream or is dropped when there is none.
 */
export class NodeRelay {
  private transport: (envelope: RelayEnvelope) => boolean = () => false;
  /** Requests relayed to the node that can serve them, and those relayed here (see relayed-calls.ts). */
  readonly calls: RelayedCalls;

  private readonly sessionGuard: SessionGuard;

  constructor(private readonly options: NodeRelayOptions) {
    this.sessionGuard = options.sessionGuard ?? new SessionGuard(options.endedSessions);
    this.calls = new RelayedCalls((envelope) => this.send(envelope), { ...options.calls, logger: options.logger });
  }

  /** The tag this node's server-request ids carry (announced in the hello). */
  get nodeTag(): string {
    return this.options.serverRequests.nodeTag;
  }

  /** Where envelopes go (the config stream); until set, nothing is relayed. */
  connect(transport: (envelope: RelayEnvelope) => boolean): void {
    this.transport = transport;
  }

  /** A reply this node has no pending request for: relayed to the node its id names. */
  reply(response: unknown, owner: ServerRequestOwner): ReplyOutcome {
    const id = isPlainObject(response) ? response['id'] : undefined;
    const tag = ServerRequests.nodeTagOf(id);
    if (tag === undefined) return 'not-a-server-request';
    if (tag === this.nodeTag) return 'own';
    const responseJson = JSON.stringify(response);
    if (responseJson.length > MAX_RELAY_JSON_CHARS) {
      this.options.logger.warn(
        { id, chars: responseJson.length },
        `reply to another node's server-to-client request not relayed: larger than ${MAX_RELAY_JSON_CHARS} characters`,
      );
      return 'too-large';
    }
    const sent = this.send({
      toNodeTag: tag,
      keyId: owner.keyId,
      sessionId: owner.sessionId,
      kind: { $case: 'reply', value: { responseJson } },
    });
    return sent ? 'relayed' : 'no-control-plane';
  }

  /** A cancel for a request not in flight here: every other node is asked, the one running it aborts it. */
  cancel(owner: ServerRequestOwner, requestId: unknown, reason: unknown): boolean {
    const id = requestIdSchema.safeParse(requestId);
    if (!id.success) return false;
    const text = typeof reason === 'string' ? reason.slice(0, 1024) : 'cancelled by the agent';
    return this.send({
      toNodeTag: '',
      keyId: owner.keyId,
      sessionId: owner.sessionId,
      kind: { $case: 'cancel', value: { requestIdJson: JSON.stringify(id.data), reason: text } },
    });
  }

  /** Ends a session here and tells every other node (through the control plane, which keeps it). */
  endSession(sessionId: string, claims: SessionClaims): void {
    const ended = this.options.endedSessions.end(sessionId, claims);
    if (ended !== undefined) this.sendEnded(ended.token, ended.keyId, ended.expiresAt);
  }

  /** After a (re)connect: the ended sessions this node knows, so a restarted control plane learns them again. */
  announceEnded(): void {
    for (const ended of this.options.endedSessions.live()) this.sendEnded(ended.token, ended.keyId, ended.expiresAt);
  }

  /** A message another node relayed here. */
  receive(raw: RelayEnvelope): void {
    const parsed = envelopeSchema.safeParse(raw);
    if (!parsed.success) {
      const issue = parsed.error.issues[0];
      this.options.logger.warn(
        { field: `relay.${(issue?.path ?? []).join('.')}`, err: issue?.message },
        'ignored a malformed relay envelope',
      );
      return;
    }
    const envelope = parsed.data;
    const owner: ServerRequestOwner = { sessionId: envelope.sessionId, keyId: envelope.keyId };
    const log = this.options.logger;
    try {
      switch (envelope.kind.$case) {
        case 'reply': {
          if (envelope.toNodeTag !== this.nodeTag)
            return log.debug({ toNodeTag: envelope.toNodeTag }, 'relayed reply for another node tag ignored');
          const response = responseSchema.safeParse(JSON.parse(envelope.kind.value.responseJson));
          if (!response.success)
            return log.warn(
              { from: envelope.fromNodeId, err: response.error.issues[0]?.message },
              'ignored a relayed reply that is not a JSON-RPC response',
            );
          if (!this.options.serverRequests.settle(response.data, owner))
            log.debug(
              { id: response.data.id, from: envelope.fromNodeId },
              'relayed reply settles no request sent to that session and key here',
            );
          return;
        }
        case 'cancel': {
          if (this.verifiedClaims(envelope.sessionId, envelope.keyId) === undefined)
            return log.debug(
              { from: envelope.fromNodeId },
              "relayed cancel for a session this node does not verify as that key's; ignored",
            );
          const requestId = requestIdSchema.safeParse(JSON.parse(envelope.kind.value.requestIdJson));
          if (!requestId.success)
            return log.warn(
              { from: envelope.fromNodeId },
              'ignored a relayed cancel whose request id is not a string or number',
            );
          if (this.options.inFlight.cancel(envelope.sessionId, requestId.data, envelope.kind.value.reason))
            log.debug(
              { requestId: requestId.data, from: envelope.fromNodeId },
              'request cancelled by a cancel relayed from another node',
            );
          return;
        }
        case 'ended': {
          const claims = this.verifiedClaims(envelope.sessionId, envelope.keyId);
          if (claims === undefined)
            return log.debug(
              { from: envelope.fromNodeId },
              "relayed ended session this node does not verify as that key's; ignored",
            );
          if (this.options.endedSessions.end(envelope.sessionId, claims) !== undefined)
            this.options.onSessionEnded(envelope.sessionId);
          return;
        }
        case 'call':
          if (envelope.toNodeTag !== this.nodeTag)
            return log.debug({ toNodeTag: envelope.toNodeTag }, 'relayed call for another node tag ignored');
          return this.calls.serve(
            envelope.fromNodeTag,
            { keyId: envelope.keyId, sessionId: envelope.sessionId },
            envelope.kind.value.callId,
            envelope.kind.value.request,
          );
        case 'callUpdate':
          if (envelope.toNodeTag !== this.nodeTag)
            return log.debug({ toNodeTag: envelope.toNodeTag }, 'relayed call update for another node tag ignored');
          return this.calls.update(
            envelope.fromNodeTag,
            envelope.keyId,
            envelope.kind.value.callId,
            envelope.kind.value.update,
          );
      }
    } catch (error) {
      log.warn(
        { from: envelope.fromNodeId, kind: envelope.kind.$case, err: errorMessage(error) },
        'ignored a relay envelope that could not be applied',
      );
    }
  }

  /** The session's claims when the guard admits its id for `keyId` here (an ended or expired one is not). */
  private verifiedClaims(sessionId: string, keyId: string): SessionClaims | undefined {
    const config = this.options.getConfig();
    if (config === undefined) return undefined;
    const admitted = this.sessionGuard.admit(sessionId, keyId, config.sessionKeys, 'streamable-http');
    return admitted.ok ? admitted.claims : undefined;
  }

  private sendEnded(sessionId: string, keyId: string, expiresAt: number): void {
    this.send({ toNodeTag: '', keyId, sessionId, kind: { $case: 'ended', value: { expiresAtMs: expiresAt } } });
  }

  private send(envelope: Omit<RelayEnvelope, 'fromNodeId' | 'fromNodeTag'>): boolean {
    try {
      return this.transport({ ...envelope, fromNodeId: '', fromNodeTag: '' });
    } catch (error) {
      this.options.logger.warn(
        { kind: envelope.kind?.$case, err: errorMessage(error) },
        'could not relay a message to the control plane',
      );
      return false;
    }
  }
}
