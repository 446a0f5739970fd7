/** A GraphQL response as the control plane sends it. */
export interface GraphQLResponse<T> {
  status: number;
  data: T | undefined;
  errors: { message: string; extensions?: { code?: string; field?: string } & Record<string, unknown> }[] | undefined;
}

/** Posts a GraphQL operation to the control plane, with the admin token unless told otherwise. */
export async function graphql<T = Record<string, unknown>>(
  url: string,
  token: string | undefined,
  query: string,
  variables: Record<string, unknown> = {},
): Promise<GraphQLResponse<T>> {
  const headers: Record<string, string> = { 'content-type': 'application/json' };
  if (token !== undefined) headers['authorization'] = `Bearer ${token}`;
  const response = await fetch(url, { method: 'POST', headers, body: JSON.stringify({ query, variables }) });
  const body = (await response.json()) as { data?: T | null; errors?: GraphQLResponse<T>['errors'] };
  return { status: response.status, data: body.data ?? undefined, errors: body.errors };
}

/** Like `graphql`, but fails with the server's errors when there are any. */
export async function graphqlOk<T = Record<string, unknown>>(
  url: string,
  token: string,
  query: string,
  variables: Record<string, unknown> = {},
): Promise<T> {
  const result = await graphql<T>(url, token, query, variables);
  if (result.errors?.length || result.data === undefined) {
    throw new Error(`GraphQL failed (${result.status}): ${JSON.stringify(result.errors)}`);
  }
  return result.data;
}

export const CREATE_UPSTREAM = /* GraphQL */ `
  mutation ($input: CreateUpstreamInput!) { createUpstream(input: $input) { id name transport } }
`;
export const CREATE_KEY = /* GraphQL */ `
  mutation ($input: CreateVirtualKeyInput!) {
    createVirtualKey(input: $input) { secret key { id name allowedTools revoked } }
  }
`;
export const REVOKE_KEY = /* GraphQL */ `
  mutation ($id: ID!) { revokeVirtualKey(id: $id) { id revoked } }
`;
export const NODES = /* GraphQL */ `
  query { nodes { id connected appliedVersion lastError mcpUrl } config { version } }
`;
