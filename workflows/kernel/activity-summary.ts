/**
 * One line for the Temporal UI's event list: which activity, on what, with what change, e.g.
 * "scaleDeployment short-drama-prod/short-drama-app → 10 replicas". Read from the activity's input
 * by field names every activity shares, so a new activity gets a summary without a table entry.
 */
export function activitySummary(activityType: string, args: readonly unknown[]): string {
  const input = args[0];
  const parts = [activityType];
  if (typeof input === 'string') parts.push(input);
  else if (input && typeof input === 'object') parts.push(...described(input as Record<string, unknown>));
  return parts.join(' ').slice(0, maxSummaryLength);
}

const maxSummaryLength = 120;
/** Fields that name what is acted on, most specific last: namespace/name, database, Redis key, S3 object. */
const objectFields = ['name', 'deployment', 'statefulSet', 'pod', 'secret', 'service', 'certificate', 'ingress'];
const placeFields = ['database', 'role', 'key', 'pattern', 'bucket', 'prefix', 'runbook'];

function described(input: Record<string, unknown>): string[] {
  const text = (key: string) => (typeof input[key] === 'string' && input[key] !== '' ? (input[key] as string) : undefined);
  const object = objectFields.map(text).find(Boolean);
  const namespace = text('namespace');
  const parts: string[] = [];
  if (namespace || object) parts.push([namespace, object].filter(Boolean).join('/'));
  for (const key of placeFields) if (text(key)) parts.push(`${key} ${text(key)}`);
  if (typeof input.replicas === 'number') parts.push(`→ ${input.replicas} replicas`);
  if (input.dryRun === true) parts.push('(dry run)');
  return parts;
}
