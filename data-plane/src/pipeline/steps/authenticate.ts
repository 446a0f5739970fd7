import type { AppliedConfig } from '../../config/applied-config.ts';
import { RpcErrorCode } from '../../mcp/protocol.ts';
import { GatewayError } from '../gateway-error.ts';
import { refused, type Step } from '../operation.ts';

const UNKNOWN_KEY = 'Unauthorized: the key is unknown or revoked';

/**
 * Who is asking. An HTTP edge authenticates the presented key itself (it must answer 401 before
 * reading a body) and hands the principal on; an operation that enters another way (relayed from
 * another node, a sandboxed script's nested call) names its key, which must be in the snapshot
 * being served now: a key revoked meanwhile is refused here.
 */
export function authenticateStep(getConfig: () => AppliedConfig | undefined): Step {
  return {
    name: 'authenticate',
    run(operation, next) {
      if (operation.principal !== undefined) return next(operation);
      const principal = operation.keyId === undefined ? undefined : getConfig()?.principalByKeyId(operation.keyId);
      if (principal === undefined)
        return Promise.resolve(refused(new GatewayError(RpcErrorCode.Unauthenticated, UNKNOWN_KEY)));
      operation.principal = principal;
      return next(operation);
    },
  };
}
