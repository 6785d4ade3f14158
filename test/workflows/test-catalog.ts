import type { CatalogEntry } from '../../common/catalog';
import { kernelTestInput } from './kernel-test-input';

/** Catalog entries of the test-only runbooks (the CLI loads this through RUNBOOK_EXTRA_CATALOG). */
export const extraCatalog = {
  kernelTestRunbook: {
    name: 'kernelTestRunbook',
    kind: 'fault',
    description: 'kernel test runbook (tests only)',
    inputSchema: kernelTestInput,
    targetOf: (input) => String(input.target),
    locksOf: (input) => (input.locks as string[] | undefined) ?? [],
  },
} satisfies Record<string, CatalogEntry>;
