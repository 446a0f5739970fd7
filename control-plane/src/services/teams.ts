import { randomUUID } from 'node:crypto';
import { z } from 'zod';
import { PortcullisError, ErrorCode } from '../../../common/src/index.ts';
import { Team } from '../db/entities.ts';
import { withConfigChange, type ConfigStore } from './config-change.ts';
import { MAX_PAGE_SIZE, unknownCursor, type Page } from './pagination.ts';
import { isUniqueViolation, parseId, parseInput } from './validation.ts';

const createTeamSchema = z.object({
  name: z
    .string()
    .trim()
    .min(1, 'is empty; give the team a name')
    .max(128, 'is longer than 128 characters; shorten it'),
});

export class TeamService {
  constructor(private readonly store: ConfigStore) {}

  async create(rawInput: unknown): Promise<Team> {
    const input = parseInput(createTeamSchema, rawInput, 'input');
    const team = Object.assign(new Team(), { id: randomUUID(), name: input.name, createdAt: new Date() });
    try {
      await withConfigChange(this.store, async (manager) => {
        await manager.insert(Team, team);
        return { result: undefined, changed: true };
      });
    } catch (error) {
      if (isUniqueViolation(error, 'teams_name_key')) {
        throw new PortcullisError(
          ErrorCode.CONFLICT,
          `input.name: a team named "${input.name}" already exists; choose another name`,
          { field: 'input.name' },
        );
      }
      throw error;
    }
    return team;
  }

  /** Teams by name, one page (see `Page`). */
  async list(page: Page = { first: MAX_PAGE_SIZE, after: null }): Promise<Team[]> {
    const repository = this.store.dataSource.getRepository(Team);
    const query = repository
      .createQueryBuilder('t')
      .orderBy('t.name', 'ASC')
      .addOrderBy('t.id', 'ASC')
      .take(page.first);
    if (page.after !== null) {
      const after = parseId(page.after, 'after');
      if (!(await repository.existsBy({ id: after }))) throw unknownCursor('team', after);
      query.where('(t.name, t.id) > (SELECT c.name, c.id FROM teams c WHERE c.id = :after)', { after });
    }
    return query.getMany();
  }

  async getMany(ids: readonly string[]): Promise<Map<string, Team>> {
    if (ids.length === 0) return new Map();
    const teams = await this.store.dataSource
      .getRepository(Team)
      .createQueryBuilder('t')
      .where('t.id IN (:...ids)', { ids: [...ids] })
      .getMany();
    return new Map(teams.map((team) => [team.id, team]));
  }
}
