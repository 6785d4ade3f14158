import type { CatalogEntry } from '../../common/catalog';

/** Catalog entries of the test-only runbooks (the CLI loads this through RUNBOOK_EXTRA_CATALOG). */
export const extraCatalog: Record<string, CatalogEntry> = {
  kernelTestRunbook: {
    name: 'kernelTestRunbook',
    kind: 'fault',
    description: 'kernel test runbook (tests only)',
    // The workflow validates its input for real; the client passes it on.
    inputSchema: { safeParse: (value: unknown) => ({ success: true, data: value }) } as never,
    targetOf: (input) => String(input.target),
  },
};
