/**
 * Unit tests of the tenant-matrix plugin's filter (support/plugins/tenant-matrix.ts), on the
 * pickles Gherkin compiles from the real feature file and from small synthetic ones.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import type { IFilterablePickle } from '@cucumber/cucumber/api';
import { generateMessages } from '@cucumber/gherkin';
import { IdGenerator, SourceMediaType } from '@cucumber/messages';
import { isUsageError } from '../../support/errors.ts';
import { filterTenantMatrix, tenantOfPickle } from '../../support/plugins/tenant-matrix.ts';

function pickles(text: string, uri = 'features/x.feature'): IFilterablePickle[] {
  const envelopes = generateMessages(text, uri, SourceMediaType.TEXT_X_CUCUMBER_GHERKIN_PLAIN, {
    includeGherkinDocument: true,
    includePickles: true,
    includeSource: false,
    newId: IdGenerator.incrementing(),
  });
  const doc = envelopes.find((e) => e.gherkinDocument)?.gherkinDocument;
  assert.ok(doc, `no gherkin document: ${JSON.stringify(envelopes.find((e) => e.parseError)?.parseError)}`);
  return envelopes.flatMap((e) =>
    e.pickle ? [{ pickle: e.pickle, gherkinDocument: doc, location: { line: 0 } }] : [],
  );
}

const MATRIX = readFileSync(new URL('../../features/05-tenant-isolation.feature', import.meta.url), 'utf8');

describe('filterTenantMatrix', () => {
  it('keeps the rows up to the setting in every matrix outline of the real feature', () => {
    const all = pickles(MATRIX, 'features/05-tenant-isolation.feature');
    const kept = filterTenantMatrix(all, 3);
    assert.equal(kept.length, 9, 'three outlines with three tenants each');
    assert.deepEqual([...new Set(kept.map((p) => tenantOfPickle(p)?.tenant))].sort(), [1, 2, 3]);
    assert.equal(filterTenantMatrix(all, 50).length, all.length);
    assert.equal(filterTenantMatrix(all, 20).length, 60, 'three outlines with twenty tenants each');
    assert.equal(filterTenantMatrix(all, 1).length, 3);
  });

  it('refuses more tenants than an outline lists, naming the setting, the outline and the maximum', () => {
    const all = pickles(MATRIX, 'features/05-tenant-isolation.feature');
    assert.throws(
      () => filterTenantMatrix(all, 51),
      (e: unknown) =>
        isUsageError(e) &&
        /IRSA_TENANTS \(tenants\) is 51/.test(e.message) &&
        /features\/05-tenant-isolation\.feature:\d+ lists tenants up to 50/.test(e.message) &&
        /at most 50/.test(e.hint),
    );
  });

  it('leaves scenarios without the tag alone, Outline or not', () => {
    const text = `Feature: f
  Scenario: plain
    Given a step
  Scenario Outline: outline <n>
    Given a step <n>
    Examples:
      | n |
      | 5 |
      | 9 |
`;
    const all = pickles(text);
    assert.equal(filterTenantMatrix(all, 1).length, 3);
  });

  it('refuses a tagged outline without a tenant column, or with a tenant that is not a number', () => {
    const noColumn = `Feature: f
  @tenant-matrix
  Scenario Outline: outline <n>
    Given a step <n>
    Examples:
      | n |
      | 1 |
`;
    assert.throws(
      () => filterTenantMatrix(pickles(noColumn), 1),
      (e: unknown) => isUsageError(e) && /no "tenant" column/.test(e.message),
    );
    const notNumber = noColumn.replace('| n |', '| tenant |').replace('| 1 |', '| one |').replaceAll('<n>', '<tenant>');
    assert.throws(
      () => filterTenantMatrix(pickles(notNumber), 1),
      (e: unknown) => isUsageError(e) && /"one" is not a positive integer/.test(e.message),
    );
    const plain = `Feature: f
  @tenant-matrix
  Scenario: not an outline
    Given a step
`;
    assert.throws(
      () => filterTenantMatrix(pickles(plain), 1),
      (e: unknown) => isUsageError(e) && /not a Scenario Outline row/.test(e.message),
    );
  });
});
