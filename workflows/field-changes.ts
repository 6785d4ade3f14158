import type { FieldChange } from '../activities/kubernetes-access';

/** One field change of a dry run or comparison as a person reads it (security runbooks' plans). */
export function changeText(c: FieldChange): string {
  const value = (v: unknown) => JSON.stringify(v);
  if (c.change === 'added') return `+ ${c.path} = ${value(c.after)}`;
  if (c.change === 'removed') return `- ${c.path} (was ${value(c.before)})`;
  return `${c.path}: ${value(c.before)} -> ${value(c.after)}`;
}
