import { createHash, randomBytes, randomUUID } from 'node:crypto';
import type { DataSource } from 'typeorm';
import { z } from 'zod';
import { PortcullisError, ErrorCode } from '../../../common/src/index.ts';
import { MAX_PAGE_SIZE, type Page } from '../services/pagination.ts';
import { parseId, parseInput } from '../services/validation.ts';
import { ADMIN_ROLES, type Admin, type AdminRole } from './roles.ts';

export const ADMIN_TOKEN_PREFIX = 'pca_';
/** "pca_" and 8 of the 43 random characters: enough to tell tokens apart, nothing to guess with. */
const SHOWN_PREFIX_LENGTH = 12;

export interface AdminTokenView {
  id: string;
  name: string;
  role: AdminRole;
  prefix: string;
  createdBy: string;
  createdAt: Date;
  revokedAt: Date | null;
}

const createSchema = z.object({
  name: z
    .string()
    .trim()
    .min(1, 'is empty; name the person or automation the token is for')
    .max(128, 'is longer than 128 characters; shorten it'),
  role: z.enum(ADMIN_ROLES as [AdminRole, ...AdminRole[]], { error: 'must be one of admin, operator, auditor' }),
});

interface Row {
  id: string;
  name: string;
  role: AdminRole;
  prefix: string;
  created_by: string;
  created_at: Date;
  revoked_at: Date | null;
}

const COLUMNS = 'id, name, role, prefix, created_by, created_at, revoked_at';

function view(row: Row): AdminTokenView {
  return {
    id: row.id,
    name: row.name,
    role: row.role,
    prefix: row.prefix,
    createdBy: row.created_by,
    createdAt: row.created_at,
    revokedAt: row.revoked_at,
  };
}

const sha256 = (secret: string) => createHash('sha256').update(secret).digest();

/**
 * Admin tokens per person, each with a role: the secret is shown once at creation and stored only
 * as its SHA-256; revoking keeps the row. Not part of the data plane's configuration.
 */
export class AdminTokenService {
  private readonly revokedListeners = new Set<(tokenId: string) => void>();

  constructor(private readonly dataSource: DataSource) {}

  /** Calls `listener` with the id of every token revoked through this replica; returns the unsubscriber. */
  onRevoked(listener: (tokenId: string) => void): () => void {
    this.revokedListeners.add(listener);
    return () => this.revokedListeners.delete(listener);
  }

  async create(rawInput: unknown, by: Admin): Promise<{ token: AdminTokenView; secret: string }> {
    const input = parseInput(createSchema, rawInput, 'input');
    const secret = `${ADMIN_TOKEN_PREFIX}${randomBytes(32).toString('base64url')}`;
    const rows: Row[] = await this.dataSource.query(
      `INSERT INTO admin_tokens (id, name, role, secret_sha256, prefix, created_by) VALUES ($1, $2, $3, $4, $5, $6)
       RETURNING ${COLUMNS}`,
      [randomUUID(), input.name, input.role, sha256(secret), secret.slice(0, SHOWN_PREFIX_LENGTH), by.subject],
    );
    return { token: view(rows[0]!), secret };
  }

  /** Tokens, oldest first, revoked ones included (see `Page`). */
  async list(page: Page = { first: MAX_PAGE_SIZE, after: null }): Promise<AdminTokenView[]> {
    const after = page.after === null ? null : parseId(page.after, 'after');
    const rows: Row[] = await this.dataSource.query(
      `SELECT ${COLUMNS} FROM admin_tokens
       WHERE $1::uuid IS NULL OR (created_at, id) > (SELECT created_at, id FROM admin_tokens WHERE id = $1::uuid)
       ORDER BY created_at, id LIMIT $2`,
      [after, page.first],
    );
    return rows.map(view);
  }

  /** Revokes a token (at once: every request looks its token up). Revoking a revoked token is a no-op. */
  async revoke(rawId: string): Promise<AdminTokenView> {
    const id = parseId(rawId, 'id');
    const rows: Row[] = await this.dataSource.query(
      // A CTE: TypeORM answers a bare UPDATE … RETURNING with [rows, count].
      `WITH r AS (UPDATE admin_tokens SET revoked_at = coalesce(revoked_at, now()) WHERE id = $1 RETURNING ${COLUMNS})
       SELECT * FROM r`,
      [id],
    );
    if (rows[0] === undefined)
      throw new PortcullisError(ErrorCode.NOT_FOUND, `id: no admin token has id ${id}; list them with adminTokens`, {
        field: 'id',
      });
    for (const listener of this.revokedListeners) listener(id);
    return view(rows[0]);
  }

  /** The admin a presented token stands for, or undefined when it is unknown or revoked. */
  async authenticate(secret: string): Promise<Admin | undefined> {
    if (!secret.startsWith(ADMIN_TOKEN_PREFIX)) return undefined;
    const rows: Array<{ id: string; name: string; role: AdminRole }> = await this.dataSource.query(
      `SELECT id, name, role FROM admin_tokens WHERE secret_sha256 = $1 AND revoked_at IS NULL`,
      [sha256(secret)],
    );
    const row = rows[0];
    return row === undefined ? undefined : { role: row.role, via: 'token', subject: row.name, tokenId: row.id };
  }
}
