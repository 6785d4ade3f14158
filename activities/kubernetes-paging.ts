import type { V1ListMeta } from '@kubernetes/client-node';
import { invalidInput } from './errors';
import { kcall } from './kubernetes-common';

/** Items per LIST page unless the caller asks otherwise. */
export const defaultPageSize = 500;

/** The page size of an activity's input (the default when absent); outside 1..5000 is InvalidInput. */
export function pageSizeOf(value: unknown): number {
  if (value === undefined) return defaultPageSize;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 1 || value > 5000) throw invalidInput('pageSize must be an integer between 1 and 5000');
  return value;
}

/** One LIST page as client-node 0.22 returns it. */
export interface ListPage<T> {
  body: { items: T[]; metadata?: V1ListMeta };
}

/**
 * Reads a namespaced LIST page by page (limit/continue) and hands each page to `onPage`, so the
 * caller keeps only what it needs and the number of requests grows with pages, not objects.
 * Returns the number of requests made.
 */
export async function forEachListPage<T>(
  resource: string,
  namespace: string,
  pageSize: number,
  listPage: (continueToken: string | undefined, limit: number) => Promise<ListPage<T>>,
  onPage: (items: T[]) => void,
): Promise<number> {
  let token: string | undefined;
  let requests = 0;
  do {
    const { body } = await kcall('list', resource, namespace, () => listPage(token, pageSize));
    requests++;
    onPage(body.items);
    token = body.metadata?._continue || undefined;
  } while (token);
  return requests;
}
