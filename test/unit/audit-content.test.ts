import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { AuditContent } from '../../data-plane/src/audit/audit-content.ts';
import { AuditContent as KeyMode } from '../../proto/gen/portcullis/v1/config.ts';

const { AUDIT_CONTENT_INHERIT: INHERIT, AUDIT_CONTENT_ON: ON, AUDIT_CONTENT_OFF: OFF } = KeyMode;

describe('AuditContent: the control plane and the node flags together', () => {
  it('follows the control plane: upstream off wins, a key ON or OFF decides, INHERIT takes the default', () => {
    const content = new AuditContent();
    assert.equal(content.allows('up', 'k', undefined), true, 'nothing said: recorded');
    content.follow({ offUpstreams: new Set(['secret']), offByDefault: false });
    assert.equal(content.allows('up', 'k', INHERIT), true);
    assert.equal(content.allows('secret', 'k', ON), false, 'an upstream switched off wins over a key ON');
    assert.equal(content.allows('up', 'k', OFF), false);
    assert.equal(content.allows(null, 'k', OFF), false, 'a discovery by a key OFF');
    content.follow({ offUpstreams: new Set(), offByDefault: true });
    assert.equal(content.allows('up', 'k', INHERIT), false, 'INHERIT follows the default, off');
    assert.equal(content.allows('up', 'k', undefined), false, 'absent is INHERIT');
    assert.equal(content.allows('up', 'k', ON), true, 'a key ON records whatever the default');
    assert.equal(content.allows('secret', 'k', ON), true, 'the next snapshot no longer switches the upstream off');
  });

  it('node flags only switch content off, whatever the control plane says', () => {
    const flagged = new AuditContent({ offForUpstreams: ['noisy'], offForKeys: ['k2'] });
    flagged.follow({ offUpstreams: new Set(), offByDefault: false });
    assert.equal(flagged.allows('noisy', 'k', ON), false);
    assert.equal(flagged.allows('up', 'k2', ON), false);
    assert.equal(flagged.allows('up', 'k', ON), true);
    const off = new AuditContent({ enabled: false });
    off.follow({ offUpstreams: new Set(), offByDefault: false });
    assert.equal(off.allows('up', 'k', ON), false, '--audit-content off wins over a key ON');
  });
});

describe('AuditContent.clip', () => {
  it('records a value too deeply nested to serialize as a marker, never whole, instead of failing the call', () => {
    const content = new AuditContent();
    let deep: unknown = 'bottom';
    for (let i = 0; i < 100_000; i++) deep = [deep];
    const clipped = content.clip({ deep });
    assert.deepEqual(JSON.parse(clipped!), { $truncated: true, reason: 'nested too deeply to serialize' });
    assert.equal(content.isWhole(clipped!), false, 'the answer is not made from the marker');
    assert.equal(content.isWhole(content.clip({ shallow: [1] })!), true);
  });
});
